"""The stylized facts of a bid/ask quote series, and a comparison of two series' facts.

Calibration asks "does the synthetic market look like the real one?"; these are the numbers
that answer it, measured the same way on data and on a simulation. The facts of returns are
those of R. Cont, "Empirical properties of asset returns: stylized facts and statistical
issues", Quantitative Finance 1 (2001) 223-236 (doi:10.1080/713665670):

- heavy tails: the excess kurtosis of returns, kappa = <(r - <r>)^4> / sigma^4 - 3, zero for
  a Gaussian and large and positive at short time scales;
- volatility clustering and the slow decay of autocorrelation in absolute returns:
  C_1(tau) = corr(|r(t + tau)|, |r(t)|), positive and decaying slowly over hours, while
  returns themselves are nearly uncorrelated;
- intraday seasonality of volatility, measured here by UTC hour.

To those the execution-cost facts of FX quotes are added: the spread's median, 95th and 99th
percentile in pips and its median by UTC hour (dealers widen at the 22:00 rollover and in
thin Asian hours), and the gap in the mid between the last quote before a weekly close and
the first after the reopen.

Everything is measured on one quote per minute: the last quote struck in each UTC minute
(`minute_quotes`), which for one-minute bars is the bar's close. A return is the change of
the mid between two consecutive minutes, in pips; a return across a missing minute or a
weekend is not a one-minute return and is left out, so gaps neither shrink the volatility
with zeros nor fatten the tails with multi-minute moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from engine.core.instruments import pip_size
from sim.calibration import Quotes, autocorrelation, excess_kurtosis, last_of_each_minute
from sim.sessions import FxWeek

FloatArray = npt.NDArray[np.float64]

ACF_LAGS = (1, 5, 15, 60, 240)  # minutes
MINUTE = 60.0
HOURS = 24

# The targets of issue 17: how near a simulated month must come to the data.
RELATIVE_TOLERANCE = 0.10  # median and p95 spread, 1-minute volatility
KURTOSIS_FACTOR = 2.0
ACF_TOLERANCE = 0.05  # absolute, at lags up to CHECKED_ACF_MAX_LAG
CHECKED_ACF_MAX_LAG = 60
PROFILE_CORRELATION = 0.8
PROFILE_ROW = "hourly median spread: correlation"


@dataclass(frozen=True, slots=True)
class MinuteQuotes:
    """One quote per minute: `time` is the minute's start (POSIX seconds, strictly
    increasing, multiples of 60), `bid` and `ask` the last quote struck in it."""

    symbol: str
    pip: float
    time: FloatArray
    bid: FloatArray
    ask: FloatArray

    def __post_init__(self) -> None:
        n = len(self.time)
        if len(self.bid) != n or len(self.ask) != n:
            raise ValueError("time, bid and ask must have the same length")
        if n < 2:
            raise ValueError(f"{self.symbol}: {n} minute(s) of quotes; facts need at least 2")
        if np.any(np.diff(self.time) <= 0.0):
            raise ValueError(f"{self.symbol}: minute times must be strictly increasing")
        if not self.pip > 0.0:
            raise ValueError(f"{self.symbol}: pip must be positive, not {self.pip}")


def minute_quotes(series: Quotes) -> MinuteQuotes:
    """The last quote of each UTC minute: the bar's close for bars, the quote in force at the
    minute's end for ticks. Sampling ticks on the minute grid makes them comparable with bars
    and with a simulation sampled the same way."""
    last = last_of_each_minute(series.time)
    return MinuteQuotes(
        symbol=series.symbol,
        pip=pip_size(series.digits, 10.0**-series.digits),
        time=np.floor(series.time[last] / MINUTE) * MINUTE,
        bid=np.asarray(series.bid[last], dtype=np.float64),
        ask=np.asarray(series.ask[last], dtype=np.float64),
    )


def join_minutes(parts: Sequence[MinuteQuotes]) -> MinuteQuotes:
    """Several files of one symbol as one series (e.g. consecutive months); a minute found in
    two files keeps the later file's quote."""
    if not parts:
        raise ValueError("no quotes to join")
    if len({(p.symbol, p.pip) for p in parts}) != 1:
        raise ValueError("quotes of different symbols or pip sizes cannot be joined")
    time = np.concatenate([p.time for p in parts])
    bid = np.concatenate([p.bid for p in parts])
    ask = np.concatenate([p.ask for p in parts])
    # Reversed so that np.unique's first occurrence is the later file's.
    _, first = np.unique(time[::-1], return_index=True)
    keep = len(time) - 1 - first
    return MinuteQuotes(parts[0].symbol, parts[0].pip, time[keep], bid[keep], ask[keep])


OptionalFloat = float | None


class StylizedFacts(BaseModel):
    """The facts of one quote series; spreads, volatility and gaps in pips."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    minutes: Annotated[int, Field(ge=0)]
    returns: Annotated[int, Field(ge=0, description="one-minute returns measured")]
    spread_median_pips: float
    spread_p95_pips: float
    spread_p99_pips: float
    hourly_spread_pips: tuple[OptionalFloat, ...] = Field(
        description="median spread by UTC hour 0..23; None for an hour without quotes"
    )
    volatility_pips: float = Field(description="std of one-minute mid changes")
    hourly_volatility_pips: tuple[OptionalFloat, ...]
    excess_kurtosis: float
    abs_return_acf: dict[int, OptionalFloat] = Field(
        description="autocorrelation of |one-minute return| by lag in minutes"
    )
    reopen_gaps_pips: tuple[float, ...] = Field(
        description="mid after a weekly reopen minus mid before the close, oldest first"
    )

    @property
    def reopen_gap_median_pips(self) -> float | None:
        gaps = np.abs(self.reopen_gaps_pips)
        return float(np.median(gaps)) if gaps.size else None


def stylized_facts(quotes: MinuteQuotes, week: FxWeek | None = None) -> StylizedFacts:
    """Measure the facts of `quotes`. Minutes while `week` says the market is closed are left
    out (a simulated market may keep quoting its frozen price), and a weekend between two
    kept minutes makes a reopen gap."""
    week = week if week is not None else FxWeek()
    open_ = np.fromiter((week.is_open(float(t)) for t in quotes.time), bool, len(quotes.time))
    time, bid, ask = quotes.time[open_], quotes.bid[open_], quotes.ask[open_]
    if time.size < 2:
        raise ValueError(f"{quotes.symbol}: fewer than 2 minutes of open market to measure")
    pip = quotes.pip
    # Rounded: prices are decimals, and 0.7 pips should not print as 0.700000000000145.
    spread = np.round((ask - bid) / pip, 6)
    mid = (ask + bid) / 2.0 / pip
    hour = ((time % 86_400.0) // 3600.0).astype(np.int64)

    minute = np.rint(time / MINUTE).astype(np.int64)
    consecutive = np.diff(minute) == 1
    change = np.diff(mid)
    returns = change[consecutive]
    # The grid of returns by minute, NaN where none was measured, for lagged pairs.
    grid = np.full(int(minute[-1] - minute[0]) + 1, np.nan)
    grid[(minute[1:] - minute[0])[consecutive]] = returns

    closed = np.diff(week.closed_seconds_until(time)) > 0.0
    return StylizedFacts(
        symbol=quotes.symbol,
        minutes=int(time.size),
        returns=int(returns.size),
        spread_median_pips=float(np.median(spread)),
        spread_p95_pips=float(np.percentile(spread, 95)),
        spread_p99_pips=float(np.percentile(spread, 99)),
        hourly_spread_pips=_by_hour(spread, hour, np.median),
        volatility_pips=_std(returns),
        hourly_volatility_pips=_by_hour(returns, hour[1:][consecutive], _std),
        excess_kurtosis=excess_kurtosis(returns),
        abs_return_acf={lag: _or_none(autocorrelation(np.abs(grid), lag)) for lag in ACF_LAGS},
        reopen_gaps_pips=tuple(float(g) for g in change[closed]),
    )


def _std(values: FloatArray) -> float:
    return float(values.std()) if values.size else math.nan


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _by_hour(
    values: FloatArray, hour: npt.NDArray[np.int64], stat: object
) -> tuple[float | None, ...]:
    out: list[float | None] = []
    for h in range(HOURS):
        chosen = values[hour == h]
        out.append(float(stat(chosen)) if chosen.size else None)  # type: ignore[operator]
    return tuple(out)


class Check(BaseModel):
    """One fact of the data beside the simulation's, and whether it meets its target
    (`passed` is None for a fact reported without a target)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fact: str
    data: float | None
    simulated: float | None
    target: str
    passed: bool | None


def compare(data: StylizedFacts, simulated: StylizedFacts) -> tuple[Check, ...]:
    """The data's facts against a simulation's, each with the target of issue 17."""
    checks = [
        _relative("spread median (pips)", data.spread_median_pips, simulated.spread_median_pips),
        _relative("spread p95 (pips)", data.spread_p95_pips, simulated.spread_p95_pips),
        Check(
            fact="spread p99 (pips)",
            data=data.spread_p99_pips,
            simulated=simulated.spread_p99_pips,
            target="reported",
            passed=None,
        ),
        Check(
            fact=PROFILE_ROW,
            data=None,  # a correlation of the data's profile with the simulation's
            simulated=_or_none(
                profile_correlation(data.hourly_spread_pips, simulated.hourly_spread_pips)
            ),
            target=f"> {PROFILE_CORRELATION:g}",
            passed=None,
        ),
        _relative("1-min volatility (pips)", data.volatility_pips, simulated.volatility_pips),
        _kurtosis(data.excess_kurtosis, simulated.excess_kurtosis),
    ]
    corr = checks[3].simulated
    checks[3] = checks[3].model_copy(
        update={"passed": corr is not None and corr > PROFILE_CORRELATION}
    )
    for lag in ACF_LAGS:
        d, s = data.abs_return_acf.get(lag), simulated.abs_return_acf.get(lag)
        checked = lag <= CHECKED_ACF_MAX_LAG
        checks.append(
            Check(
                fact=f"acf |r| lag {lag} min",
                data=d,
                simulated=s,
                target=f"± {ACF_TOLERANCE:g}" if checked else "reported",
                passed=(d is not None and s is not None and abs(d - s) <= ACF_TOLERANCE)
                if checked
                else None,
            )
        )
    checks.append(
        Check(
            fact="reopen gap median |pips|",
            data=data.reopen_gap_median_pips,
            simulated=simulated.reopen_gap_median_pips,
            target="reported",
            passed=None,
        )
    )
    return tuple(checks)


def _relative(fact: str, data: float, simulated: float) -> Check:
    ok = data != 0.0 and abs(simulated - data) <= RELATIVE_TOLERANCE * abs(data)
    return Check(
        fact=fact,
        data=data,
        simulated=simulated,
        target=f"± {RELATIVE_TOLERANCE:.0%}",
        passed=ok,
    )


def _kurtosis(data: float, simulated: float) -> Check:
    # A factor is only meaningful between two positive numbers; fat tails are positive.
    ratio = simulated / data if data > 0.0 and simulated > 0.0 else math.nan
    ok = 1 / KURTOSIS_FACTOR <= ratio <= KURTOSIS_FACTOR  # False for NaN
    return Check(
        fact="excess kurtosis",
        data=_or_none(data),
        simulated=_or_none(simulated),
        target=f"× 1/{KURTOSIS_FACTOR:g}..{KURTOSIS_FACTOR:g}",
        passed=ok,
    )


def profile_correlation(a: Sequence[float | None], b: Sequence[float | None]) -> float:
    """Pearson correlation of two hourly profiles over the hours both have."""
    pairs = np.array([(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None])
    if len(pairs) < 3 or pairs[:, 0].std() == 0.0 or pairs[:, 1].std() == 0.0:
        return math.nan
    return float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1])


def facts_frame(data: StylizedFacts, simulated: StylizedFacts | None = None) -> pd.DataFrame:
    """The report as a table a notebook shows: one row per fact; with a simulation, its
    column, the target and whether it is met."""
    checks = compare(data, data if simulated is None else simulated)
    frame = pd.DataFrame([c.model_dump() for c in checks]).set_index("fact")
    if simulated is None:
        # Compared with itself only to list the facts: the correlation of the data's profile
        # with itself says nothing.
        frame = frame[["data"]].drop(index=PROFILE_ROW)
    return frame


def hourly_frame(data: StylizedFacts, simulated: StylizedFacts | None = None) -> pd.DataFrame:
    """The hourly profiles of spread and volatility, one row per UTC hour."""
    columns: dict[str, object] = {
        "data spread (pips)": data.hourly_spread_pips,
        "data volatility (pips)": data.hourly_volatility_pips,
    }
    if simulated is not None:
        columns["simulated spread (pips)"] = simulated.hourly_spread_pips
        columns["simulated volatility (pips)"] = simulated.hourly_volatility_pips
    frame = pd.DataFrame(columns, index=pd.RangeIndex(HOURS, name="hour (UTC)"))
    return frame.astype("float64")


def stylized_report(
    data: Quotes | MinuteQuotes, simulated: Quotes | MinuteQuotes | None = None
) -> pd.DataFrame:
    """The stylized-facts report a notebook calls: facts of `data`, and beside them those of
    `simulated` with the targets, as `arbitrex calibrate` prints them."""

    def facts(quotes: Quotes | MinuteQuotes) -> StylizedFacts:
        minutes = quotes if isinstance(quotes, MinuteQuotes) else minute_quotes(quotes)
        return stylized_facts(minutes)

    return facts_frame(facts(data), None if simulated is None else facts(simulated))
