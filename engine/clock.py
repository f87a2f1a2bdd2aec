"""Time for the drivers: one `Clock` protocol, and the wall clock.

The engine core never reads a clock (Principle 1); its drivers do, through this protocol:
`now()` in POSIX seconds (UTC) and a blocking `sleep()`. The wall clock is here; the
simulator's clock over SimPy's virtual time is `sim.clock.SimPyClock`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """POSIX seconds, UTC."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block until `seconds` have passed on this clock."""
        ...


class SchedulingClock(Clock, Protocol):
    def call_later(self, seconds: float, call: Callable[[], object]) -> None:
        """Run `call` once `seconds` have passed on this clock, without blocking."""
        ...


class WallClock:
    """The wall clock, or wall-clock time anchored at another instant: `start` plus the
    seconds elapsed since `origin` (a `time.time()` reading; processes that agree on it
    share one clock — paper trading on simulated history, a broker in its own process)."""

    def __init__(self, start: float | None = None, origin: float | None = None) -> None:
        self._offset = 0.0 if start is None else start - (time.time() if origin is None else origin)

    def now(self) -> float:
        return time.time() + self._offset

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def call_later(self, seconds: float, call: Callable[[], object]) -> None:
        """Run `call` on a thread of its own once `seconds` have passed."""
        timer = threading.Timer(seconds, call)
        timer.daemon = True
        timer.start()


def iso_utc(posix: float) -> str:
    """POSIX seconds as ISO 8601 UTC to the microsecond, as people and tools read a time:
    2026-01-05T09:30:00.123456Z."""
    return datetime.fromtimestamp(posix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
