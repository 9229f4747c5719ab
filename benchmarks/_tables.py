"""Result files: where they live, what a device is called in their names, the command line that
reproduces them, and the pair most scripts write, `<stem>.json` (meta and rows, for tools) and
`<stem>.md` (for reading), which starts with every command that produced its rows. The posteriordb
benchmarks also share their command line (`--models`, `--out`)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import jax

from pnmcmc.models import POSTERIORDB_NAMES

RESULTS = Path(__file__).parent / "results"


def device_label(device, float32=False):
    """The device in the names of the study's and the GPU run's files: `cpu`, or the card (`h100`,
    `a100`, ...), with `-float32` for single-precision runs."""
    if device.platform == "cpu":
        name = "cpu"
    else:
        kind = device.device_kind.lower()
        name = next((g for g in ("h100", "h200", "a100", "l4", "t4") if g in kind), kind.replace(" ", "_"))
    return name + ("-float32" if float32 else "")


def device_slug(device):
    """The device in the names of the kernel, engine and Lyapunov tables: `cpu`, or the platform and
    the device kind (`gpu-nvidia_h100_80gb_hbm3`)."""
    name = "cpu" if device.platform == "cpu" else f"{device.platform}-{device.device_kind}"
    return name.replace(" ", "_").lower()


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
