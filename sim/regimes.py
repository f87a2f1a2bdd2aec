"""A two-state Markov switch between calm and volatile markets, for the synthetic market.

Switch times are drawn forward from their own stream, so they do not depend on who asks
about which instant when.
"""

from __future__ import annotations

import bisect
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class RegimeConfig(BaseModel):
    """A two-state Markov switch between calm and volatile markets."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Six seconds at least: switches are drawn one by one up to the instant asked about, so
    # regimes a few microseconds long would be millions of draws, and shorter ones endless.
    mean_calm_minutes: Annotated[float, Field(ge=0.1)] = 180.0
    mean_volatile_minutes: Annotated[float, Field(ge=0.1)] = 20.0
    volatile_multiplier: Annotated[float, Field(ge=1.0)] = 2.5


class Regimes:
    """Switch times generated forward from their own stream: independent of who asks when."""

    def __init__(self, config: RegimeConfig | None, rng: np.random.Generator, start: float) -> None:
        self.config = config
        self.rng = rng
        self.switches: list[float] = []  # calm until the first, volatile until the second, ...
        self._horizon = start

    def _extend(self, t: float) -> None:
        assert self.config is not None
        while self._horizon <= t:
            volatile_next = len(self.switches) % 2 == 0
            mean = (
                self.config.mean_calm_minutes
                if volatile_next
                else self.config.mean_volatile_minutes
            )
            self._horizon += float(self.rng.exponential(mean * 60.0))
            self.switches.append(self._horizon)

    def volatile(self, t: float) -> bool:
        if self.config is None:
            return False
        self._extend(t)
        return bisect.bisect_right(self.switches, t) % 2 == 1

    def multiplier(self, t: float) -> float:
        return self.config.volatile_multiplier if self.config and self.volatile(t) else 1.0

    def switches_between(self, t0: float, t1: float) -> list[float]:
        if self.config is None:
            return []
        self._extend(t1)
        return self.switches[
            bisect.bisect_right(self.switches, t0) : bisect.bisect_left(self.switches, t1)
        ]
