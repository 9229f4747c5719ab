"""The result files the posteriordb benchmarks share: `<stem>.json` (meta and rows, for tools) and
`<stem>.md` (for reading), which starts with every command that produced its rows."""

from __future__ import annotations

import datetime
import json
import os
import platform

import jax


def load(stem):
    """`(rows, commands)` of an existing table, or `([], [])`."""
    path = stem.with_suffix(".json")
    if not path.exists():
        return [], []
    old = json.loads(path.read_text())
    meta = old["meta"]
    return old["rows"], meta.get("commands") or [meta["command"]]


def save(stem, rows, commands, *, title, describe, header, md_row):
    """Write both files; `describe(meta)` is the Markdown between the commands and the table."""
    meta = {
        "machine": f"{platform.platform()}, {os.cpu_count()} cores, jax {jax.__version__}",
        "commands": commands,
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
    }
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    text = [f"# {title}", "", "Produced by:", "", *[f"    {c}" for c in commands], ""]
    text += [describe(meta), "", header, *[md_row(r) for r in rows], ""]
    stem.with_suffix(".md").write_text("\n".join(text))
