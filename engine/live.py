"""The live driver: wall-clock time, real sleeps, blocking broker calls.

It carries out the core's effects one after another for one execution; concurrency comes
from running several executions on several threads (a broker adapter serialises its own
calls where the broker needs it, as MT5 does).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.core.effects import Record, Sleep, perform_call
from engine.core.flow import Flow
from engine.core.lifecycle import Execution
from engine.core.ports import BrokerInterface
from engine.store.base import ExecutionDatabase

Clock = Callable[[], float]


class LiveDriver:
    def __init__(
        self,
        broker: BrokerInterface,
        database: ExecutionDatabase,
        clock: Clock = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.broker = broker
        self.database = database
        self.clock = clock
        self.sleep = sleep

    def run(self, flow: Flow) -> Execution:
        """Drive one flow to its end. A store error propagates before any order leaves."""
        effect = next(flow)
        while True:
            reply = None
            if isinstance(effect, Record):
                # Durable before the next effect: this is what makes the log write-ahead.
                self.database.append(effect.event)
            elif isinstance(effect, Sleep):
                self.sleep(effect.seconds)
            else:
                reply = perform_call(effect, self.broker)
            try:
                effect = flow.send((self.clock(), reply))
            except StopIteration as stop:
                return stop.value
