"""Read the data files shipped in `pnmcmc/data` (works from an installed package or a zip)."""

from __future__ import annotations

import csv
import io
import json
from importlib import resources

__all__ = ["read_csv", "read_json"]


def _path(*parts: str):
    # One joinpath per part: multi-argument joinpath is not available on every Traversable.
    path = resources.files("pnmcmc").joinpath("data")
    for part in parts:
        path = path.joinpath(part)
    return path


def read_json(*parts: str):
    """Parse the JSON file `pnmcmc/data/<parts...>`."""
    return json.loads(_path(*parts).read_text(encoding="utf-8"))


def read_csv(*parts: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows (as strings) of the CSV file `pnmcmc/data/<parts...>`."""
    reader = csv.reader(io.StringIO(_path(*parts).read_text(encoding="utf-8")))
    header = next(reader)
    return header, [row for row in reader if row]
