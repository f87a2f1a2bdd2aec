"""The trade server's clock, learned from its ticks.

MT5 stamps ticks, orders and deals in the trade server's time and says nothing of its
offset from UTC; many retail servers run at UTC+2 in winter and UTC+3 in summer, moving with
daylight saving (mt5-reference.md, real-server behaviour 8), so one fixed offset is wrong for
half the year: 30-minute-old quotes would read as fresh, or every fresh quote as an hour old.

A fresh tick is stamped within moments of now, so its time minus the wall clock is the
offset plus a little latency. Offsets are whole quarter-hours; a tick counts as evidence only
when it moved since the previous read of its symbol (it is new) and its difference lies
within a few seconds of a whole quarter-hour (a stale one almost never does). The latest such
tick sets the offset — a daylight-saving change is learnt from the first tick after it.
Until the first, the configured offset stands.
"""

from __future__ import annotations

QUARTER_HOUR = 900.0


class ServerClock:
    def __init__(self, configured_offset: float, tolerance_seconds: float, learn: bool) -> None:
        self.offset = configured_offset
        self.learned = False
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
        if abs(difference - offset) <= self._tolerance:
            self.offset, self.learned = offset, True

    def utc(self, server_seconds: float) -> float:
        return server_seconds - self.offset

    def server(self, utc_seconds: float) -> float:
        return utc_seconds + self.offset
