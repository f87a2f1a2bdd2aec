"""Fitting the synthetic market to recorded quotes, and sampling it back per minute.

`fit_market(series)` reads bid/ask quotes (one-minute bars or ticks, as `sim.quotes_csv`
loads them) and returns a `MarketConfig` whose synthetic market has the data's spread level
and hourly profile, volatility level and hourly profile, fat tails, volatility clustering,
rollover window and weekend reopen gaps. `simulate(config, seed, days)` runs that market
and samples its quote at every minute, so a report can set data and simulation side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sim.market import MarketConfig

FloatArray = npt.NDArray[np.float64]


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


def fit_market(series: Quotes | Sequence[Quotes]) -> MarketConfig:
    """A synthetic market calibrated to `series` (one symbol's quotes, or several symbols)."""
    raise NotImplementedError


def simulate(
    config: MarketConfig,
    seed: int,
    days: float,
    *,
    symbol: str | None = None,
    start: float | None = None,
) -> SimulatedQuotes:
    """The synthetic market of `config` sampled at every open minute for `days` days from
    `start` (default: a Monday 00:00 UTC), for `symbol` (default: the first)."""
    raise NotImplementedError
