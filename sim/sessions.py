"""The FX trading week: open Sunday ~22:00 UTC to Friday ~22:00 UTC."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

WEEK = 7 * 86_400.0
# The POSIX epoch fell on a Thursday: shifting by three days makes week-seconds Monday-based.
_EPOCH_TO_MONDAY = 3 * 86_400.0


class FxWeek(BaseModel):
    """Weekly hours in UTC; weekday 0 is Monday, as in `datetime.weekday()`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    close_weekday: Annotated[int, Field(ge=0, le=6)] = 4
    close_hour: Annotated[float, Field(ge=0, lt=24)] = 22.0
    open_weekday: Annotated[int, Field(ge=0, le=6)] = 6
    open_hour: Annotated[float, Field(ge=0, lt=24)] = 22.0

    def _week_seconds(self, t: float) -> float:
        """Seconds since the start of the Monday (00:00 UTC) of t's week."""
        return (t + _EPOCH_TO_MONDAY) % WEEK

    def is_open(self, t: float) -> bool:
        s = self._week_seconds(t)
        close = self.close_weekday * 86_400 + self.close_hour * 3600
        reopen = self.open_weekday * 86_400 + self.open_hour * 3600
        return not close <= s < reopen

    def closed_seconds_until(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Seconds the week has been closed from a fixed Monday 00:00 UTC up to each t.

        Differences of this between two instants give the closed time between them, which
        is how a data loader tells a weekend from a gap in the quotes."""
        close = self.close_weekday * 86_400.0 + self.close_hour * 3600.0
        reopen = self.open_weekday * 86_400.0 + self.open_hour * 3600.0
        span = max(reopen - close, 0.0)
        weeks, into = np.divmod(t + _EPOCH_TO_MONDAY, WEEK)
        return weeks * span + np.clip(into - close, 0.0, span)

    def last_open_instant(self, t: float) -> float:
        """t itself while open; otherwise the moment the market last closed."""
        if self.is_open(t):
            return t
        close = self.close_weekday * 86_400 + self.close_hour * 3600
        return t - (self._week_seconds(t) - close)
