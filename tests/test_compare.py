"""`compare` prints whole: no row or column of the table is elided as `...`, whatever pandas' display
options, for posteriors of the usual sizes (eight schools' 10 scalars, a 30-coefficient regression)."""

import pickle
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pnmcmc import DEER, Sequential
from pnmcmc.sampling import arviz_io
from pnmcmc.sampling.compare import ComparisonTable, compare

# What a terminal of 80 columns gives pandas (max_columns 0 means "fit the width" there), tightened.
TIGHT = ("display.max_rows", 6, "display.min_rows", 4, "display.max_columns", 4, "display.width", 80)


def _result(samples, solver):
    """The part of a SampleResult that `compare` reads, with ArviZ's real summary of the draws."""
    data = arviz_io.from_dict({"posterior": samples})
    return SimpleNamespace(
        solver=solver, samples=samples, summary=lambda api=None: arviz_io.summary(data, api=api)
    )


def _pair(shapes):
    rng = np.random.default_rng(0)
    samples = {name: rng.normal(size=(2, 100, *shape)) for name, shape in shapes.items()}
    moved = {name: x + 1e-9 for name, x in samples.items()}
    return _result(samples, DEER()), _result(moved, Sequential())


@pytest.mark.parametrize(
    "shapes, rows",
    [({"mu": (), "tau": (), "theta": (8,)}, 10), ({"alpha": (), "beta": (30,)}, 31)],
    ids=["eight-schools", "regression-30"],
)
def test_the_table_prints_whole(shapes, rows):
    table = compare(*_pair(shapes))
    assert isinstance(table, ComparisonTable) and table.shape == (rows, 11)
    with pd.option_context(*TIGHT):
        text, html = str(table), table._repr_html_()
    assert "..." not in text and "..." not in html
    assert len(text.splitlines()) == rows + 2  # two header lines, then one line per parameter
    for name in table.index:
        assert f"\n{name} " in text and f"<th>{name}</th>" in html
    for statistic in ("mean", "sd", "ess_bulk", "ess_tail", "r_hat", "max |diff|"):
        assert statistic in text
    assert "DEER" in text and "Sequential" in text


def test_derived_tables_and_copies_behave_as_dataframes():
    table = compare(*_pair({"x": (3,)}))
    assert type(table[("mean", "DEER")].to_frame()) is pd.DataFrame
    assert type(table.iloc[:2]) is pd.DataFrame
    again = pickle.loads(pickle.dumps(table))
    assert isinstance(again, ComparisonTable) and again.equals(table)
    assert float(table[("max |diff|", "")].max()) == pytest.approx(1e-9)
