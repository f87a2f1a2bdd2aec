"""Intra-bar paths, inferred digits, and what replayed bars cost an order at ~80 ms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scenarios.runner import run_scenario
from scenarios.spec import load_scenario
from sim.bars import BridgeConfig, BridgePath, anchors, bridge
from sim.quotes_csv import DigitsError, TickQuotesConfig, load_quotes
from tests.builders import FX_DATA as DATA

ROOT = Path(__file__).resolve().parents[1]
OHLC_BID = np.array([[1.10000, 1.10300, 1.09900, 1.10200], [1.10200, 1.10250, 1.10010, 1.10050]])
OPENS = np.array([1_704_888_000.0, 1_704_888_060.0])


def _path(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ask = OHLC_BID + np.array([[0.0002, 0.0001, 0.0003, 0.0002], [0.0001, 0.0002, 0.0001, 0.0]])
    bid_a, ask_a = anchors(OHLC_BID, ask)
    return bridge(OPENS, bid_a, ask_a, 5, BridgeConfig(ticks_per_minute=200), seed)


def test_a_bridge_passes_through_each_bars_open_high_low_and_close_on_both_sides() -> None:
    times, bid, ask, bar = _path(seed=3)
    ask_bars = OHLC_BID + np.array([[0.0002, 0.0001, 0.0003, 0.0002], [0.0001, 0.0002, 0.0001, 0]])
    for i in range(2):
        side_b, side_a = bid[bar == i], ask[bar == i]
        for side, ohlc in ((side_b, OHLC_BID[i]), (side_a, ask_bars[i])):
            got = (side[0], side.max(), side.min(), side[-1])
            np.testing.assert_allclose(got, ohlc, atol=1e-9)
        inside = times[bar == i] - OPENS[i]
        assert inside[0] == 0.0 and inside[-1] < 60.0
    assert (np.diff(times) > 0).all()
    assert (ask >= bid).all()


def test_a_bridge_is_the_same_for_a_seed_and_differs_for_another() -> None:
    first, again, other = _path(3), _path(3), _path(4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(first[0]) != len(other[0]) or not np.array_equal(first[1], other[1])


def _seven_bars(cached_chunks: int) -> BridgePath:
    """Seven bars in chunks of two, so that reads meet chunk boundaries."""
    bid = np.tile(OHLC_BID, (4, 1))[:7]
    ask_a, bid_a = anchors(bid + 0.0002, bid)[::-1]
    opens = OPENS[0] + 60.0 * np.array([0, 1, 2, 3, 5, 6, 9])  # with two gaps
    config = BridgeConfig(ticks_per_minute=50)
    return BridgePath(opens, bid_a, ask_a, 5, config, 8, chunk_bars=2, cached_chunks=cached_chunks)


def test_a_bridges_chunks_are_the_same_whatever_order_they_are_drawn_in() -> None:
    forward = [_seven_bars(cached_chunks=4).chunk(n) for n in range(4)]
    shuffled = _seven_bars(cached_chunks=1)
    for number in (3, 1, 0, 2, 3, 0, 1):
        for a, b in zip(shuffled.chunk(number), forward[number], strict=True):
            np.testing.assert_array_equal(a, b)
    assert shuffled.count == sum(len(chunk[0]) for chunk in forward)


def test_a_bridge_is_read_across_its_chunks_as_one_path() -> None:
    path = _seven_bars(cached_chunks=1)
    times, bids, asks = path.arrays()
    assert (np.diff(times) > 0).all()
    for t in np.linspace(times[0] - 5.0, times[-1] + 5.0, 400):
        i = int(np.searchsorted(times, t, side="right")) - 1
        quote = path.latest(float(t))
        assert (quote is None) if i < 0 else quote == (times[i], bids[i], asks[i], None, None)
    t0, t1 = float(times[3]), float(times[-2])
    walked = [quote.time for quote in path.between(t0, t1)]
    assert walked == times[(times > t0) & (times <= t1)].tolist()


def test_usdjpy_ticks_declared_with_five_digits_are_refused_in_one_line() -> None:
    source = TickQuotesConfig(
        symbol="USDJPY", digits=5, path=DATA / "usdjpy-ticks-2013-01.csv", bad_quotes="drop"
    )
    with pytest.raises(DigitsError, match=r"digits = 5 contradicts the data.*3 decimals") as e:
        load_quotes(source)
    assert "\n" not in str(e.value)
    inferred = load_quotes(source.model_copy(update={"digits": None}))
    assert inferred.digits == 3


def test_ticks_with_sizes_reach_the_market_as_quoted_depth(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text(
        "timestamp,bid,ask,bid_size,ask_size\n"
        "2024-01-10T12:00:00+00:00,1.10001,1.10012,1000000,2000000\n"
    )
    series = load_quotes(TickQuotesConfig(symbol="EURUSD", path=path, bad_quotes="refuse"))
    bid_size, ask_size = series.sizes
    assert bid_size is not None and ask_size is not None
    assert (bid_size[0], ask_size[0], series.digits) == (1e6, 2e6, 5)


def test_the_tick_replay_scenario_runs_with_its_invariants() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "replay_usdjpy_ticks.toml")
    summary = run_scenario(scenario.with_overrides({"orders.orders": 20}), ROOT / "scenarios")
    assert not summary.violations


def _slice(name: str, since: str, until: str, folder: Path) -> Path:
    rows = (DATA / name).read_text().splitlines()
    kept = [rows[0]] + [r for r in rows[1:] if since <= r[:16] < until]
    out = folder / name
    out.write_text("\n".join(kept) + "\n")
    return out


def test_replayed_gbpusd_bars_at_80ms_give_a_zero_slippage_share_in_the_published_band(
    tmp_path: Path,
) -> None:
    # The Must-show on a reduced input: the Monday London morning of the scenario, and the
    # Sunday reopen before it, so orders also meet a market that has just reopened.
    for name in ("gbpusd-m1-bid-2012-02.csv", "gbpusd-m1-ask-2012-02.csv"):
        _slice(name, "2012-02-03 21:00", "2012-02-06 09:00", tmp_path)
    text = (ROOT / "scenarios" / "replay_gbpusd.toml").read_text()
    text = text.replace("../../shared/data/fx/", "")
    (tmp_path / "s.toml").write_text(text)
    # All 1,500 orders (25 minutes): the first few of a quiet 08:00 alone sit at the edge.
    scenario = load_scenario(tmp_path / "s.toml")
    out = tmp_path / "run"
    summary = run_scenario(scenario, tmp_path, out_dir=out)
    assert not summary.violations
    runs = pd.read_parquet(out / "executions.parquet")
    slippage = runs[runs.status == "FILLED"].slippage_pips
    assert 0.40 <= (slippage == 0).mean() <= 0.80
    assert (slippage > 0).mean() > 0.05 and (slippage < 0).mean() > 0.05


def test_no_order_fills_on_a_quote_from_before_the_reopening(tmp_path: Path) -> None:
    for name in ("gbpusd-m1-bid-2012-02.csv", "gbpusd-m1-ask-2012-02.csv"):
        _slice(name, "2012-02-03 21:00", "2012-02-06 09:00", tmp_path)
    text = (ROOT / "scenarios" / "replay_gbpusd.toml").read_text()
    text = text.replace("../../shared/data/fx/", "").replace(
        "start = 2012-02-06T08:00:00Z", "start = 2012-02-05T21:58:00Z"
    )
    (tmp_path / "s.toml").write_text(text)
    scenario = load_scenario(tmp_path / "s.toml").with_overrides(
        {
            "orders.orders": 120,
            "orders.rate_per_second": 0.1,
            "engine.default_max_spread_pips": 50.0,
        }
    )
    out = tmp_path / "run"
    run_scenario(scenario, tmp_path, out_dir=out)
    runs = pd.read_parquet(out / "executions.parquet")
    reopen = pd.Timestamp("2012-02-05T22:00:00Z").timestamp()
    filled = runs[runs.status == "FILLED"]
    assert len(filled) > 0
    # Every fill is after the reopening, and on a price quoted after it: the arrival quote
    # the engine checked is the venue's, and the venue has none from before the reopening.
    assert (filled.last_fill_at >= reopen).all()
    assert (runs.outcome_reason == "NO_MARKET_DATA").any()  # reopened, no quote yet
