"""A run's outputs are built as its executions stream past, and say exactly what gathering
everything in memory would have said."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.run_outputs import (
    QUOTE_COLUMNS,
    ROWS_PER_GROUP,
    ParquetRows,
    Percentiles,
    SpilledSamples,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=300), st.lists(finite, max_size=50))
def test_spilled_percentiles_are_numpys_and_the_mean_exact_whatever_is_spilled_beside(
    values, other
):
    samples = SpilledSamples()
    for value, noise in zip(values, other + [None] * len(values), strict=False):
        samples.add("slippage", value)
        if noise is not None:
            samples.add("fill time", noise)
    got = samples.percentiles("slippage")
    samples.close()

    p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
    assert got == Percentiles(
        p50=round(float(p50), 6),
        p95=round(float(p95), 6),
        p99=round(float(p99), 6),
        mean=round(math.fsum(values) / len(values), 6),
    )


def test_a_series_with_no_values_has_no_percentiles():
    samples = SpilledSamples()
    samples.add("slippage", 0.5)
    assert samples.percentiles("fill time") == Percentiles(p50=None, p95=None, p99=None, mean=None)
    samples.close()


def test_rows_are_written_a_group_at_a_time_and_read_back_whole(tmp_path):
    count = 2 * ROWS_PER_GROUP + 5
    table = ParquetRows(tmp_path / "quotes.parquet", QUOTE_COLUMNS)
    for i in range(count):
        table.add({"symbol": "EURUSD", "time": float(i), "bid": 1.1, "ask": 1.1001})
    table.close()

    assert pq.ParquetFile(tmp_path / "quotes.parquet").metadata.num_row_groups == 3
    frame = pd.read_parquet(tmp_path / "quotes.parquet")
    assert len(frame) == count and frame["time"].tolist() == [float(i) for i in range(count)]


def test_a_table_with_no_rows_is_still_written_with_its_columns(tmp_path):
    table = ParquetRows(tmp_path / "quotes.parquet", QUOTE_COLUMNS)
    table.close()
    frame = pd.read_parquet(tmp_path / "quotes.parquet")
    assert frame.empty and list(frame.columns) == ["symbol", "time", "bid", "ask"]


def test_a_table_appears_only_when_closed_and_replaces_the_previous_one_whole(tmp_path):
    path = tmp_path / "quotes.parquet"
    old = ParquetRows(path, QUOTE_COLUMNS)
    old.add({"symbol": "OLD", "time": 0.0, "bid": 1.0, "ask": 1.0})
    old.close()
    table = ParquetRows(path, QUOTE_COLUMNS)
    for i in range(ROWS_PER_GROUP + 1):  # a row group is already on disk, aside
        table.add({"symbol": "EURUSD", "time": float(i), "bid": 1.1, "ask": 1.1001})

    assert pd.read_parquet(path)["symbol"].tolist() == ["OLD"]  # a reader sees the old one
    table.close()
    assert len(pd.read_parquet(path)) == ROWS_PER_GROUP + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quotes.parquet"]
