"""Calibration: the stylized facts of quotes, measured right on series whose answers are
known, and `arbitrex calibrate` as a user meets it."""

from __future__ import annotations

import math
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from scenarios.analysis.stylized import (
    ACF_LAGS,
    MinuteQuotes,
    StylizedFacts,
    autocorrelation,
    compare,
    excess_kurtosis,
    facts_frame,
    hourly_frame,
    join_minutes,
    minute_quotes,
    stylized_facts,
)
from scenarios.cli.app import app
from scenarios.market_file import MarketFileError, market_toml, read_market, write_market_file
from scenarios.spec import Scenario
from sim import calibration
from sim.calibration import SimulatedQuotes
from sim.market import MarketConfig, RegimeConfig, SymbolConfig
from sim.quote_store import ArrayQuotes
from sim.quotes_csv import DataQualityReport, ProblemRows, QuoteSeries
from sim.sessions import FxWeek
from sim.spreads import SpreadConfig

PIP = 0.0001
MONDAY = datetime(2024, 1, 8, tzinfo=UTC).timestamp()  # the market is open all day


def quotes(changes_pips: np.ndarray, spread_pips: float | np.ndarray = 0.8, start=MONDAY):
    """Minute quotes from 1.25 moving by the given changes (one per minute after the first)."""
    mid = 1.25 + np.concatenate([[0.0], np.cumsum(changes_pips)]) * PIP
    time = start + 60.0 * np.arange(mid.size)
    half = np.broadcast_to(np.asarray(spread_pips) * PIP / 2, mid.shape)
    return MinuteQuotes("GBPUSD", PIP, time, mid - half, mid + half)


def alternating(n: int, small: float = 1.0, large: float = 3.0) -> np.ndarray:
    """Returns whose sizes alternate small, large, with signs up, up, down, down, ..."""
    size = np.where(np.arange(n) % 2 == 0, small, large)
    sign = np.where(np.arange(n) // 2 % 2 == 0, 1.0, -1.0)
    return size * sign


def test_a_constant_spread_is_every_percentile_of_the_spread_and_every_hours_median():
    facts = stylized_facts(quotes(alternating(3000), spread_pips=0.8))
    assert facts.spread_median_pips == facts.spread_p95_pips == facts.spread_p99_pips == 0.8
    assert set(facts.hourly_spread_pips) == {0.8}


def test_the_hourly_spread_profile_is_the_median_spread_of_each_utc_hour():
    minutes = 24 * 60
    hour = (np.arange(minutes) // 60) % 24
    facts = stylized_facts(quotes(alternating(minutes - 1), spread_pips=0.5 + 0.1 * hour))
    assert facts.hourly_spread_pips == pytest.approx([0.5 + 0.1 * h for h in range(24)])


def test_spread_percentiles_are_those_of_the_minutes_spreads():
    spreads = np.arange(1, 101, dtype=float) / 10  # 0.1 .. 10.0 pips
    facts = stylized_facts(quotes(alternating(99), spread_pips=spreads))
    assert facts.spread_median_pips == pytest.approx(np.median(spreads))
    assert facts.spread_p95_pips == pytest.approx(np.percentile(spreads, 95))
    assert facts.spread_p99_pips == pytest.approx(np.percentile(spreads, 99))


def test_returns_of_plus_and_minus_one_pip_have_a_volatility_of_one_pip():
    facts = stylized_facts(quotes(alternating(1000, small=1.0, large=1.0)))
    assert facts.volatility_pips == pytest.approx(1.0)
    assert facts.returns == 1000
    # A symmetric two-point distribution has kurtosis 1, so excess kurtosis -2.
    assert facts.excess_kurtosis == pytest.approx(-2.0)


def test_a_return_of_a_tenth_of_the_minutes_has_excess_kurtosis_one_over_a_tenth_less_three():
    # Zero with probability 0.9, +-a with probability 0.1: m4 / m2^2 = 1 / 0.1 = 10.
    changes = np.zeros(2000)
    changes[::10] = np.tile([5.0, -5.0], 100)
    assert excess_kurtosis(changes) == pytest.approx(7.0)
    assert stylized_facts(quotes(changes)).excess_kurtosis == pytest.approx(7.0)


def test_absolute_returns_alternating_small_and_large_are_anticorrelated_at_odd_lags():
    facts = stylized_facts(quotes(alternating(2000)))
    # |r| = 1, 3, 1, 3, ...: odd lags pair a small with a large (-1), even lags like with like.
    assert facts.abs_return_acf == pytest.approx({1: -1.0, 5: -1.0, 15: -1.0, 60: 1.0, 240: 1.0})


def test_the_autocorrelation_of_a_series_with_gaps_uses_only_pairs_both_measured():
    grid = np.array([1.0, 3.0, np.nan, 3.0, 1.0, 3.0])
    # mean 2.2 and variance 0.96 of the measured; pairs at lag 1: (1,3), (3,1), (1,3).
    expected = np.mean([(1 - 2.2) * (3 - 2.2), (3 - 2.2) * (1 - 2.2), (1 - 2.2) * (3 - 2.2)])
    assert autocorrelation(grid, 1) == pytest.approx(expected / 0.96)
    assert math.isnan(autocorrelation(np.array([1.0, 1.0, 1.0]), 1))  # no variance


def test_a_missing_minute_removes_the_return_across_it_rather_than_counting_a_jump():
    q = quotes(alternating(1000, small=1.0, large=1.0))
    # Drop minute 500 and move everything after it 50 pips: a jump across the hole.
    keep = np.arange(q.time.size) != 500
    shift = np.where(np.arange(q.time.size) > 500, 50 * PIP, 0.0)
    holed = MinuteQuotes("GBPUSD", PIP, q.time[keep], (q.bid + shift)[keep], (q.ask + shift)[keep])
    facts = stylized_facts(holed)
    assert facts.returns == 998
    assert facts.volatility_pips == pytest.approx(1.0)


def test_a_weekend_gives_a_reopen_gap_and_its_frozen_minutes_are_not_measured():
    friday_2100 = datetime(2024, 1, 12, 21, 0, tzinfo=UTC).timestamp()
    sunday_2200 = datetime(2024, 1, 14, 22, 0, tzinfo=UTC).timestamp()
    # A simulation may quote all weekend at its frozen price: 49 h of minutes, then +12 pips.
    n = int((sunday_2200 - friday_2100) / 60) + 60
    changes = np.zeros(n - 1)
    changes[:59] = alternating(59, 1.0, 1.0)
    changes[int((sunday_2200 - friday_2100) / 60) - 1] = 12.0
    facts = stylized_facts(quotes(changes, start=friday_2100))
    assert facts.minutes == 120  # 21:00-21:59 Friday, 22:00-22:59 Sunday
    assert facts.reopen_gaps_pips == pytest.approx((12.0,))
    assert facts.reopen_gap_median_pips == pytest.approx(12.0)
    assert facts.returns == 59 + 59


def series(time: list[float], bid: list[float], ask: list[float]) -> QuoteSeries:
    empty = ProblemRows()
    report = DataQualityReport(
        symbol="GBPUSD",
        files=("x.csv",),
        policy="repair",
        intra_bar=None,
        rows_read=len(time),
        rows_used=len(time),
        quotes_used=len(time),
        crossed=empty,
        crossed_quotes=0,
        missing=empty,
        non_positive=empty,
        duplicates=empty,
        out_of_order=empty,
        gaps=None,
    )
    arrays = (np.array(v, dtype=float) for v in (time, bid, ask))
    return QuoteSeries("GBPUSD", 5, ArrayQuotes(*arrays), report)


def test_the_quote_of_a_minute_is_the_last_one_struck_in_it():
    t = MONDAY
    s = series(
        [t, t + 15, t + 45, t + 60, t + 130],
        [1.1, 1.2, 1.3, 1.4, 1.5],
        [1.11, 1.21, 1.31, 1.41, 1.51],
    )
    m = minute_quotes(s)
    assert m.time.tolist() == [t, t + 60, t + 120]
    assert m.bid.tolist() == [1.3, 1.4, 1.5]
    assert m.pip == pytest.approx(PIP)


def test_joined_files_give_one_series_and_the_later_file_wins_a_shared_minute():
    a = quotes(np.ones(9))
    b = quotes(np.ones(9), start=MONDAY + 5 * 60)
    joined = join_minutes([a, b])
    assert joined.time.size == 15
    assert joined.bid[5] == b.bid[0]


def test_fewer_than_two_minutes_are_refused_in_one_line():
    with pytest.raises(ValueError, match="at least 2"):
        MinuteQuotes("GBPUSD", PIP, np.array([MONDAY]), np.array([1.0]), np.array([1.1]))


def facts(**changes: object) -> StylizedFacts:
    base = stylized_facts(quotes(alternating(3000)))
    base = base.model_copy(update={"excess_kurtosis": 10.0})
    return base.model_copy(update=changes)


def passed(data: StylizedFacts, simulated: StylizedFacts) -> dict[str, bool | None]:
    return {c.fact: c.passed for c in compare(data, simulated)}


def test_a_simulation_equal_to_the_data_meets_every_target():
    result = passed(facts(), facts())
    assert all(ok for ok in result.values() if ok is not None)
    assert result["spread p99 (pips)"] is None  # reported, without a target


@pytest.mark.parametrize(
    ("change", "fact", "ok"),
    [
        ({"spread_median_pips": 0.8 * 1.09}, "spread median (pips)", True),
        ({"spread_median_pips": 0.8 * 1.11}, "spread median (pips)", False),
        ({"spread_p95_pips": 0.8 * 0.89}, "spread p95 (pips)", False),
        ({"volatility_pips": 2.0 * 1.05}, "1-min volatility (pips)", True),
        ({"volatility_pips": 2.0 * 0.85}, "1-min volatility (pips)", False),
        ({"excess_kurtosis": 19.0}, "excess kurtosis", True),
        ({"excess_kurtosis": 21.0}, "excess kurtosis", False),
        ({"excess_kurtosis": 4.9}, "excess kurtosis", False),
        ({"excess_kurtosis": -1.0}, "excess kurtosis", False),
    ],
)
def test_each_target_passes_inside_its_tolerance_and_fails_outside(change, fact, ok):
    data = facts()
    if "volatility_pips" in change:
        data = data.model_copy(update={"volatility_pips": 2.0})
    assert passed(data, facts(**change))[fact] is ok


def test_an_autocorrelation_off_by_more_than_five_hundredths_fails_up_to_an_hour_only():
    data = facts(abs_return_acf={lag: 0.2 for lag in ACF_LAGS})
    near = facts(abs_return_acf={1: 0.24, 5: 0.16, 15: 0.2, 60: 0.26, 240: 0.9})
    result = passed(data, near)
    assert [result[f"acf |r| lag {lag} min"] for lag in ACF_LAGS] == [True, True, True, False, None]


def test_the_hourly_profiles_must_correlate_above_eight_tenths():
    rising = tuple(0.5 + 0.1 * h for h in range(24))
    data = facts(hourly_spread_pips=rising)
    assert passed(data, facts(hourly_spread_pips=tuple(2 * s for s in rising)))[
        "hourly median spread: correlation"
    ]
    assert not passed(data, facts(hourly_spread_pips=tuple(reversed(rising))))[
        "hourly median spread: correlation"
    ]
    flat = facts(hourly_spread_pips=(0.8,) * 24)
    assert not passed(data, flat)["hourly median spread: correlation"]


def test_the_notebook_tables_hold_one_row_per_fact_and_per_hour():
    alone, side_by_side = facts_frame(facts()), facts_frame(facts(), facts())
    assert list(alone.columns) == ["data"]
    assert "spread median (pips)" in alone.index and "acf |r| lag 240 min" in alone.index
    assert list(side_by_side.columns) == ["data", "simulated", "target", "passed"]
    assert len(hourly_frame(facts(), facts())) == 24


# --- the command ---------------------------------------------------------------------------


def bar_slice(fx_data: Path, folder: Path, rows: int) -> tuple[Path, Path]:
    """The first `rows` bars of the GBP/USD month, under the data's own names."""
    paths = []
    for side in ("bid", "ask"):
        name = f"gbpusd-m1-{side}-2012-02.csv"
        lines = (fx_data / name).read_text().splitlines(keepends=True)[: rows + 1]
        (folder / name).write_text("".join(lines))
        paths.append(folder / name)
    return paths[0], paths[1]


def calibrate(*args: str) -> Result:
    """`arbitrex calibrate ARGS`, in this process: the command as typed, minus the start-up."""
    return CliRunner().invoke(app, ["calibrate", *args])


def refused(result: Result, out: Path, message: str) -> None:
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists()


def test_a_price_that_is_no_number_is_refused_in_one_line_and_no_market_is_written(
    fx_data, tmp_path
):
    bid, ask = bar_slice(fx_data, tmp_path, 50)
    lines = bid.read_text().splitlines(keepends=True)
    lines[10] = lines[10].replace(",1.", ",one.", 1)
    bid.write_text("".join(lines))
    out = tmp_path / "market.toml"
    refused(calibrate(str(bid), str(ask), "--out", str(out)), out, f"{bid}:11: open")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no ask file", "gbpusd-m1-ask-2012-02.csv is not among the data"),
        ("a missing file", "no-such.csv"),
        ("a file of neither bars nor ticks", "neither ticks"),
        ("a name without a symbol", "give --symbol"),
        ("a bad --symbol", "--symbol"),
        ("a bad --bad-quotes", "--bad-quotes"),
    ],
)
def test_malformed_input_gets_one_line_of_error_exit_2_and_no_file(
    fx_data, tmp_path, case, message
):
    bid, ask = bar_slice(fx_data, tmp_path, 20)
    out = tmp_path / "market.toml"
    args = {
        "no ask file": [str(bid)],
        "a missing file": [str(tmp_path / "no-such.csv")],
        "a file of neither bars nor ticks": [str(_write(tmp_path / "gbpusd.csv", "a,b\n1,2\n"))],
        "a name without a symbol": [str(_write(tmp_path / "q.csv", "timestamp,bid,ask\n"))],
        "a bad --symbol": [str(bid), str(ask), "--symbol", "gbp"],
        "a bad --bad-quotes": [str(bid), str(ask), "--bad-quotes", "ignore"],
    }[case]
    refused(calibrate(*args, "--out", str(out)), out, message)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_market_file_read_back_as_a_scenarios_market_gives_the_market_written():
    fitted = MarketConfig(
        symbols=(SymbolConfig(symbol="GBPUSD", start_mid=1.5921, spread_pips=0.7),),
        regimes=RegimeConfig(mean_calm_minutes=95.5, volatile_multiplier=2.25),
        spreads=SpreadConfig(rollover_minutes_after=55.0),
    )
    text = market_toml(fitted, ["fitted from gbpusd-m1-bid-2012-02.csv"])
    assert text.startswith("# fitted from gbpusd-m1-bid-2012-02.csv\n")
    assert read_market(text, "market.toml") == fitted
    # As a scenario file's [market] section, it runs the same market.
    scenario = tomllib.loads(f'name = "fitted"\n{text}')
    assert Scenario.model_validate(scenario).market_config() == fitted


def test_a_market_no_scenario_can_declare_is_refused_and_no_file_is_left(tmp_path):
    out = tmp_path / "market.toml"
    # A scenario's week is the New York one: a week fixed in UTC cannot be declared.
    with pytest.raises(MarketFileError, match="week would differ"):
        write_market_file(out, MarketConfig(week=FxWeek(zone=None)))
    assert not out.exists()


def fake_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in fit and simulation: the command's plumbing, not the fit, is under test."""

    def fit(quotes):
        mid = round(float(quotes.bid[-1] + quotes.ask[-1]) / 2, quotes.digits)
        symbol = SymbolConfig(symbol=quotes.symbol, start_mid=mid, digits=quotes.digits)
        return MarketConfig(symbols=(symbol,))

    def simulate(config, seed, days, *, symbol=None, start=None):
        rng = np.random.default_rng(seed)
        n = int(days * 1440)
        mid = config.symbols[0].start_mid + np.cumsum(rng.standard_t(4, n)) * 1e-4
        time = start + 60.0 * np.arange(1, n + 1)
        return SimulatedQuotes(symbol, 5, time, mid - 4e-5, mid + 4e-5)

    monkeypatch.setattr(calibration, "fit_market", fit)
    monkeypatch.setattr(calibration, "simulate", simulate)


def test_a_market_without_regimes_is_written_with_regimes_false():
    text = market_toml(MarketConfig(regimes=None))
    assert "regimes = false" in text
    assert read_market(text, "m.toml").regimes is None


@pytest.mark.slow  # a fit refines over four simulated months: ~15 s
def test_calibrating_gbpusd_bars_over_a_weekend_writes_a_market_and_prints_the_report(
    fx_data, tmp_path
):
    bid, ask = bar_slice(fx_data, tmp_path, 5000)  # Wednesday 1 to Monday 6 February
    out = tmp_path / "fitted" / "market.toml"
    result = calibrate(str(bid), str(ask), "--out", str(out), "--days", "7")
    assert result.exit_code == 0, result.stderr
    market = read_market(out.read_text(), str(out))
    assert market.symbols[0].symbol == "GBPUSD" and market.symbols[0].digits == 5
    assert market.shape is not None and market.regimes is None  # clustering fitted instead
    assert "gbpusd-m1-bid-2012-02.csv" in out.read_text()  # where the numbers come from
    for fact in ("spread median (pips)", "excess kurtosis", "acf |r| lag 240 min"):
        assert fact in result.stdout
    assert "by UTC hour" in result.stdout and f"market written to {out}" in result.stdout


def test_check_exits_1_when_the_simulation_misses_a_target(fx_data, tmp_path, monkeypatch):
    fake_fit(monkeypatch)  # a flat spread: the hourly profile cannot correlate
    bid, ask = bar_slice(fx_data, tmp_path, 1440)
    result = calibrate(str(bid), str(ask), "--out", str(tmp_path / "m.toml"), "--check")
    assert result.exit_code == 1 and "FAIL" in result.stdout


def test_tick_files_are_calibrated_too_with_symbol_and_digits_read_from_the_data(
    fx_data, tmp_path, monkeypatch
):
    fake_fit(monkeypatch)
    out = tmp_path / "m.toml"
    result = calibrate(str(fx_data / "usdjpy-ticks-2013-01.csv"), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    symbol = read_market(out.read_text(), "m.toml").symbols[0]
    assert (symbol.symbol, symbol.digits) == ("USDJPY", 3)
