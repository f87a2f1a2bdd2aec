"""The trade server's clock: the rule it keeps, where that is known, and what its ticks show.

MT5 stamps ticks, orders and deals in the trade server's time and says nothing of its
offset from UTC; many retail servers run at UTC+2 in winter and UTC+3 in summer, moving with
daylight saving (mt5-reference.md, real-server behaviour 8), so one fixed offset is wrong for
half the year: 30-minute-old quotes would read as fresh, or every fresh quote as an hour old.

Two sources, used together:
- The rule (`ServerTime`), when configured: a time zone's wall clock plus a fixed offset.
  "America/New_York" plus 7 hours is the common one (17:00 in New York, the FX day's close,
  is server midnight, switching on US dates); "Europe/Helsinki" switches on EU dates. With a
  rule every timestamp converts with the offset in force at its own moment, so a history
  that spans a daylight-saving change reads right on both sides of it.
- The ticks. A fresh tick is stamped within moments of now, so its time minus the wall clock
  is the offset plus a little latency. Offsets are whole quarter-hours; a tick counts as
  evidence only when it moved since the previous read of its symbol (it is new) and its
  difference lies within a few seconds of a whole quarter-hour (a stale one almost never
  does). The latest such tick sets the offset — a daylight-saving change is learnt from the
  first tick after it.

A learnt offset that agrees with the rule at that moment confirms it. One that disagrees
means the rule is wrong for this server: the ticks win (they judge whether a quote is
fresh), one fixed offset is used from then on, and the disagreement is logged. Without a
rule, the learnt offset is all there is, and a history across a change reads an hour off on
its far side (fetch it in two parts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

log = logging.getLogger(__name__)

QUARTER_HOUR = 900.0
_MONTH = 30 * 86_400.0


def checked_zone(name: str | None) -> str | None:
    """An IANA time zone's name, checked (a pydantic validator's body)."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as unknown:
        raise ValueError(f"no IANA time zone named {name!r}") from unknown
    return name


@dataclass(frozen=True, slots=True)
class ServerTime:
    """Server time as the wall clock of `zone` (UTC when None) plus `offset_seconds`."""

    zone: str | None = None
    offset_seconds: float = 0.0

    def offset(self, t: float) -> float:
        """Server time minus UTC at t (POSIX seconds), in seconds."""
        if self.zone is None:
            return self.offset_seconds
        # ZoneInfo caches its instances: a dictionary lookup, not a read of the database.
        local = datetime.fromtimestamp(t, ZoneInfo(self.zone)).utcoffset()
        assert local is not None  # a ZoneInfo always knows its offset
        return local.total_seconds() + self.offset_seconds

    def server(self, t: float) -> float:
        return t + self.offset(t)

    def utc(self, server: float) -> float:
        """Server seconds as UTC: the offset is the one in force then, found from the offset
        at the server time read as UTC (they differ only within hours of a change)."""
        return server - self.offset(server - self.offset(server))


class ServerClock:
    def __init__(self, rule: ServerTime, tolerance_seconds: float, learn: bool) -> None:
        self.learned = False
        self._rule: ServerTime | None = rule
        self._fixed = rule.offset_seconds if rule.zone is None else None
        self._tolerance = tolerance_seconds
        self._learn = learn
        self._last_tick: dict[str, float] = {}  # symbol -> the server time of its last tick

    def observe(self, symbol: str, server_time: float, now: float) -> None:
        """A tick of `symbol` stamped `server_time`, read at `now` (UTC)."""
        previous = self._last_tick.get(symbol)
        self._last_tick[symbol] = server_time
        if not self._learn or previous is None or server_time <= previous:
            return
        difference = server_time - now
        offset = round(difference / QUARTER_HOUR) * QUARTER_HOUR
        if abs(difference - offset) > self._tolerance:
            return
        self.learned = True
        if self._rule is not None and self._rule.zone is not None:
            if offset == self._rule.offset(now):
                return  # the rule holds: it also knows the offsets of other seasons
            log.error(
                "the trade server's ticks show UTC%+.2fh, but the configured rule %s%+.2fh "
                "gives UTC%+.2fh now: the ticks' offset is used from now on",
                offset / 3600,
                self._rule.zone,
                self._rule.offset_seconds / 3600,
                self._rule.offset(now) / 3600,
            )
            self._rule = None
        self._fixed = offset

    def utc(self, server_seconds: Any) -> Any:
        """Server seconds (a number, or an array of them) as UTC."""
        if self._fixed is not None:
            return server_seconds - self._fixed
        assert self._rule is not None
        if isinstance(server_seconds, np.ndarray):
            if len(server_seconds) == 0:
                return server_seconds.astype(np.float64)
            # Offsets change twice a year: one offset at both ends of less than a month is
            # the offset throughout, and the array converts at once.
            low, high = float(server_seconds.min()), float(server_seconds.max())
            first, last = low - self._rule.utc(low), high - self._rule.utc(high)
            if first == last and high - low < _MONTH:
                return server_seconds - first
            return np.fromiter(
                (self._rule.utc(float(s)) for s in server_seconds),
                dtype=np.float64,
                count=len(server_seconds),
            )
        return self._rule.utc(server_seconds)

    def server(self, utc_seconds: float) -> float:
        if self._fixed is not None:
            return utc_seconds + self._fixed
        assert self._rule is not None
        return self._rule.server(utc_seconds)
