"""The trade server's tick history, as `copy_ticks_range` serves it from the terminal.

What the module does (MQL5 reference: the Python `copy_ticks_range` and `CopyTicksRange`
pages; mt5-reference.md):
- four required positional arguments: the symbol, `date_from` and `date_to` (a datetime or
  POSIX seconds, read as the trade server's clock: tick times are server time, "UTC" in the
  documentation's words, the server's wall clock in practitioners' reports), and the flags
  (COPY_TICKS_INFO: ticks whose bid or ask changed; COPY_TICKS_TRADE: last or volume;
  COPY_TICKS_ALL: both);
- the ticks with date_from <= time <= date_to, oldest first, as a numpy structured array with
  the fields time, bid, ask, last, volume, time_msc, flags, volume_real (the module's dtypes);
  each tick's `flags` say what changed in it, and its other fields carry the previous tick's;
- None with `last_error()` on a refusal; an empty array when the window holds no tick (the
  error is then success: unconfirmed, the reading that tells "none" from "refused").

What this server has: the ticks its market struck since the terminal was set up, up to now —
no tick of the future, none from before. An FX market quotes, it does not print trades: every
tick is an INFO tick, with last, volume and volume_real 0. A tick is a change of the bid or
the ask: a strike at the same prices is no tick. The venue's own transient price impact (its
reaction to our orders) is not in the history: the history is the market's.
"""

from __future__ import annotations

import copy
from array import array
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sim.market import PriceSource, SyntheticMarket
from sim.mt5.config import TerminalConfig
from sim.mt5.constants import K

# The module's dtype for ticks, field for field (as it answers on Windows).
TICK_DTYPE = np.dtype(
    [
        ("time", "<i8"),
        ("bid", "<f8"),
        ("ask", "<f8"),
        ("last", "<f8"),
        ("volume", "<u8"),
        ("time_msc", "<i8"),
        ("flags", "<u4"),
        ("volume_real", "<f8"),
    ]
)
Ticks = npt.NDArray[np.void]
COPY_TICKS = frozenset({K.COPY_TICKS_ALL, K.COPY_TICKS_INFO, K.COPY_TICKS_TRADE})


@dataclass
class _Recorded:
    """One symbol's ticks recorded so far, in server milliseconds, and how far they reach."""

    upto: float  # driver time the recording has walked to
    time_msc: array[int] = field(default_factory=lambda: array("q"))
    bid: array[float] = field(default_factory=lambda: array("d"))
    ask: array[float] = field(default_factory=lambda: array("d"))
    flags: array[int] = field(default_factory=lambda: array("I"))


class TickHistory:
    def __init__(self, market: PriceSource, config: TerminalConfig, since: float) -> None:
        """`since`: when the history begins (driver time): the terminal's setting up."""
        # A synthetic market's walk only moves forward, and the venue moves it as it trades:
        # the history walks a copy of it, taken before anything more is asked of it (its path
        # is a function of time alone, so the copy strikes the very same ticks). A replay's
        # quotes are read where they lie.
        self._market = copy.deepcopy(market) if isinstance(market, SyntheticMarket) else market
        self._config = config
        self._since = since
        self._recorded: dict[str, _Recorded] = {}

    def copy_range(
        self, symbol: str, date_from: int, date_to: int, flags: int, now: float
    ) -> Ticks:
        """The ticks of the venue's `symbol` with server time in [date_from, date_to] (server
        seconds), as the module's array, up to `now`."""
        ticks = self._record(symbol, now)
        if flags == K.COPY_TICKS_TRADE:  # an FX market prints no trade
            return np.zeros(0, dtype=TICK_DTYPE)
        time_msc = np.frombuffer(ticks.time_msc, dtype=np.int64)
        chosen = (time_msc >= date_from * 1000) & (time_msc <= date_to * 1000)
        out = np.zeros(int(chosen.sum()), dtype=TICK_DTYPE)
        out["time_msc"] = time_msc[chosen]
        out["time"] = out["time_msc"] // 1000
        out["bid"] = np.frombuffer(ticks.bid, dtype=np.float64)[chosen]
        out["ask"] = np.frombuffer(ticks.ask, dtype=np.float64)[chosen]
        out["flags"] = np.frombuffer(ticks.flags, dtype=np.uint32)[chosen]
        return out

    def _record(self, symbol: str, now: float) -> _Recorded:
        """The symbol's ticks, the recording walked on to `now`."""
        ticks = self._recorded.get(symbol)
        if ticks is None:
            ticks = self._recorded[symbol] = _Recorded(upto=self._since)
            first = self._market.quote(symbol, self._since)
            if first is not None:
                self._append(ticks, first.time, first.bid, first.ask)
        if now > ticks.upto:
            for quote in self._market.quotes_between(symbol, ticks.upto, now):
                self._append(ticks, quote.time, quote.bid, quote.ask)
            ticks.upto = now
        return ticks

    def _append(self, ticks: _Recorded, t: float, bid: float, ask: float) -> None:
        changed = 0
        if not ticks.bid or bid != ticks.bid[-1]:
            changed |= K.TICK_FLAG_BID
        if not ticks.ask or ask != ticks.ask[-1]:
            changed |= K.TICK_FLAG_ASK
        if not changed:
            return
        ticks.time_msc.append(self._config.server_msc(t))
        ticks.bid.append(bid)
        ticks.ask.append(ask)
        ticks.flags.append(changed)
