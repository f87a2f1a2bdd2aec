"""Synthetic spreads: a base per symbol, widened where real FX spreads widen.

Dealers widen at the daily roll, 17:00 New York (liquidity providers step away while
positions roll and value dates change), in the first hour after the weekly open, around
scheduled news, and a little in a volatile regime. Multipliers do not stack: the widest
reason in force applies. On top of these come the intraday profile and the stochastic,
volatility-linked factor of `sim.shape`.

The roll is not a 20-minute blip: in the GBP/USD minute bars of February 2012 (FXCM,
../shared/data/fx/) the median spread starts rising ten minutes before 22:00 UTC, peaks at
~5x the evening's level in the first five minutes after it, falls back within ten minutes
to a plateau ~1.8x wide and stays there for an hour (`sim.calibration.fit_market` measures
this); the defaults are that fit, rounded.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Multiplier = Annotated[float, Field(ge=1.0)]


class SpreadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # The roll in UTC hours; None: the week's own (17:00 New York, with daylight saving).
    rollover_hour: Annotated[float, Field(ge=0.0, lt=24.0)] | None = None
    rollover_minutes_before: Annotated[float, Field(ge=0.0, le=720.0)] = 10.0
    rollover_minutes_after: Annotated[float, Field(ge=0.0, le=720.0)] = 60.0
    rollover_multiplier: Multiplier = 5.3  # at the roll
    # After the roll the widening decays with this time constant (None: flat over the
    # window), but not below `rollover_plateau_multiplier` until the window ends; before
    # it, the spread is `pre_rollover_multiplier` wide.
    rollover_decay_minutes: Annotated[float, Field(gt=0.0)] | None = 6.0
    rollover_plateau_multiplier: Multiplier = 1.8
    pre_rollover_multiplier: Multiplier | None = 1.5  # None: rollover_multiplier
    open_minutes: Annotated[float, Field(ge=0.0)] = 60.0
    open_multiplier: Multiplier = 1.5
    news_multiplier: Multiplier = 3.0
    volatile_multiplier: Multiplier = 1.5

    def rollover(self, t: float, roll_hour: float) -> float:
        """The rollover's multiplier at t (1 outside its window)."""
        hour = roll_hour if self.rollover_hour is None else self.rollover_hour
        since_roll = (t % 86_400.0 - hour * 3600.0) % 86_400.0
        if since_roll < self.rollover_minutes_after * 60.0:
            if self.rollover_decay_minutes is None:
                return self.rollover_multiplier
            decay = math.exp(-since_roll / (60.0 * self.rollover_decay_minutes))
            spike = 1.0 + (self.rollover_multiplier - 1.0) * decay
            return max(spike, self.rollover_plateau_multiplier)
        if since_roll >= 86_400.0 - self.rollover_minutes_before * 60.0:
            before = self.pre_rollover_multiplier
            return self.rollover_multiplier if before is None else before
        return 1.0

    def multiplier(
        self,
        t: float,
        seconds_since_open: float,
        news_active: bool,
        volatile: bool,
        roll_hour: float = 22.0,
    ) -> float:
        widest = self.rollover(t, roll_hour)
        if seconds_since_open < self.open_minutes * 60.0:
            widest = max(widest, self.open_multiplier)
        if news_active:
            widest = max(widest, self.news_multiplier)
        if volatile:
            widest = max(widest, self.volatile_multiplier)
        return widest
