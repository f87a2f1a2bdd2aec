"""The FX trading week: open Sunday 17:00 New York to Friday 17:00 New York, less holidays.

FX trades round the clock from the Sunday open in Asia to the Friday close in New York, and
the day rolls at 17:00 New York time (the "5 pm NY" value-date cut-off: Bank for
International Settlements, Triennial Survey notes; every ECN's session calendar). New York
keeps daylight saving, so in UTC the close is 22:00 in winter and 21:00 in summer; `zone`
follows that through `zoneinfo`. With `zone = None` the week is fixed in UTC (the hours
`close_hour` and `open_hour`), as it was before daylight saving was modelled.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

WEEK = 7 * 86_400.0
DAY = 86_400.0
# The POSIX epoch fell on a Thursday: shifting by three days makes week-seconds Monday-based.
_EPOCH_TO_MONDAY = 3 * 86_400.0


class FxWeek(BaseModel):
    """Weekly hours (weekday 0 is Monday, as `datetime.weekday()`), and holidays.

    A holiday closes the trading day that bears its date: FX days start at the previous
    evening's roll (17:00 New York), so the market is shut from the roll the day before to
    the roll on it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    close_weekday: Annotated[int, Field(ge=0, le=6)] = 4
    open_weekday: Annotated[int, Field(ge=0, le=6)] = 6
    # The roll, close and reopen in local time of `zone` (an IANA name); None: in UTC at
    # `close_hour` and `open_hour`.
    zone: str | None = "America/New_York"
    local_hour: Annotated[float, Field(ge=0, lt=24)] = 17.0
    close_hour: Annotated[float, Field(ge=0, lt=24)] = 22.0
    open_hour: Annotated[float, Field(ge=0, lt=24)] = 22.0
    holidays: tuple[date, ...] = ()

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError) as unknown:
                raise ValueError(f"unknown time zone {zone!r}") from unknown
        return zone

    def _week_seconds(self, t: float) -> float:
        """Seconds since the start of the Monday (00:00 UTC) of t's week."""
        return (t + _EPOCH_TO_MONDAY) % WEEK

    # Cached: the market asks whether it is open several times per simulated order.
    @cached_property
    def close_second(self) -> float:
        """The weekly close in UTC hours, in seconds since Monday 00:00 UTC (zone None)."""
        return self.close_weekday * DAY + self.close_hour * 3600

    @cached_property
    def reopen_second(self) -> float:
        """The weekly reopen in UTC hours, in seconds since Monday 00:00 UTC (zone None)."""
        return self.open_weekday * DAY + self.open_hour * 3600

    @cached_property
    def _bounds_cache(self) -> dict[int, tuple[float, float]]:
        return {}

    def _local_second(self, monday: float, weekday: int) -> float:
        """Seconds from `monday` (00:00 UTC) to `local_hour` in `zone` on `weekday`."""
        assert self.zone is not None
        day = datetime.fromtimestamp(monday + weekday * DAY, tz=UTC).date()
        hours, fraction = divmod(self.local_hour, 1.0)
        local = datetime(day.year, day.month, day.day, int(hours), tzinfo=ZoneInfo(self.zone))
        return local.timestamp() + fraction * 3600.0 - monday

    def bounds(self, week: int) -> tuple[float, float]:
        """(close, reopen) of week number `week` (weeks since the Monday before the epoch),
        in seconds since that week's Monday 00:00 UTC."""
        if self.zone is None:
            return self.close_second, self.reopen_second
        cache = self._bounds_cache
        found = cache.get(week)
        if found is None:
            monday = week * WEEK - _EPOCH_TO_MONDAY
            found = cache[week] = (
                self._local_second(monday, self.close_weekday),
                self._local_second(monday, self.open_weekday),
            )
        return found

    @cached_property
    def _roll_cache(self) -> dict[int, float]:
        return {}

    def roll_hour_utc(self, t: float) -> float:
        """The UTC hour of the daily roll (17:00 New York) on t's UTC day."""
        if self.zone is None:
            return self.close_hour
        day = int(t // DAY)
        cache = self._roll_cache
        hour = cache.get(day)
        if hour is None:
            noon = datetime.fromtimestamp(day * DAY + DAY / 2, tz=UTC)
            offset = ZoneInfo(self.zone).utcoffset(noon)
            assert offset is not None
            hour = cache[day] = (self.local_hour - offset.total_seconds() / 3600.0) % 24.0
        return hour

    def _holiday_start(self, t: float) -> float | None:
        """Start of the holiday closure containing t, if any."""
        if not self.holidays:
            return None
        roll = self.roll_hour_utc(t)
        trading_day = datetime.fromtimestamp(t + (24.0 - roll) * 3600, tz=UTC).date()
        if trading_day in self.holidays:
            midnight = datetime(trading_day.year, trading_day.month, trading_day.day, tzinfo=UTC)
            return (midnight - timedelta(hours=24.0 - roll)).timestamp()
        return None

    def _closure_start(self, t: float) -> float | None:
        week, s = divmod(t + _EPOCH_TO_MONDAY, WEEK)
        close, reopen = self.bounds(int(week))
        if close <= s < reopen:
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

    def next_open_instant(self, t: float) -> float:
        """t itself while open; otherwise the moment the market reopens."""
        probe = t
        while not self.is_open(probe):
            week, s = divmod(probe + _EPOCH_TO_MONDAY, WEEK)
            close, reopen = self.bounds(int(week))
            if close <= s < reopen:
                probe += reopen - s
            else:  # a holiday: it ends at the next roll
                start = self._holiday_start(probe)
                assert start is not None
                probe = start + DAY
        return probe

    def next_closure_start(self, t: float) -> float:
        """The start of the first closure (weekend or holiday) at or after t."""
        week, s = divmod(t + _EPOCH_TO_MONDAY, WEEK)
        close, _ = self.bounds(int(week))
        if s <= close:
            first = t + (close - s)
        else:
            following, _ = self.bounds(int(week) + 1)
            first = t + (WEEK - s) + following
        for holiday in self.holidays:
            midnight = datetime(holiday.year, holiday.month, holiday.day, tzinfo=UTC).timestamp()
            start = midnight - (24.0 - self.roll_hour_utc(midnight - DAY / 2)) * 3600.0
            if t <= start < first:
                first = start
        return first

    def closed_seconds_until(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Seconds of weekly closure from a fixed Monday 00:00 UTC up to each t.

        Differences of this between two instants give the weekend time between them, which
        is how a data loader tells a weekend from a gap in the quotes (holidays are not
        counted: in data they show up as gaps, which is worth reporting)."""
        weeks, into = np.divmod(np.asarray(t, dtype=np.float64) + _EPOCH_TO_MONDAY, WEEK)
        if weeks.size == 0:
            return np.zeros_like(into)
        first = int(weeks.min())
        span_weeks = np.arange(first, int(weeks.max()) + 1)
        bounds = np.array([self.bounds(int(w)) for w in span_weeks]).reshape(-1, 2)
        spans = np.maximum(bounds[:, 1] - bounds[:, 0], 0.0)
        before = np.concatenate(([0.0], np.cumsum(spans)[:-1]))
        index = (weeks - first).astype(np.int64)
        close, span = bounds[index, 0], spans[index]
        return before[index] + np.clip(into - close, 0.0, span)

    def seconds_since_open(self, t: float) -> float:
        """Seconds since the market last opened for the week (for session-open spreads)."""
        week, s = divmod(t + _EPOCH_TO_MONDAY, WEEK)
        _, reopen = self.bounds(int(week))
        if s >= reopen:
            return s - reopen
        _, previous = self.bounds(int(week) - 1)
        return s + WEEK - previous
