"""The FX trading week: open Sunday ~22:00 UTC to Friday ~22:00 UTC, less holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Annotated

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

WEEK = 7 * 86_400.0
DAY = 86_400.0
# The POSIX epoch fell on a Thursday: shifting by three days makes week-seconds Monday-based.
_EPOCH_TO_MONDAY = 3 * 86_400.0


class FxWeek(BaseModel):
    """Weekly hours in UTC (weekday 0 is Monday, as `datetime.weekday()`), and holidays.

    A holiday closes the trading day that bears its date: FX days start at the previous
    evening's 22:00 UTC roll, so the market is shut from 22:00 the day before to 22:00 on it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    close_weekday: Annotated[int, Field(ge=0, le=6)] = 4
    close_hour: Annotated[float, Field(ge=0, lt=24)] = 22.0
    open_weekday: Annotated[int, Field(ge=0, le=6)] = 6
    open_hour: Annotated[float, Field(ge=0, lt=24)] = 22.0
    holidays: tuple[date, ...] = ()

    def _week_seconds(self, t: float) -> float:
        """Seconds since the start of the Monday (00:00 UTC) of t's week."""
        return (t + _EPOCH_TO_MONDAY) % WEEK

    # Cached: the market asks whether it is open several times per simulated order.
    @cached_property
    def close_second(self) -> float:
        """The weekly close, in seconds since Monday 00:00 UTC."""
        return self.close_weekday * DAY + self.close_hour * 3600

    @cached_property
    def reopen_second(self) -> float:
        """The weekly reopen, in seconds since Monday 00:00 UTC."""
        return self.open_weekday * DAY + self.open_hour * 3600

    def _holiday_start(self, t: float) -> float | None:
        """Start of the holiday closure containing t, if any."""
        if not self.holidays:
            return None
        trading_day = datetime.fromtimestamp(t + 2 * 3600, tz=UTC).date()  # 22:00 rolls the day
        if trading_day in self.holidays:
            midnight = datetime(trading_day.year, trading_day.month, trading_day.day, tzinfo=UTC)
            return (midnight - timedelta(hours=2)).timestamp()
        return None

    def _closure_start(self, t: float) -> float | None:
        s = self._week_seconds(t)
        close = self.close_second
        if close <= s < self.reopen_second:
            return t - (s - close)
        return self._holiday_start(t)

    def is_open(self, t: float) -> bool:
        return self._closure_start(t) is None

    def last_open_instant(self, t: float) -> float:
        """t itself while open; otherwise the moment the market last closed (a holiday next
        to a weekend makes one long closure)."""
        start = self._closure_start(t)
        while start is not None:
            t = start
            before = self._closure_start(start - 1e-3)
            if before is None:
                return start
            start = before
        return t

    def closed_seconds_until(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Seconds of weekly closure from a fixed Monday 00:00 UTC up to each t.

        Differences of this between two instants give the weekend time between them, which
        is how a data loader tells a weekend from a gap in the quotes (holidays are not
        counted: in data they show up as gaps, which is worth reporting)."""
        span = max(self.reopen_second - self.close_second, 0.0)
        weeks, into = np.divmod(t + _EPOCH_TO_MONDAY, WEEK)
        return weeks * span + np.clip(into - self.close_second, 0.0, span)

    def seconds_since_open(self, t: float) -> float:
        """Seconds since the market last opened for the week (for session-open spreads)."""
        since = (self._week_seconds(t) - self.reopen_second) % WEEK
        return since
