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
means the rule is wrong for this server, or was for that tick: the ticks win (they judge
whether a quote is fresh), their offset is used, and the disagreement is logged, until
ticks agree with the rule again. Without a rule, the learnt offset is all there is, and a
history across a change reads an hour off on its far side (fetch it in two parts).
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
    # A directory of the database ("America") or an over-long name fails as an OSError.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"no IANA time zone named {name!r}") from None
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
        at the server time read as UTC (they differ only within hours of a change). The
        hour a change back repeats reads as its later pass: on an FX server's clock that
        hour falls in the weekend."""
        return server - self.offset(server - self.offset(server))


class ServerClock:
    def __init__(self, rule: ServerTime, tolerance_seconds: float, learn: bool) -> None:
        self.learned = False
        self._rule = rule
        # The offset the ticks showed, where the rule has no zone or disagrees with them.
        self._learnt: float | None = None
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
        rule = self._rule
        if rule.zone is not None and offset == rule.offset(now):
            self._learnt = None  # the rule holds: it also knows the offsets of other seasons
            return
        if rule.zone is not None and offset != self._learnt:
            log.error(
                "the trade server's ticks show UTC%+.2fh, but the configured rule %s%+.2fh "
                "gives UTC%+.2fh now: the ticks' offset is used while they disagree",
                offset / 3600,
                rule.zone,
                rule.offset_seconds / 3600,
                rule.offset(now) / 3600,
            )
        self._learnt = offset

    def utc(self, server_seconds: Any) -> Any:
        """Server seconds (a number, or an array of them) as UTC."""
        if self._learnt is not None:
            return server_seconds - self._learnt
        rule = self._rule
        if not isinstance(server_seconds, np.ndarray):
            return rule.utc(server_seconds)
        if rule.zone is None or len(server_seconds) == 0:
            return server_seconds - rule.offset_seconds
        # A server zone changes its offset at most twice a year: one offset at both ends of
        # less than a month is the offset throughout, and the array converts at once.
        low, high = float(server_seconds.min()), float(server_seconds.max())
        first, last = low - rule.utc(low), high - rule.utc(high)
        if first == last and high - low < _MONTH:
            return server_seconds - first
        return np.fromiter(
            (rule.utc(float(s)) for s in server_seconds),
            dtype=np.float64,
            count=len(server_seconds),
        )

    def server(self, utc_seconds: float) -> float:
        if self._learnt is not None:
            return utc_seconds + self._learnt
        return self._rule.server(utc_seconds)
