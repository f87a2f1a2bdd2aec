"""The synthetic market's shape against real GBP/USD minute bars: `fit_market` fits it and
a simulated month from the fitted config matches the data's stylized facts (issue 17's
targets), measured here by a small stand-alone computation of the same facts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.calibration import (
    ACF_LAGS,
    abs_autocorrelation,
    excess_kurtosis,
    fit_market,
    hour_of,
    minutes,
    reopen_gaps,
    returns,
    simulate,
)
from sim.liquidity import DepthLadder
from sim.market import MarketConfig, SyntheticMarket
from sim.quotes_csv import BarQuotesConfig, QuoteSeries, load_quotes
from sim.sessions import FxWeek


@pytest.fixture(scope="module")
def gbpusd(fx_data: Path) -> QuoteSeries:
    return load_quotes(
        BarQuotesConfig(
            symbol="GBPUSD",
            digits=5,
            bid_path=fx_data / "gbpusd-m1-bid-2012-02.csv",
            ask_path=fx_data / "gbpusd-m1-ask-2012-02.csv",
            bad_quotes="drop",
            intra_bar="close",
        )
    )


@pytest.fixture(scope="module")
def fitted(gbpusd: QuoteSeries) -> MarketConfig:
    return fit_market(gbpusd)


def facts(series) -> dict:
    m = minutes(series)
    r, _ = returns(m)
    hours = hour_of(m.time)
    return {
        "median": np.median(m.spread),
        "p95": np.percentile(m.spread, 95),
        "volatility": np.std(r),
        "kurtosis": excess_kurtosis(r),
        "acf": abs_autocorrelation(m),
        "hourly": np.array([np.median(m.spread[hours == h]) for h in range(24)]),
    }


@pytest.mark.slow  # the fit of a month refines over four simulated ones: ~15 s
def test_a_month_simulated_from_the_gbpusd_fit_matches_the_datas_stylized_facts(gbpusd, fitted):
    data, sim = facts(gbpusd), facts(simulate(fitted, seed=1, days=29))
    assert sim["median"] == pytest.approx(data["median"], rel=0.10)
    assert sim["p95"] == pytest.approx(data["p95"], rel=0.10)
    assert sim["volatility"] == pytest.approx(data["volatility"], rel=0.10)
    assert data["kurtosis"] / 2 < sim["kurtosis"] < data["kurtosis"] * 2
    for lag in (1, 5, 15, 60):
        assert sim["acf"][lag] == pytest.approx(data["acf"][lag], abs=0.05), lag
    assert np.corrcoef(data["hourly"], sim["hourly"])[0, 1] > 0.8


@pytest.mark.slow  # shares the month's fit
def test_the_fit_finds_an_hour_long_roll_fat_tails_and_clustering_that_lasts_hours(fitted):
    spreads, shape = fitted.spreads, fitted.shape
    assert shape is not None
    assert spreads.rollover_minutes_before + spreads.rollover_minutes_after >= 50
    assert spreads.rollover_multiplier > 3 and spreads.rollover_plateau_multiplier > 1.3
    assert max(c.half_life_minutes for c in shape.clustering) >= 60
    assert shape.jumps_per_day > 0 and shape.reopen_gap_pips == pytest.approx(13.2, abs=0.1)
    # London and New York trade tighter and busier than Asia.
    assert shape.spread_profile[10] < shape.spread_profile[2]
    assert shape.volatility_profile[15] > shape.volatility_profile[4]


def test_the_data_itself_shows_the_facts_the_model_is_built_for(gbpusd):
    data = facts(gbpusd)
    assert data["kurtosis"] > 10  # Cont 2001: heavy tails
    assert all(data["acf"][lag] > 0.05 for lag in ACF_LAGS[:4])  # clustering for hours
    assert data["hourly"].max() / data["hourly"].min() > 3  # a strong intraday profile
    assert len(reopen_gaps(minutes(gbpusd))) == 4  # four weekends in February 2012


def test_the_weekend_freezes_the_price_and_reopens_with_a_gap_not_two_days_of_diffusion():
    friday, sunday = 1_705_096_740.0, 1_705_269_600.0  # 2024-01-12 21:59, 2024-01-14 22:00
    gaps = []
    for seed in range(40):
        market = SyntheticMarket(MarketConfig(), seed, friday)
        before = market.mid("EURUSD", friday + 61)  # 22:00:01, closed
        assert market.mid("EURUSD", friday + 3_600) == before  # frozen
        gaps.append((market.mid("EURUSD", sunday) - before) / 0.0001)
    # 13.2 pips RMS by default; two days of 0.2 pips per root second would be ~83.
    assert 7 < np.sqrt(np.mean(np.square(gaps))) < 20


def test_depth_thins_when_the_spread_widens_at_the_roll():
    market = SyntheticMarket(MarketConfig(), 3, 1_704_783_600.0)  # Tuesday 07:00 UTC
    evening = market.liquidity("EURUSD", 1_704_837_600.0 - 7_200)  # 20:00 UTC
    roll = market.liquidity("EURUSD", 1_704_837_600.0)  # 22:00 UTC
    assert roll < 0.5 and roll < evening


def test_a_week_without_a_time_zone_keeps_fixed_utc_hours():
    week = FxWeek(zone=None)
    july_friday_2130 = 1_720_819_800.0  # 2024-07-12 21:30 UTC
    assert week.is_open(july_friday_2130) and not FxWeek().is_open(july_friday_2130)


def test_a_thinned_ladder_keeps_its_shape_with_fewer_units():
    ladder = DepthLadder(top_units=1_000_000)
    assert ladder.thinned(1.0) is ladder
    assert ladder.thinned(0.25).top_units == 250_000 and ladder.thinned(0.25).levels == 5


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(0.0, 3 * 86_400.0), min_size=1, max_size=12))
def test_the_shaped_market_is_a_function_of_time_alone_across_a_weekend(reads):
    """Reads at any instants, or none, leave the path through clustering, jumps, the roll
    and a reopen gap unchanged."""
    friday = 1_705_050_000.0  # 2024-01-12 09:00 UTC
    a, b = SyntheticMarket(MarketConfig(), 5, friday), SyntheticMarket(MarketConfig(), 5, friday)
    for offset in sorted(reads):
        a.quote("GBPUSD", friday + offset)
    end = friday + 3 * 86_400.0 + 1.0  # Monday 09:00
    assert a.quote("GBPUSD", end) == b.quote("GBPUSD", end)
