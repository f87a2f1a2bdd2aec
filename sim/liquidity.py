"""The depth a market order meets: a ladder of price levels per side.

Size walks the ladder: the first `top_units` trade at the touch, the next level
`level_step_pips` worse, and so on, each level `growth` times the one before. What the
ladder cannot absorb is not there: IOC fills what is available and drops the rest (a
partial fill), FOK refuses the whole order. The book is refilled at every tick, so one
order's impact does not linger into the next (a retail broker's aggregated book).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class DepthLadder(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    top_units: Annotated[int, Field(gt=0)] = 2_000_000
    levels: Annotated[int, Field(ge=1, le=50)] = 5
    level_step_pips: Annotated[float, Field(ge=0.0)] = 0.2
    growth: Annotated[float, Field(gt=0.0)] = 1.5
    # Show the total depth in the quote (an ECN's book) or not (MT5's tick carries none).
    published: bool = False

    def thinned(self, share: float) -> DepthLadder:
        """The ladder with `share` (0..1] of its size, as `SyntheticMarket.liquidity` gives:
        depth thins when spreads widen (at least one unit per level stays)."""
        if share >= 1.0:
            return self
        return self.model_copy(update={"top_units": max(1, int(self.top_units * share))})

    @property
    def total_units(self) -> int:
        return sum(self._level_units(i) for i in range(self.levels))

    def _level_units(self, level: int) -> int:
        return int(self.top_units * self.growth**level)

    def walk(self, units: int, touch: float, worse: int, pip: float) -> tuple[int, float]:
        """(units filled, average price) for `units` taken from `touch`; `worse` is +1 when
        deeper levels cost more (buying the ask), -1 when they pay less (selling the bid)."""
        left, notional = units, 0.0
        for level in range(self.levels):
            take = min(left, self._level_units(level))
            notional += take * (touch + worse * level * self.level_step_pips * pip)
            left -= take
            if left == 0:
                break
        filled = units - left
        return filled, (notional / filled if filled else touch)
