"""The SimPy driver: runs any number of executions concurrently in virtual time.

Each execution the engine starts is a SimPy process: a wait becomes a timeout, and a
remote broker call crosses the simulated wire around the whole call (latency, loss,
outages), meeting the venue at the virtual instant it arrives. Nothing here decides
anything about an order; the engine core does, exactly as it does live.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from engine.driving import Work
from sim.clock import SimPyClock
from sim.wire import Wire


class SimPyDriver:
    def __init__(self, wire: Wire, request_timeout: float) -> None:
        """`wire`: the network between engine and broker, on a SimPy clock; every remote
        call crosses it with `request_timeout` as the client's patience."""
        if not isinstance(wire.clock, SimPyClock):
            raise TypeError("the SimPy driver runs on a SimPy clock")
        self.clock = wire.clock
        self.env = wire.clock.env
        self._wire = wire
        self._timeout = request_timeout

    def carrier(self, call: Callable[[], Any], acts: bool) -> Generator[float, None, Any]:
        return self._wire.crossing(call, self._timeout, acts)

    def start(self, work: Work[Any]) -> simpy.Process:
        return self.env.process(self._timed(work))

    def result(self, handle: simpy.Process) -> Any:
        """Run the world until this process ends; its value."""
        return self.env.run(until=handle)

    def _timed(self, work: Work[Any]) -> Generator[simpy.Event, Any, Any]:
        try:
            wait = next(work)
            while True:
                yield self.env.timeout(wait)
                wait = work.send(None)
        except StopIteration as done:
            return done.value
