"""Fitting the synthetic market to recorded quotes, and sampling it back per minute.

`fit_market(series)` reads bid/ask quotes (one-minute bars or ticks, as `sim.quotes_csv`
loads them) and returns a `MarketConfig` whose synthetic market has the data's spread level
and hourly profile, volatility level and hourly profile, fat tails, volatility clustering,
rollover window and weekend reopen gaps. `simulate(config, seed, days)` runs that market
and samples its quote at every minute, so a report can set data and simulation side by side.

The fit works on the quote prevailing at the end of each minute (a bar's close), as the
stylized-facts literature does (Dacorogna et al. 2001, "An Introduction to High-Frequency
Finance", ch. 5: returns on a regular grid, deseasonalised by the hour-of-day profile).
Tails and clustering are fitted by moments: the excess kurtosis of deseasonalised 1-minute
returns and the autocorrelation of their absolute values at 1, 5, 15, 60 and 240 minutes,
matched by the closed forms of a log-normal stochastic volatility with normal jumps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from engine.core.instruments import pip_size
from sim.market import MarketConfig, SymbolConfig, SyntheticMarket
from sim.sessions import FxWeek
from sim.shape import Component, MarketShape
from sim.spreads import SpreadConfig

FloatArray = npt.NDArray[np.float64]
ACF_LAGS = (1, 5, 15, 60, 240)
REFINE_MONTHS = 4
REFINE_ROUNDS = 2
DEFAULT_SIMULATION_START = 1_704_672_000.0  # Monday 2024-01-08 00:00 UTC


class Quotes(Protocol):
    """What fitting reads: `sim.quotes_csv.QuoteSeries` or `SimulatedQuotes`."""

    symbol: str
    digits: int
    time: FloatArray
    bid: FloatArray
    ask: FloatArray


@dataclass(frozen=True, slots=True)
class SimulatedQuotes:
    """One symbol's simulated quote at the end of every open minute (POSIX seconds), shaped
    like `QuoteSeries` (symbol, digits, time, bid, ask) so one analysis reads both."""

    symbol: str
    digits: int
    time: FloatArray
    bid: FloatArray
    ask: FloatArray


@dataclass(frozen=True, slots=True)
class Minutes:
    """The quote prevailing at the end of each minute that has one, in pips."""

    time: FloatArray  # the minute's start, POSIX seconds
    mid: FloatArray  # pips
    spread: FloatArray  # pips
    pip: float


def last_of_each_minute(times: FloatArray) -> npt.NDArray[np.int64]:
    """Indices of the last quote struck in each UTC minute (times in increasing order): a
    bar's close, or the tick in force at the minute's end."""
    minute = np.floor(np.asarray(times) / 60.0)
    return np.flatnonzero(np.append(np.diff(minute) != 0, True))


def minutes(series: Quotes) -> Minutes:
    """The last quote of every minute (a bar's close, or the last tick)."""
    last = last_of_each_minute(series.time)
    minute = np.floor(np.asarray(series.time)[last] / 60.0)
    pip = pip_size(series.digits, 10.0**-series.digits)
    bid, ask = np.asarray(series.bid)[last], np.asarray(series.ask)[last]
    return Minutes(minute * 60.0, (bid + ask) / 2.0 / pip, (ask - bid) / pip, pip)


def returns(m: Minutes) -> tuple[FloatArray, FloatArray]:
    """1-minute mid returns in pips, and the start of the minute each one ends."""
    consecutive = np.diff(m.time) == 60.0
    return np.diff(m.mid)[consecutive], m.time[1:][consecutive]


def hour_of(times: FloatArray) -> npt.NDArray[np.int64]:
    return (times % 86_400.0 // 3600.0).astype(np.int64)


def abs_autocorrelation(m: Minutes, lags: Sequence[int] = ACF_LAGS) -> dict[int, float]:
    """The autocorrelation of absolute 1-minute returns on the minute grid (pairs of
    minutes both present)."""
    r, t = returns(m)
    return _grid_acf(np.abs(r), t, lags)


def _grid_acf(values: FloatArray, times: FloatArray, lags: Sequence[int]) -> dict[int, float]:
    index = ((times - times[0]) // 60.0).astype(np.int64)
    grid = np.full(int(index[-1]) + 1, np.nan)
    grid[index] = values
    return {lag: autocorrelation(grid, lag) for lag in lags}


def autocorrelation(grid: FloatArray, lag: int) -> float:
    """corr(x(t + lag), x(t)) over the pairs where both are measured (NaN marks a minute
    without a value), with the mean and variance of all measured values, as the sample
    autocorrelation of a series with gaps is usually taken (Cont 2001, section 2)."""
    measured = grid[~np.isnan(grid)]
    if measured.size < 2 or lag >= grid.size:
        return math.nan
    mean, variance = measured.mean(), measured.var()
    if variance == 0.0:
        return math.nan
    products = (grid[:-lag] - mean) * (grid[lag:] - mean)
    pairs = products[~np.isnan(products)]
    return float(pairs.mean() / variance) if pairs.size else math.nan


def excess_kurtosis(values: FloatArray) -> float:
    """Cont's kappa: the fourth central moment over the squared variance, minus 3 (the
    population moments, no small-sample correction: a month holds ~30,000 returns)."""
    centred = values - values.mean()
    variance = float(np.mean(centred**2))
    if variance == 0.0:
        return math.nan
    return float(np.mean(centred**4)) / variance**2 - 3.0


def fit_market(
    series: Quotes | Sequence[Quotes], week: FxWeek | None = None, *, refine: bool = True
) -> MarketConfig:
    """A synthetic market calibrated to `series` (one symbol's quotes, or several symbols:
    the shape is fitted to the first, each symbol's levels to its own data).

    The closed forms leave out what the hourly profile and the roll add to the raw facts;
    `refine` simulates the fit for REFINE_MONTHS months and fits again with the targets
    moved by what the simulation missed (absolute-return autocorrelations, kurtosis, the
    spread's p95 over its median), REFINE_ROUNDS times."""
    config = _fit(series, week, None)
    if not refine:
        return config
    data = minutes(series[0] if isinstance(series, Sequence) else series)
    r_data, _ = returns(data)
    acf_data = abs_autocorrelation(data)
    correction = _Correction({k: 0.0 for k in ACF_LAGS}, 1.0, 1.0)
    for _ in range(REFINE_ROUNDS):
        # One simulated month's autocorrelations wander by a few hundredths from seed to
        # seed (a month holds few independent volatility episodes): each round corrects by
        # the mean over REFINE_MONTHS months, the model's bias rather than one month's luck.
        months = [
            minutes(simulate(config, seed, 29, start=DEFAULT_SIMULATION_START))
            for seed in range(REFINE_MONTHS)
        ]
        acf_sim = {k: float(np.mean([abs_autocorrelation(m)[k] for m in months])) for k in ACF_LAGS}
        kurtosis_sim = float(np.mean([excess_kurtosis(returns(m)[0]) for m in months]))
        spread_sim = float(np.mean([_log_p95_over_median(m.spread) for m in months]))
        correction = _Correction(
            acf={k: correction.acf[k] + acf_data[k] - acf_sim[k] for k in ACF_LAGS},
            kurtosis=correction.kurtosis * (1.0 + excess_kurtosis(r_data)) / (1.0 + kurtosis_sim),
            spread_noise=correction.spread_noise * _log_p95_over_median(data.spread) / spread_sim,
        )
        config = _fit(series, week, correction)
    return config


@dataclass(frozen=True, slots=True)
class _Correction:
    acf: dict[int, float]  # added to the autocorrelation targets
    kurtosis: float  # multiplies 1 + the kurtosis target
    spread_noise: float  # multiplies the spread noise


def _log_p95_over_median(spread: FloatArray) -> float:
    return math.log(float(np.percentile(spread, 95)) / float(np.median(spread)))


def _fit(
    series: Quotes | Sequence[Quotes], week: FxWeek | None, correction: _Correction | None
) -> MarketConfig:
    many = list(series) if isinstance(series, Sequence) else [series]
    week = week if week is not None else FxWeek()
    first = minutes(many[0])
    volatility_shape, diffusive, x, t = _fit_volatility(first, correction)
    clustering = volatility_shape["clustering"]
    assert isinstance(clustering, tuple)
    log_variance = sum(c.sigma**2 for c in clustering)
    spreads, spread_shape = _fit_spreads(first, week, x, t, log_variance)
    if correction is not None:
        noise = float(spread_shape["spread_noise"]) * correction.spread_noise  # type: ignore[arg-type]
        spread_shape["spread_noise"] = round(noise, 4)
    gaps = _reopen_gaps(first, week)
    shape = MarketShape(
        **volatility_shape,
        **spread_shape,
        reopen_gap_pips=float(np.sqrt(np.mean(gaps**2))) if gaps.size else None,
    )
    symbols = []
    for one, data in zip(many, [first, *(minutes(s) for s in many[1:])], strict=True):
        r, _ = returns(data)
        level = diffusive if data is first else float(np.std(r)) / math.sqrt(60.0)
        outside = data.spread[_outside_roll(data.time, week, spreads)]
        symbols.append(
            SymbolConfig(
                symbol=one.symbol,
                start_mid=round(float(data.mid[0] * data.pip), one.digits),
                digits=one.digits,
                spread_pips=round(float(np.median(outside)), 3),
                volatility_pips=round(level, 4),
            )
        )
    return MarketConfig(
        symbols=tuple(symbols), week=week, regimes=None, spreads=spreads, shape=shape
    )


# -- spreads -------------------------------------------------------------------------------


def _since_roll_minutes(times: FloatArray, week: FxWeek) -> FloatArray:
    """Minutes since the daily roll, in (-720, 720]."""
    days, where = np.unique(times // 86_400.0, return_inverse=True)
    roll_hour = np.array([week.roll_hour_utc(d * 86_400.0) for d in days])[where]
    since = ((times % 86_400.0) / 60.0 - roll_hour * 60.0) % 1440.0
    return np.where(since > 720.0, since - 1440.0, since)


def _outside_roll(times: FloatArray, week: FxWeek, spreads: SpreadConfig) -> npt.NDArray:
    since = _since_roll_minutes(times, week)
    return (since < -spreads.rollover_minutes_before) | (since >= spreads.rollover_minutes_after)


def _fit_spreads(
    m: Minutes, week: FxWeek, x: FloatArray, t: FloatArray, log_variance: float
) -> tuple[SpreadConfig, dict[str, object]]:
    since = _since_roll_minutes(m.time, week)
    hours = hour_of(m.time)
    calm = (since < -30) | (since >= 120)
    profile = np.array([_median(m.spread[calm & (hours == h)]) for h in range(24)])
    for h in np.flatnonzero(np.isnan(profile)):  # hours inside the roll: their neighbours
        profile[h] = np.nanmean([profile[(h - 1) % 24], profile[(h + 1) % 24]])
    baseline = profile[hours]
    ratio = m.spread / baseline
    bins = np.arange(-60, 180, 5)
    by_bin = np.array([_median(ratio[(since >= b) & (since < b + 5)]) for b in bins])
    before = 0
    for b, r in zip(bins[bins < 0][::-1], by_bin[bins < 0][::-1], strict=True):
        if r < 1.2:
            break
        before = -int(b)
    pre = float(np.median(ratio[(since >= -before) & (since < 0)])) if before else 1.0
    after_bins, after_ratios = bins[bins >= 0], by_bin[bins >= 0]
    peak = float(max(after_ratios[0], 1.0))
    # The window ends where the spread is back within 20 % of the hour's usual.
    ends = np.flatnonzero((after_ratios <= 1.2) & (after_bins >= 15))
    after = int(after_bins[ends[0]]) if ends.size else 60
    plateau = float(np.median(after_ratios[(after_bins >= 15) & (after_bins < after)]))
    plateau = max(plateau, 1.0) if after > 15 else 1.0
    second = float(after_ratios[1])
    if peak > plateau and second > plateau:
        decay = float(np.clip(-5.0 / math.log((second - plateau) / (peak - plateau)), 0.5, 60))
    else:
        decay = 5.0
    spreads = SpreadConfig(
        rollover_minutes_before=float(before),
        rollover_minutes_after=float(after),
        rollover_multiplier=round(peak, 3),
        rollover_decay_minutes=round(decay, 2),
        rollover_plateau_multiplier=round(plateau, 3),
        pre_rollover_multiplier=round(max(pre, 1.0), 3),
        open_minutes=0.0,  # the weekly open is the roll: its widening is the roll's
        news_multiplier=3.0,
        volatile_multiplier=1.0,
    )
    level = float(np.median(m.spread[calm]))
    shape: dict[str, object] = {"spread_profile": tuple(round(p / level, 4) for p in profile)}
    # The stochastic part: log(spread / profile) outside the roll, against the volatility.
    ok = calm & (m.spread > 0)
    residual = np.log(m.spread[ok] / baseline[ok])
    local = _local_log_volatility(x, t, m.time[ok])
    both = ~np.isnan(local)
    cov = np.cov(residual[both], local[both])
    shape["spread_volatility_elasticity"] = round(float(max(cov[0, 1] / cov[1, 1], 0.0)), 4)
    beta = float(shape["spread_volatility_elasticity"])
    # The noise's spread is read off the calm ratio's 95th percentile (a normal's 1.645
    # standard deviations), the p95 being what costs a trader; less the volatility's part.
    spread_var = (math.log(np.percentile(ratio[calm], 95)) / 1.645) ** 2 - beta**2 * log_variance
    shape["spread_noise"] = round(math.sqrt(max(spread_var, 0.0025)), 4)
    lag1 = _grid_acf(residual - residual.mean(), m.time[ok], (1,))[1]
    phi = float(np.clip(lag1, 0.05, 0.995))
    shape["spread_noise_half_life_minutes"] = round(math.log(0.5) / math.log(phi), 3)
    return spreads, shape


def _median(values: FloatArray) -> float:
    return float(np.median(values)) if values.size else math.nan


def _local_log_volatility(r: FloatArray, t: FloatArray, at: FloatArray) -> FloatArray:
    """log of the 15-minute RMS return around each instant in `at` (NaN where unknown)."""
    index = ((t - t[0]) // 60.0).astype(np.int64)
    grid = np.full(int(index[-1]) + 1, np.nan)
    grid[index] = r**2
    filled = np.nan_to_num(grid)
    counts = np.convolve(~np.isnan(grid), np.ones(15), "same")
    mean = np.convolve(filled, np.ones(15), "same") / np.maximum(counts, 1)
    out = np.full(at.size, np.nan)
    where = ((at - t[0]) // 60.0).astype(np.int64)
    inside = (where >= 0) & (where < grid.size)
    values = mean[where[inside]]
    out[inside] = np.where(values > 0, 0.5 * np.log(np.maximum(values, 1e-12)), np.nan)
    return out


# -- volatility ----------------------------------------------------------------------------


def _fit_volatility(
    m: Minutes, correction: _Correction | None
) -> tuple[dict[str, object], float, FloatArray, FloatArray]:
    """The hourly profile, clustering and jumps; the diffusive level (pips per root
    second); and the deseasonalised returns with their times."""
    r, t = returns(m)
    hours = hour_of(t)
    rms = math.sqrt(float(np.mean(r**2)))
    profile = np.array([math.sqrt(float(np.mean(r[hours == h] ** 2))) for h in range(24)])
    profile = profile / math.sqrt(float(np.mean(profile**2)))
    x = r / profile[hours]
    acf = _grid_acf(np.abs(x), t, ACF_LAGS)
    kurtosis = excess_kurtosis(x)
    if correction is not None:
        acf = {k: acf[k] + correction.acf[k] for k in ACF_LAGS}
        kurtosis = (1.0 + kurtosis) * correction.kurtosis - 1.0
    clustering, jump_share, jumps_per_minute = _fit_clustering(acf, kurtosis)
    variance = rms**2
    jump_pips = math.sqrt(jump_share * variance / jumps_per_minute) if jump_share else 0.0
    shape: dict[str, object] = {
        "volatility_profile": tuple(round(float(p), 4) for p in profile),
        "clustering": clustering,
        "jumps_per_day": round(jumps_per_minute * 1440.0, 3) if jump_share else 0.0,
        "jump_pips": round(jump_pips, 3),
    }
    diffusive = math.sqrt((1.0 - jump_share) * variance / 60.0)
    return shape, diffusive, x, t


_SIGMAS = np.sqrt(np.array([0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.55, 0.7]))
_FAST = np.array([1.0, 2.0, 4.0, 8.0, 15.0, 30.0])  # half-lives, minutes
_SLOW = np.array([45.0, 90.0, 180.0, 360.0, 720.0, 1440.0])
_JUMP_SHARES = np.array([0.0, 0.05, 0.1, 0.2, 0.3])
_JUMP_RATES = np.array([0.002, 0.005, 0.01, 0.02, 0.05])  # per minute


def _fit_clustering(
    acf: dict[int, float], kurtosis: float
) -> tuple[tuple[Component, ...], float, float]:
    """Two log-volatility components and normal jumps matching the absolute-return
    autocorrelations and the excess kurtosis, by grid search over the closed forms:
    with v the diffusive variance, s2 = sum of sigma_c^2, and jumps of rate l and size j,
      kurtosis + 3 = (3 v^2 e^{4 s2} + 6 v l j^2 + 3 l j^4) / (v + l j^2)^2
      acf(k) = (2/pi) v e^{-s2} (e^{sum sigma_c^2 phi_c^k} - 1) / (v + l j^2 - (2/pi) v e^{-s2})
    (the jumps' own absolute values are left out of the covariance: they are rare)."""
    grid = np.array(list(itertools.product(_SIGMAS, _FAST, _SIGMAS, _SLOW, _JUMP_SHARES)))
    s1, h1, s2, h2, share = grid.T
    phi1, phi2 = 0.5 ** (1.0 / h1), 0.5 ** (1.0 / h2)
    total = s1**2 + s2**2
    v = 1.0 - share  # the total variance is 1
    lags = np.array(ACF_LAGS, dtype=np.float64)
    exponent = s1[:, None] ** 2 * phi1[:, None] ** lags + s2[:, None] ** 2 * phi2[:, None] ** lags
    mean_abs = (2.0 / math.pi) * v * np.exp(-total)
    model_acf = (mean_abs[:, None] * np.expm1(exponent)) / (1.0 - mean_abs)[:, None]
    target = np.array([acf[k] for k in ACF_LAGS])
    weights = np.array([1.0, 1.0, 1.0, 1.0, 0.5])
    acf_loss = np.sum(weights * (model_acf - target) ** 2, axis=1)
    best = (math.inf, 0, 0.0)
    for rate in _JUMP_RATES:
        # l j^2 = share: l j^4 = share^2 / l.
        fourth = 3.0 * v**2 * np.exp(4.0 * total) + 6.0 * v * share + 3.0 * share**2 / rate
        model_kurtosis = fourth - 3.0
        kurtosis_loss = (np.log1p(np.maximum(model_kurtosis, 0)) - math.log1p(kurtosis)) ** 2
        loss = acf_loss + 0.01 * kurtosis_loss
        index = int(np.argmin(loss))
        if loss[index] < best[0]:
            best = (float(loss[index]), index, float(rate))
    _, index, rate = best
    components = tuple(
        Component(sigma=round(float(sigma), 4), half_life_minutes=float(half))
        for sigma, half in ((s1[index], h1[index]), (s2[index], h2[index]))
        if sigma > 0.0
    )
    return components, float(share[index]), rate


# -- reopen gaps ---------------------------------------------------------------------------


def reopen_gaps(m: Minutes, week: FxWeek | None = None) -> FloatArray:
    """The mid's move over each weekly closure in the data, in pips."""
    return _reopen_gaps(m, week if week is not None else FxWeek())


def _reopen_gaps(m: Minutes, week: FxWeek) -> FloatArray:
    closed = np.diff(week.closed_seconds_until(m.time))
    across = np.flatnonzero(closed > 12 * 3600.0)
    return np.diff(m.mid)[across]


# -- simulation ----------------------------------------------------------------------------


def simulate(
    config: MarketConfig,
    seed: int,
    days: float,
    *,
    symbol: str | None = None,
    start: float | None = None,
) -> SimulatedQuotes:
    """The synthetic market of `config` sampled at the end of every open minute for `days`
    days from `start` (default: Monday 2024-01-08 00:00 UTC), for `symbol` (default: the
    first). `time` is each minute's start, as a bar's timestamp."""
    start = DEFAULT_SIMULATION_START if start is None else start
    chosen = symbol if symbol is not None else config.symbols[0].symbol
    market = SyntheticMarket(config, seed, start)
    spec = market.symbol_config(chosen)
    if spec is None:
        raise KeyError(f"unknown symbol {chosen}")
    count = int(days * 1440)
    times, bids, asks = [], [], []
    for k in range(count):
        t = start + 60.0 * k
        close = t + 59.0
        if not market.is_open(close):
            continue
        quote = market.quote(chosen, close)
        assert quote is not None
        times.append(t)
        bids.append(quote.bid)
        asks.append(quote.ask)
    return SimulatedQuotes(chosen, spec.digits, np.array(times), np.array(bids), np.array(asks))
