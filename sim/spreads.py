"""Synthetic spreads: a base per symbol, widened where real FX spreads widen.

Dealers widen at the 22:00 UTC rollover (liquidity providers step away while positions
roll), in the first hour after the weekly open, around scheduled news, and a little in a
volatile regime. Multipliers do not stack: the widest reason in force applies.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Multiplier = Annotated[float, Field(ge=1.0)]


class SpreadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rollover_hour: Annotated[float, Field(ge=0.0, lt=24.0)] = 22.0
    rollover_minutes_before: Annotated[float, Field(ge=0.0)] = 5.0
    rollover_minutes_after: Annotated[float, Field(ge=0.0)] = 15.0
    rollover_multiplier: Multiplier = 4.0
    open_minutes: Annotated[float, Field(ge=0.0)] = 60.0
    open_multiplier: Multiplier = 3.0
    news_multiplier: Multiplier = 3.0
    volatile_multiplier: Multiplier = 1.5

    def multiplier(
        self, t: float, seconds_since_open: float, news_active: bool, volatile: bool
    ) -> float:
        into_day = t % 86_400.0
        roll = self.rollover_hour * 3600.0
        since_roll = (into_day - roll) % 86_400.0
        in_rollover = (
            since_roll < self.rollover_minutes_after * 60.0
            or since_roll >= 86_400.0 - self.rollover_minutes_before * 60.0
        )
        widest = 1.0
        if in_rollover:
            widest = max(widest, self.rollover_multiplier)
        if seconds_since_open < self.open_minutes * 60.0:
            widest = max(widest, self.open_multiplier)
        if news_active:
            widest = max(widest, self.news_multiplier)
        if volatile:
            widest = max(widest, self.volatile_multiplier)
        return widest
