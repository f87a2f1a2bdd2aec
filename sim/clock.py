"""The simulator's clock: SimPy's virtual time behind the engine's `Clock` protocol.

`now()` is the environment's time. `sleep()` is for code that blocks — the live driver,
a broker crossing its wire, a test — run outside any SimPy process: it moves the whole
simulated world on by that long, so everything scheduled meanwhile happens, instantly and
deterministically. Code inside a SimPy process (the SimPy driver) yields timeouts instead.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy


class SimPyClock:
    def __init__(self, env: simpy.Environment) -> None:
        self.env = env

    @classmethod
    def starting_at(cls, start: float) -> SimPyClock:
        """A clock over a fresh environment whose time begins at `start`."""
        return cls(simpy.Environment(initial_time=start))

    def now(self) -> float:
        return self.env.now  # as SimPy keeps it: the same numbers every driver stamps

    def call_later(self, seconds: float, call: Callable[[], object]) -> None:
        self.env.timeout(seconds).callbacks.append(lambda _: call())

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        if seconds > 0:  # SimPy refuses to run until the present
            self.env.run(until=self.env.now + seconds)
