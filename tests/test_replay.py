"""Replaying real FX quotes: loading, data quality, cleaning policies, intra-bar paths, market."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from brokers.mt5_codes import PRICE_OFF
from engine.core.ports import BrokerRejected, OrderRequest
from engine.schemas import Direction
from sim.bars import BAR_SECONDS
from sim.quotes_csv import (
    BadQuotesError,
    BarQuotesConfig,
    QuoteFileError,
    TickQuotesConfig,
    load_quotes,
)
from sim.replay import ReplayMarket
from sim.venue import Venue
from tests.builders import FX_DATA as DATA

BID = DATA / "gbpusd-m1-bid-2012-02.csv"
ASK = DATA / "gbpusd-m1-ask-2012-02.csv"
TICKS = DATA / "usdjpy-ticks-2013-01.csv"
GBPUSD_PIP = 0.0001
USDJPY_PIP = 0.01
CLOSE_OFFSET = BAR_SECONDS  # a bar shows at its close
# The README's figures are quoted to a tenth of a pip; this allows rounding, not drift.
PIP_TOLERANCE = 0.05
# A Wednesday noon, well inside the FX week.
WEDNESDAY = datetime(2024, 1, 10, 12, tzinfo=UTC).timestamp()


def _posix(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def gbpusd(policy: str, intra_bar: str = "close", **extra: object) -> BarQuotesConfig:
    return BarQuotesConfig.model_validate(
        {
            "symbol": "GBPUSD",
            "digits": 5,
            "bid_path": BID,
            "ask_path": ASK,
            "bad_quotes": policy,
            "intra_bar": intra_bar,
            **extra,
        }
    )


def usdjpy(policy: str = "drop") -> TickQuotesConfig:
    return TickQuotesConfig(symbol="USDJPY", digits=3, path=TICKS, bad_quotes=policy)


@pytest.fixture(scope="module")
def raw_bars(fx_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bar times, bid and ask (open, high, low, close) read independently of the loader."""
    bid = pd.read_csv(BID)
    ask = pd.read_csv(ASK)
    stamps = pd.to_datetime(bid["timestamp"], format="ISO8601", utc=True)
    times = ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
    columns = ["open", "high", "low", "close"]
    return times, bid[columns].to_numpy(), ask[columns].to_numpy()


@pytest.fixture(scope="module")
def market(fx_data: Path) -> ReplayMarket:
    return ReplayMarket([gbpusd("repair"), usdjpy()])


@pytest.fixture(scope="module")
def dropped(fx_data: Path) -> ReplayMarket:
    return ReplayMarket([gbpusd("drop")])


def _close_spreads(market: ReplayMarket, bar_times: np.ndarray) -> np.ndarray:
    quotes = [market.quote("GBPUSD", t + CLOSE_OFFSET) for t in bar_times]
    return np.array([(q.ask - q.bid) / GBPUSD_PIP for q in quotes if q is not None])


# -- the GBP/USD February 2012 bars ----------------------------------------------------------


@pytest.mark.parametrize("policy", ["drop", "repair"])
def test_gbpusd_spreads_sampled_at_each_bar_close_reproduce_the_datas_median_and_p95(
    policy: str,
    market: ReplayMarket,
    dropped: ReplayMarket,
    raw_bars: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    times, bid, ask = raw_bars
    replay = market if policy == "repair" else dropped
    spreads = _close_spreads(replay, times)
    own = (ask[:, 3] - bid[:, 3]) / GBPUSD_PIP

    assert len(spreads) == len(times)
    for q, readme in ((0.5, 0.7), (0.95, 1.3)):
        assert np.quantile(spreads, q) == pytest.approx(readme, abs=PIP_TOLERANCE)
        assert np.quantile(spreads, q) == pytest.approx(np.quantile(own, q), abs=PIP_TOLERANCE)
    assert spreads.min() >= 0.0


def test_repair_keeps_every_uncrossed_close_spread_exactly_and_locks_the_crossed_ones(
    market: ReplayMarket, raw_bars: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    times, bid, ask = raw_bars
    spreads = _close_spreads(market, times)
    own = (ask[:, 3] - bid[:, 3]) / GBPUSD_PIP
    crossed = own < 0

    assert crossed.sum() > 0
    np.testing.assert_allclose(spreads[~crossed], own[~crossed], atol=1e-6)
    np.testing.assert_allclose(spreads[crossed], 0.0, atol=1e-6)


def test_crossed_gbpusd_minutes_are_reported_with_their_line_numbers(
    market: ReplayMarket, raw_bars: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    _, bid, ask = raw_bars
    # Bars replayed at their close are judged on their closes.
    crossed_rows = np.flatnonzero(ask[:, 3] < bid[:, 3])
    report = market.series("GBPUSD").report

    assert report.crossed.count == len(crossed_rows) > 0
    assert report.crossed_quotes == len(crossed_rows)
    # Line 1 is the header, so data row i sits on line i + 2.
    assert report.crossed.rows == tuple(int(i) + 2 for i in crossed_rows[:10])
    assert "crossed" in str(report)
    assert str(report.crossed.rows[0]) in str(report)


def test_dropping_crossed_gbpusd_quotes_leaves_none_and_keeps_the_rest(
    dropped: ReplayMarket, raw_bars: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    _, bid, ask = raw_bars
    series = dropped.series("GBPUSD")

    assert (series.ask >= series.bid).all()
    assert series.report.quotes_used == len(bid) - int((ask[:, 3] < bid[:, 3]).sum())
    assert series.report.rows_read == len(bid)


def test_repairing_crossed_gbpusd_quotes_leaves_none_crossed(market: ReplayMarket) -> None:
    series = market.series("GBPUSD")

    assert (series.ask >= series.bid).all()
    assert series.report.quotes_used == series.report.rows_read
    assert series.report.crossed.count > 0


def test_refusing_the_gbpusd_bars_raises_naming_the_first_crossed_rows(
    fx_data: Path, raw_bars: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    _, bid, ask = raw_bars
    first = [int(i) + 2 for i in np.flatnonzero(ask[:, 3] < bid[:, 3])[:3]]

    with pytest.raises(BadQuotesError, match="crossed") as caught:
        ReplayMarket([gbpusd("refuse")])
    assert f"lines {first[0]}, {first[1]}, {first[2]}" in str(caught.value)
    report = caught.value.report
    assert (report.policy, report.rows_used, report.gaps) == ("refuse", 0, None)
    assert "not measured" in str(report)


def test_gbpusd_bars_have_no_gap_under_five_minutes_of_open_market_but_weekends(
    market: ReplayMarket,
) -> None:
    gaps = market.series("GBPUSD").report.gaps

    assert gaps is not None
    assert gaps.count == 0
    # The longest weekday silence is 5 minutes between closes, while weekends last two days.
    assert gaps.longest_minutes == pytest.approx(5.0)


def test_a_tighter_gap_threshold_finds_the_quiet_weekday_minutes(fx_data: Path) -> None:
    report = load_quotes(gbpusd("repair", max_gap_minutes=2.0)).report

    assert report.gaps is not None
    assert report.gaps.count > 0
    assert all(row > 2 for row in report.gaps.rows)


def test_the_weekend_is_closed_and_the_friday_quote_stays_and_goes_stale(
    market: ReplayMarket,
) -> None:
    friday_last_close = _posix("2012-02-03T21:59:00+00:00") + CLOSE_OFFSET
    saturday = _posix("2012-02-04T12:00:00+00:00")
    sunday_before_open = _posix("2012-02-05T21:59:00+00:00")
    sunday_after_open = _posix("2012-02-05T22:30:00+00:00")

    assert not market.is_open(friday_last_close)  # the week's last bar closes with it
    assert not market.is_open(saturday)
    stale = market.quote("GBPUSD", saturday)
    assert stale is not None
    assert stale.time == friday_last_close
    assert market.quote("GBPUSD", sunday_before_open) == stale
    assert market.is_open(sunday_after_open)
    fresh = market.quote("GBPUSD", sunday_after_open)
    assert fresh is not None
    assert sunday_after_open - 60 < fresh.time <= sunday_after_open


def test_gbpusd_symbol_config_has_five_digits_and_the_first_quotes_mid(
    market: ReplayMarket, raw_bars: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    times, bid, ask = raw_bars
    config = market.symbol_config("GBPUSD")

    assert config is not None
    assert config.digits == 5
    assert config.start_mid == pytest.approx((bid[0, 3] + ask[0, 3]) / 2)
    assert config.spread_pips == pytest.approx(0.7)
    assert market.start == times[0] + CLOSE_OFFSET


# -- the USD/JPY ticks -----------------------------------------------------------------------


def test_usdjpy_ticks_load_with_three_digits_and_wide_session_open_spreads(
    market: ReplayMarket,
) -> None:
    series = market.series("USDJPY")
    spreads = (series.ask - series.bid) / USDJPY_PIP
    config = market.symbol_config("USDJPY")

    assert config is not None
    assert config.digits == 3
    assert np.median(spreads) == pytest.approx(2.0, abs=PIP_TOLERANCE)
    assert spreads.max() == pytest.approx(7.3, abs=PIP_TOLERANCE)
    assert market.end == series.time[-1]


def test_usdjpy_ticks_sharing_a_millisecond_keep_the_last_and_report_the_rest(
    market: ReplayMarket,
) -> None:
    series = market.series("USDJPY")
    report = series.report

    assert report.duplicates.count > 0
    assert report.rows_used == report.rows_read - report.duplicates.count
    assert (np.diff(series.time) > 0).all()


def test_a_market_of_two_symbols_serves_each_from_its_own_data(market: ReplayMarket) -> None:
    assert market.symbols == ("GBPUSD", "USDJPY")
    february = _posix("2012-02-08T10:00:00+00:00")
    gbpusd_quote = market.quote("GBPUSD", february)
    assert gbpusd_quote is not None
    assert gbpusd_quote.symbol == "GBPUSD"
    # USD/JPY's data begins in 2013: in February 2012 it has no quote, and no mid.
    assert market.quote("USDJPY", february) is None
    with pytest.raises(KeyError, match="no quote for USDJPY yet: the data's first is at 2013"):
        market.mid("USDJPY", february)


def test_an_unknown_symbol_has_no_config_no_quote_and_no_mid(market: ReplayMarket) -> None:
    assert market.symbol_config("EURUSD") is None
    assert market.quote("EURUSD", market.start) is None
    with pytest.raises(KeyError, match="EURUSD: not a symbol of this replay"):
        market.mid("EURUSD", market.start)


DAY = 86_400.0


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_quote_is_never_from_the_future_and_quotes_never_go_back_in_time(
    market: ReplayMarket, data: st.DataObject
) -> None:
    symbol = data.draw(st.sampled_from(market.symbols))
    series = market.series(symbol)
    around = st.floats(float(series.time[0]) - DAY, float(series.time[-1]) + DAY)
    early, late = sorted((data.draw(around), data.draw(around)))
    first, second = market.quote(symbol, early), market.quote(symbol, late)

    if first is None:
        assert market.week.last_open_instant(early) < series.time[0]
    else:
        assert first.time <= early
        assert second is not None
        assert first.time <= second.time <= late


# -- small files: data quality, policies, intra-bar paths ------------------------------------


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _write(folder: Path, name: str, rows: list[str], header: str) -> Path:
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _ticks(folder: Path, rows: list[tuple[float, str, str]]) -> Path:
    lines = [f"{_iso(t)},{bid},{ask}" for t, bid, ask in rows]
    return _write(folder, "ticks.csv", lines, "timestamp,bid,ask")


def _tick_source(path: Path, policy: str, **extra: object) -> TickQuotesConfig:
    return TickQuotesConfig.model_validate(
        {"symbol": "EURUSD", "digits": 5, "path": path, "bad_quotes": policy, **extra}
    )


@pytest.fixture
def dirty_ticks(tmp_path: Path) -> Path:
    t = WEDNESDAY
    return _ticks(
        tmp_path,
        [
            (t, "1.10000", "1.10020"),  # line 2
            (t + 1, "1.10010", "1.10030"),  # line 3: superseded by line 4
            (t + 1, "1.10020", "1.10040"),  # line 4
            (t + 3, "0", "1.10050"),  # line 5: non-positive bid
            (t + 2, "1.10030", "1.10050"),  # line 6: stamped before line 5
            (t + 4, "", "1.10060"),  # line 7: missing bid
            (t + 5, "1.10080", "1.10061"),  # line 8: crossed
            (t + 6, "1.10070", "1.10090"),  # line 9
        ],
    )


def test_every_kind_of_bad_tick_is_counted_with_its_line(dirty_ticks: Path) -> None:
    report = load_quotes(_tick_source(dirty_ticks, "drop")).report

    assert report.rows_read == 8
    assert report.duplicates.rows == (3,)
    assert report.non_positive.rows == (5,)
    assert report.out_of_order.rows == (6,)
    assert report.missing.rows == (7,)
    assert report.crossed.rows == (8,)
    assert report.crossed_quotes == 1


def test_drop_removes_every_bad_tick_and_keeps_the_last_of_a_duplicated_instant(
    dirty_ticks: Path,
) -> None:
    series = load_quotes(_tick_source(dirty_ticks, "drop"))

    assert series.time.tolist() == [WEDNESDAY, WEDNESDAY + 1, WEDNESDAY + 6]
    assert series.bid.tolist() == [1.1, 1.1002, 1.1007]
    assert series.report.rows_used == 3


def test_repair_sorts_late_ticks_in_and_sets_a_crossed_tick_to_its_rounded_mid(
    dirty_ticks: Path,
) -> None:
    series = load_quotes(_tick_source(dirty_ticks, "repair"))

    assert (series.time - WEDNESDAY).tolist() == [0, 1, 2, 5, 6]
    # The mid of 1.10080 and 1.10061 is 1.100705, which the grid of 5 digits cannot hold.
    assert series.bid[3] == series.ask[3] == pytest.approx(1.1007, abs=1.1e-5)
    assert round(series.bid[3], 5) == series.bid[3]
    assert series.report.rows_used == 5


def test_refuse_raises_listing_each_problem_and_its_first_lines(dirty_ticks: Path) -> None:
    with pytest.raises(BadQuotesError) as caught:
        load_quotes(_tick_source(dirty_ticks, "refuse"))
    message = str(caught.value)

    for expected in (
        "crossed 1 (lines 8)",
        "missing 1 (lines 7)",
        "non_positive 1 (lines 5)",
        "duplicates 1 (lines 3)",
        "out_of_order 1 (lines 6)",
    ):
        assert expected in message
    assert "ticks.csv" in message


def test_clean_ticks_pass_under_refuse(tmp_path: Path) -> None:
    path = _ticks(tmp_path, [(WEDNESDAY, "1.1", "1.1002"), (WEDNESDAY + 1, "1.1", "1.1")])

    assert load_quotes(_tick_source(path, "refuse")).report.quotes_used == 2


def test_a_file_of_nothing_but_bad_quotes_leaves_no_market(tmp_path: Path) -> None:
    path = _ticks(tmp_path, [(WEDNESDAY, "1.1003", "1.1001")])

    with pytest.raises(BadQuotesError, match="no usable quote left"):
        load_quotes(_tick_source(path, "drop"))


def test_a_weekday_silence_is_a_gap_but_a_weekend_is_not(tmp_path: Path) -> None:
    weekday = _ticks(
        tmp_path,
        [
            (WEDNESDAY, "1.1", "1.1002"),
            (WEDNESDAY + 600, "1.1", "1.1002"),  # line 3: after ten quiet minutes
            (WEDNESDAY + 660, "1.1", "1.1002"),
        ],
    )
    gaps = load_quotes(_tick_source(weekday, "refuse", max_gap_minutes=5)).report.gaps
    assert gaps is not None
    assert (gaps.count, gaps.rows, gaps.longest_minutes) == (1, (3,), pytest.approx(10.0))

    friday = _posix("2024-01-12T21:58:00+00:00")
    sunday = _posix("2024-01-14T22:01:00+00:00")
    weekend = _ticks(tmp_path, [(friday, "1.1", "1.1002"), (sunday, "1.1", "1.1002")])
    gaps = load_quotes(_tick_source(weekend, "refuse", max_gap_minutes=5)).report.gaps
    assert gaps is not None
    # Two days apart, but only the two minutes before the close and one after the reopen count.
    assert (gaps.count, gaps.longest_minutes) == (0, pytest.approx(3.0))


def test_a_tick_stamped_while_the_week_is_closed_is_never_a_price_after_the_reopen(
    tmp_path: Path,
) -> None:
    friday = _posix("2024-01-12T21:59:00+00:00")
    saturday = _posix("2024-01-13T10:00:00+00:00")
    path = _ticks(tmp_path, [(friday, "1.1", "1.1002"), (saturday, "1.2", "1.2002")])
    replay = ReplayMarket([_tick_source(path, "refuse")])

    stale = replay.quote("EURUSD", saturday + 3600)
    assert stale is not None
    assert (stale.time, replay.is_open(saturday + 3600)) == (friday, False)
    # Older than the reopening: no price until a quote after it arrives.
    assert replay.quote("EURUSD", _posix("2024-01-14T22:00:00+00:00")) is None


def test_an_order_after_the_reopen_before_a_fresh_quote_is_refused_saying_so(
    tmp_path: Path,
) -> None:
    friday = _posix("2024-01-12T21:59:00+00:00")
    sunday = _posix("2024-01-14T22:03:00+00:00")
    path = _ticks(tmp_path, [(friday, "1.1", "1.1002"), (sunday, "1.2", "1.2002")])
    venue = Venue(ReplayMarket([_tick_source(path, "refuse")]))
    request = OrderRequest(
        client_order_id="AX1",
        symbol="EURUSD",
        direction=Direction.BUY,
        units=100_000,
        lots=1.0,
        price=0.0,
        deviation_points=None,
    )

    with pytest.raises(BrokerRejected) as refusal:
        venue.place(request, _posix("2024-01-14T22:01:00+00:00"))
    assert refusal.value.code == PRICE_OFF
    assert refusal.value.detail.endswith(
        "no fresh quote for EURUSD since the market reopened: the last one, at"
        " 2024-01-12T21:59:00+00:00, is from before the closure"
    )


def _bars(folder: Path, name: str, rows: list[tuple[float, float, float, float, float]]) -> Path:
    lines = [f"{_iso(t)},{o:.5f},{h:.5f},{lo:.5f},{c:.5f}" for t, o, h, lo, c in rows]
    return _write(folder, name, lines, "timestamp,open,high,low,close")


def _bar_source(bid: Path, ask: Path, policy: str, intra_bar: str) -> BarQuotesConfig:
    return BarQuotesConfig.model_validate(
        {
            "symbol": "EURUSD",
            "digits": 5,
            "bid_path": bid,
            "ask_path": ask,
            "bad_quotes": policy,
            "intra_bar": intra_bar,
        }
    )


SPREAD = 0.0002
RISING = (1.10000, 1.10300, 1.09900, 1.10200)
FALLING = (1.10200, 1.10300, 1.09900, 1.10000)


def test_a_bar_shows_only_at_its_close_so_nothing_is_seen_before_the_minute_is_over(
    tmp_path: Path,
) -> None:
    bid = _bars(tmp_path, "bid.csv", [(WEDNESDAY, *RISING), (WEDNESDAY + 60, *FALLING)])
    ask = _bars(
        tmp_path,
        "ask.csv",
        [
            (WEDNESDAY, *(p + SPREAD for p in RISING)),
            (WEDNESDAY + 60, *(p + SPREAD for p in FALLING)),
        ],
    )
    market = ReplayMarket([_bar_source(bid, ask, "refuse", "close")])

    assert market.quote("EURUSD", WEDNESDAY + 59.999) is None
    at_close = market.quote("EURUSD", WEDNESDAY + 60)
    assert at_close is not None and at_close.bid == RISING[3]
    assert at_close.ask - at_close.bid == pytest.approx(SPREAD)
    during_next = market.quote("EURUSD", WEDNESDAY + 119.9)
    assert during_next is not None and during_next.bid == RISING[3]


def test_a_bar_crossed_at_its_close_is_dropped_or_repaired_to_its_mid(
    tmp_path: Path,
) -> None:
    bid = _bars(tmp_path, "bid.csv", [(WEDNESDAY, *RISING)])
    # The ask's close lies below the bid's: crossed where the close is replayed.
    ask = _bars(tmp_path, "ask.csv", [(WEDNESDAY, 1.10020, 1.10320, 1.09920, 1.10190)])

    with pytest.raises(BadQuotesError, match="no usable quote"):
        load_quotes(_bar_source(bid, ask, "drop", "close"))
    repaired = load_quotes(_bar_source(bid, ask, "repair", "close"))
    assert repaired.report.crossed.rows == (2,)
    assert repaired.bid[0] == repaired.ask[0] == pytest.approx(1.10195, abs=1e-9)


# -- malformed files: clear errors, never a traceback from inside a library ----------------


GOOD = f"{_iso(WEDNESDAY)},1.10000,1.10020"


@pytest.mark.parametrize(
    ("header", "rows", "line", "problem"),
    [
        ("timestamp,bid", [GOOD.rsplit(",", 1)[0]], 1, "missing column(s) ask"),
        ("timestamp,bid,ask", [GOOD, f"{_iso(WEDNESDAY + 1)},1.1x,1.2"], 3, "bid '1.1x' is"),
        ("timestamp,bid,ask", [GOOD, f"{_iso(WEDNESDAY + 1)},1.1,nan"], 3, "not a finite"),
        ("timestamp,bid,ask", [GOOD, "yesterday,1.1,1.2"], 3, "'yesterday' is not ISO 8601"),
        ("timestamp,bid,ask", [GOOD, "2024-01-10 12:00:01,1.1,1.2"], 3, "has no UTC offset"),
        ("timestamp,bid,ask", [GOOD, f"{GOOD},7"], 3, "4 fields, the header has 3"),
        ("timestamp,bid,ask", [], 2, "no data rows"),
    ],
)
def test_a_malformed_tick_file_is_refused_naming_the_file_line_and_problem(
    tmp_path: Path, header: str, rows: list[str], line: int, problem: str
) -> None:
    path = _write(tmp_path, "bad.csv", rows, header)

    with pytest.raises(QuoteFileError) as caught:
        load_quotes(_tick_source(path, "drop"))
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert problem in str(caught.value)
    assert caught.value.line == line
    assert caught.traceback[-1].path.name == "quotes_csv.py"


def test_an_empty_file_is_refused_for_want_of_a_header(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")

    with pytest.raises(QuoteFileError, match=r"empty.csv:1: empty file"):
        load_quotes(_tick_source(path, "drop"))


def test_a_file_that_is_not_utf8_is_refused_at_the_line_of_the_bad_byte(
    tmp_path: Path,
) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(f"timestamp,bid,ask\n{GOOD}\n".encode() + b"\xff,1.1,1.2\n")

    with pytest.raises(QuoteFileError, match=r"latin.csv:3: not UTF-8 text"):
        load_quotes(_tick_source(path, "drop"))


def test_bid_and_ask_bars_whose_timestamps_differ_are_refused_at_the_first_difference(
    tmp_path: Path,
) -> None:
    bid = _bars(tmp_path, "bid.csv", [(WEDNESDAY, *RISING), (WEDNESDAY + 60, *RISING)])
    ask = _bars(tmp_path, "ask.csv", [(WEDNESDAY, *RISING), (WEDNESDAY + 120, *RISING)])

    with pytest.raises(QuoteFileError) as caught:
        load_quotes(_bar_source(bid, ask, "drop", "close"))
    assert str(caught.value).startswith(f"{ask}:3: timestamp")
    assert "differs from bid.csv line 3" in str(caught.value)


def test_bid_and_ask_bar_files_of_different_lengths_are_refused_at_the_first_extra_row(
    tmp_path: Path,
) -> None:
    bid = _bars(tmp_path, "bid.csv", [(WEDNESDAY, *RISING), (WEDNESDAY + 60, *RISING)])
    ask = _bars(tmp_path, "ask.csv", [(WEDNESDAY, *RISING)])

    with pytest.raises(QuoteFileError, match=r"bid.csv:3: 2 bars, but the other file has 1"):
        load_quotes(_bar_source(bid, ask, "drop", "close"))


def test_bars_less_than_a_minute_apart_are_refused(tmp_path: Path) -> None:
    rows = [(WEDNESDAY, *RISING), (WEDNESDAY + 30, *RISING)]
    bid, ask = _bars(tmp_path, "bid.csv", rows), _bars(tmp_path, "ask.csv", rows)

    with pytest.raises(QuoteFileError, match=r"bid.csv:3: bar starts 30 s after"):
        load_quotes(_bar_source(bid, ask, "drop", "close"))


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"path": "no-such-file.csv"}, "path"),
        ({"symbol": "usdjpy"}, "symbol"),
        ({"digits": 9}, "digits"),
        ({"bad_quotes": "ignore"}, "bad_quotes"),
        ({"max_gap_minutes": 0}, "max_gap_minutes"),
    ],
)
def test_a_tick_source_config_refuses_bad_settings_naming_the_field(
    tmp_path: Path, change: dict[str, object], field: str
) -> None:
    path = _ticks(tmp_path, [(WEDNESDAY, "1.1", "1.1002")])
    fields = {"symbol": "EURUSD", "digits": 5, "path": path, "bad_quotes": "drop", **change}

    with pytest.raises(ValidationError, match=field):
        TickQuotesConfig.model_validate(fields)


def test_a_bar_source_needs_two_different_files_and_a_declared_intra_bar_path(
    tmp_path: Path,
) -> None:
    bid = _bars(tmp_path, "bid.csv", [(WEDNESDAY, *RISING)])
    ask = _bars(tmp_path, "ask.csv", [(WEDNESDAY, *RISING)])

    with pytest.raises(ValidationError, match="two different files"):
        _bar_source(bid, bid, "drop", "close")
    with pytest.raises(ValidationError, match="intra_bar"):
        _bar_source(bid, ask, "drop", "HLOC")


def test_a_replay_refuses_no_sources_and_two_sources_for_one_symbol(tmp_path: Path) -> None:
    source = _tick_source(_ticks(tmp_path, [(WEDNESDAY, "1.1", "1.1002")]), "drop")

    with pytest.raises(ValueError, match="at least one"):
        ReplayMarket([])
    with pytest.raises(ValueError, match="two quote sources for EURUSD"):
        ReplayMarket([source, source])
