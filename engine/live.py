"""The live driver: blocking broker calls and real waits on its clock (the wall clock).

It runs one execution's work to its end on the calling thread; concurrency comes from
running executions on several threads (a broker adapter serialises its own calls where
the broker needs it, as MT5 does). Given a clock that moves only when slept on (a SimPy
clock), it runs the same work instantly and deterministically: how tests drive the live
broker adapters.
"""

from __future__ import annotations

from typing import Any, TypeVar

from engine.clock import Clock, WallClock
from engine.driving import Carrier, Work, run_blocking

T = TypeVar("T")


class LiveDriver:
    """A blocking driver: `start` runs the work to its end and its handle is the value."""

    # Live brokers cross their own network: no remote call is carried by the driver.
    carrier: Carrier | None = None

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock if clock is not None else WallClock()

    def start(self, work: Work[T]) -> T:
        return run_blocking(work, self.clock.sleep)

    def result(self, handle: Any) -> Any:
        return handle
