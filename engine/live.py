"""The live driver: wall-clock time, real sleeps, blocking broker calls.

It carries out the core's effects one after another for one execution; concurrency comes
from running several executions on several threads (a broker adapter serialises its own
calls where the broker needs it, as MT5 does).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.core.effects import Sleep, perform_call
from engine.core.flow import Flow
from engine.core.lifecycle import Execution
from engine.core.ports import BrokerInterface
from engine.journal import Journal, Recorder

Clock = Callable[[], float]


class LiveDriver:
    def __init__(
        self,
        broker: BrokerInterface,
        record: Recorder,
        clock: Clock = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.broker = broker
        self.record = record
        self.clock = clock
        self.sleep = sleep

    def run(self, flow: Flow, order_out: bool = False) -> Execution:
        """Drive one flow to its end; `order_out` when an order may already be out (recovery).

        A store error propagates while no order has left; after that, the recorder keeps
        the record for later rather than lose it.
        """
        journal = Journal(self.record, order_out)
        effect = next(flow)
        while True:
            reply = None
            if journal.take(effect):
                pass
            elif isinstance(effect, Sleep):
                self.sleep(effect.seconds)
            else:
                reply = perform_call(effect, self.broker)
            try:
                effect = flow.send((self.clock(), reply))
            except StopIteration as stop:
                journal.flush()
                return stop.value
