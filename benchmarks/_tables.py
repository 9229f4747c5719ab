"""What the posteriordb benchmarks share: their command line (`--models`, `--out`), and their
result files, `<stem>.json` (meta and rows, for tools) and `<stem>.md` (for reading), which starts
with every command that produced its rows."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys

import jax

from pnmcmc.models import POSTERIORDB_NAMES


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


def parser(doc, results_stem):
    """The command line every posteriordb benchmark shares: `--models` (default all eight) and
    `--out` (default `benchmarks/results/<results_stem>`); each script adds its own options."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--models", default=",".join(POSTERIORDB_NAMES))
    p.add_argument("--out", default=f"benchmarks/results/{results_stem}", help="output stem")
    return p


def invocation(script, argv):
    """The command line that reruns this call of `benchmarks/<script>` (recorded in the tables)."""
    args = sys.argv[1:] if argv is None else argv
    return f"python benchmarks/{script} " + shlex.join(args)
