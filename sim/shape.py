"""The shape of a real FX market, for the synthetic one: intraday profiles, volatility
clustering, fat tails, stochastic spreads and weekend reopen gaps.

Everything here is drawn per calendar minute, forward from the market's start, one block
of minutes at a time from the symbol's own stream: a minute's values are then a function of
time alone, whoever asks and whenever, as the tick draws are (`sim.market`).

The stylized facts it reproduces (Cont 2001, "Empirical properties of asset returns:
stylized facts and statistical issues", Quantitative Finance 1:223-236):
- heavy tails: 1-minute returns have a large excess kurtosis (fact 2);
- volatility clustering: the autocorrelation of absolute returns is positive and decays
  slowly, over hours, while returns themselves are uncorrelated (facts 1, 8, 9);
- intraday seasonality: volatility and spreads follow the hour of the day (Andersen and
  Bollerslev 1997, "Intraday periodicity and volatility persistence in financial
  markets", J. Empirical Finance 4:115-158; FX: the London and New York sessions);
- spreads widen with volatility (Bollerslev and Melvin 1994, "Bid-ask spreads and
  volatility in the foreign exchange market", J. Int. Economics 36:355-372).
Clustering is a log-volatility made of AR(1) components with different half-lives: a sum
of a few exponentials is the usual way to get a slow, near-power-law decay of the
autocorrelation (the multi-factor stochastic-volatility models; LeBaron 2001, "Stochastic
volatility as a simple generator of apparent financial power laws and long memory",
Quantitative Finance 1:621-631).
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

FloatArray = npt.NDArray[np.float64]
HourProfile = Annotated[tuple[float, ...], Field(min_length=24, max_length=24)]


class Component(BaseModel):
    """One AR(1) component of the log-volatility: its standard deviation and half-life."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    sigma: Annotated[float, Field(ge=0.0, le=3.0)]
    half_life_minutes: Annotated[float, Field(gt=0.0, le=100_000.0)]

    @property
    def phi(self) -> float:
        return 0.5 ** (1.0 / self.half_life_minutes)


# The GBP/USD one-minute bars of February 2012 (FXCM, ../shared/data/fx/), fitted by
# `sim.calibration.fit_market` (rounded): the default shape of every synthetic market.
# Volatility is lowest in the Asian morning (04-05 UTC) and highest at the London/New York
# overlap (15 UTC); the median spread is 0.5 pips through London and New York, 0.9 in Asia.
GBPUSD_VOLATILITY_PROFILE = (
    0.75, 0.62, 0.93, 0.63, 0.52, 0.50, 0.69, 1.01, 1.15, 1.38, 1.17, 1.05,
    1.19, 1.37, 1.29, 1.59, 1.34, 0.80, 0.84, 0.82, 0.75, 0.68, 1.09, 0.71,
)  # fmt: skip
GBPUSD_SPREAD_PROFILE = (
    1.29, 1.29, 1.29, 1.29, 1.29, 1.29, 1.14, 0.86, 0.71, 0.71, 0.71, 0.71,
    0.71, 0.71, 0.71, 0.71, 0.71, 1.00, 1.00, 1.00, 1.07, 1.14, 1.14, 1.21,
)  # fmt: skip
GBPUSD_CLUSTERING = (
    Component(sigma=0.447, half_life_minutes=4.0),
    Component(sigma=0.447, half_life_minutes=90.0),
)


class MarketShape(BaseModel):
    """How volatility and spreads move through the day and cluster; the levels are per
    symbol (`SymbolConfig.volatility_pips`, `spread_pips`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Multipliers by UTC hour (0..23): volatility scaled to a mean square of 1, spread to a
    # median of 1, so the symbol's levels stay the day's averages.
    volatility_profile: HourProfile = GBPUSD_VOLATILITY_PROFILE
    spread_profile: HourProfile = GBPUSD_SPREAD_PROFILE
    # The log-volatility, a sum of AR(1) components per minute (empty: no clustering).
    clustering: tuple[Component, ...] = GBPUSD_CLUSTERING
    # Tick innovations: Student-t with this many degrees of freedom, scaled to unit
    # variance (None: normal). Fat tails at the tick, where latency meets the price.
    tail_df: Annotated[float, Field(gt=2.0)] | None = None
    # Jumps: a Poisson count per day, each normal with this standard deviation in pips
    # (normal, not heavier: a finite fourth moment keeps the fitted kurtosis stable).
    jumps_per_day: Annotated[float, Field(ge=0.0, le=1_000.0)] = 28.8
    jump_pips: Annotated[float, Field(ge=0.0)] = 6.4
    # Spreads: log-spread moves with the log-volatility times this elasticity, plus an
    # AR(1) noise of its own (per minute).
    spread_volatility_elasticity: Annotated[float, Field(ge=0.0, le=5.0)] = 0.0
    spread_noise: Annotated[float, Field(ge=0.0, le=3.0)] = 0.23
    spread_noise_half_life_minutes: Annotated[float, Field(gt=0.0)] = 0.42
    # The weekend: the price is frozen while closed and reopens with a gap drawn from a
    # normal of this standard deviation, in pips (None: no gap).
    # (GBP/USD, February 2012: four weekends, gaps of 6.7 to 18.3 pips, RMS 13.2.)
    reopen_gap_pips: Annotated[float, Field(ge=0.0)] | None = 13.2
    # Depth thins as spreads widen: the book's size times (base spread / spread) ** this.
    depth_elasticity: Annotated[float, Field(ge=0.0, le=5.0)] = 1.0

    @model_validator(mode="after")
    def _positive_profiles(self) -> MarketShape:
        for name in ("volatility_profile", "spread_profile"):
            if min(getattr(self, name)) <= 0.0:
                raise ValueError(f"{name}: every hour's multiplier must be positive")
        return self

    @property
    def log_variance(self) -> float:
        return sum(c.sigma**2 for c in self.clustering)


BLOCK_MINUTES = 1440  # a day of minutes per draw from the stream


class MinutePath:
    """A symbol's per-minute volatility factor, spread factor and jumps, from `first_minute`
    (the market's start) on; blocks are drawn in order, so block k is always the same."""

    def __init__(self, shape: MarketShape, rng: np.random.Generator, first_minute: int) -> None:
        self.shape = shape
        self.rng = rng
        self.first = first_minute
        self.volatility: list[FloatArray] = []  # per block: the volatility factor per minute
        self.spread: list[FloatArray] = []  # per block: the spread factor per minute
        self.jump_times: list[FloatArray] = []  # per block: jump instants (POSIX), sorted
        self.jump_sizes: list[FloatArray] = []
        self._states = [0.0 for _ in shape.clustering]
        self._noise = 0.0
        self._started = False

    def _draw_block(self) -> None:
        shape, rng, n = self.shape, self.rng, BLOCK_MINUTES
        log_vol = np.zeros(n)
        for index, component in enumerate(shape.clustering):
            phi = component.phi
            innovations = rng.standard_normal(n) * component.sigma * math.sqrt(1.0 - phi * phi)
            state = self._states[index]
            if not self._started:  # start in the stationary distribution
                state = component.sigma * float(rng.standard_normal())
            values = _ar1(innovations, phi, state)
            self._states[index] = float(values[-1])
            log_vol += values
        noise_phi = 0.5 ** (1.0 / shape.spread_noise_half_life_minutes)
        noise_start = self._noise
        if not self._started:
            noise_start = shape.spread_noise * float(rng.standard_normal())
        noise_innovations = rng.standard_normal(n) * shape.spread_noise
        noise = _ar1(noise_innovations * math.sqrt(1.0 - noise_phi**2), noise_phi, noise_start)
        self._noise = float(noise[-1])
        self._started = True
        # exp(h - s^2) has a mean square of 1: the level stays the symbol's volatility_pips.
        factor = np.exp(log_vol - shape.log_variance)
        self.volatility.append(factor)
        # Log-normal with a zero-mean log: the median spread factor is 1.
        self.spread.append(np.exp(shape.spread_volatility_elasticity * log_vol + noise))
        start = (self.first + (len(self.volatility) - 1) * n) * 60.0
        counts = rng.poisson(shape.jumps_per_day / n, n)
        total = int(counts.sum())
        offsets = rng.random(total) * 60.0
        sizes = rng.standard_normal(total) * shape.jump_pips
        minutes = np.repeat(np.arange(n), counts)
        self.jump_times.append(start + minutes * 60.0 + offsets)
        self.jump_sizes.append(sizes)

    def _block(self, minute: int) -> int:
        block = max((minute - self.first) // BLOCK_MINUTES, 0)  # before the start: its first
        while block >= len(self.volatility):
            self._draw_block()
        return block

    def factors(self, t: float) -> tuple[float, float]:
        """(volatility factor, spread factor) in force at t."""
        minute = int(t // 60.0)
        block = self._block(minute)
        index = minute - self.first - block * BLOCK_MINUTES
        index = min(max(index, 0), BLOCK_MINUTES - 1)
        return float(self.volatility[block][index]), float(self.spread[block][index])

    def volatility_at(self, times: FloatArray) -> FloatArray:
        minutes = (times // 60.0).astype(np.int64)
        last = self._block(int(minutes[-1]))
        self._block(int(minutes[0]))
        base = self.first
        first_block = max((int(minutes[0]) - base) // BLOCK_MINUTES, 0)
        joined = np.concatenate(self.volatility[first_block : last + 1])
        index = np.clip(minutes - base - first_block * BLOCK_MINUTES, 0, joined.size - 1)
        return joined[index]

    def jumps_between(self, t0: float, t1: float) -> float:
        """The sum of the jumps in (t0, t1], in pips."""
        if self.shape.jumps_per_day == 0.0 or self.shape.jump_pips == 0.0:
            return 0.0
        last = self._block(int(t1 // 60.0))
        first = self._block(int(t0 // 60.0))
        total = 0.0
        for block in range(first, last + 1):
            times = self.jump_times[block]
            lo, hi = np.searchsorted(times, (t0, t1), side="right")
            if hi > lo:
                total += float(self.jump_sizes[block][lo:hi].sum())
        return total


def _ar1(innovations: FloatArray, phi: float, state: float) -> FloatArray:
    """x[i] = phi * x[i-1] + innovations[i], from x[-1] = state (a plain loop: a day of
    minutes is 1,440 steps)."""
    out = np.empty_like(innovations)
    x = state
    for i, e in enumerate(innovations.tolist()):
        x = phi * x + e
        out[i] = x
    return out
