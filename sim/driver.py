"""The SimPy driver: runs any number of executions concurrently in virtual time.

Each execution is a SimPy process that carries out the core's effects: a Sleep is a
timeout, a remote broker call crosses the simulated network (latency, loss, outages) and
meets the venue at the virtual instant it arrives. Nothing here decides anything about an
order; the engine core does, exactly as it does live.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from engine.core.effects import BrokerCall, Sleep, perform_call
from engine.core.flow import Flow
from engine.core.lifecycle import Execution
from engine.engine import ExecutionEngine
from engine.journal import Journal
from engine.schemas import RPMOutput
from engine.store.base import DuplicateExecution, ExecutionTakenOver
from sim.network import Network


class SimPyDriver:
    def __init__(self, env: simpy.Environment, engine: ExecutionEngine, network: Network) -> None:
        self.env = env
        self.engine = engine
        self.network = network

    def submit(
        self, rpm: RPMOutput | dict[str, Any], idempotency_key: str | None = None
    ) -> simpy.Process:
        """Start one execution now; the process's value is the final Execution.

        Malformed input raises here, at once, before anything is scheduled or recorded.
        """
        flow = self.engine.open(rpm, idempotency_key, self.env.now)
        return self.env.process(self._execute(flow, rpm))

    def recover(self) -> list[simpy.Process]:
        """Settle every non-terminal execution in the store, concurrently, from now."""
        return [
            self.env.process(self._settle(self.engine.open_recovery(execution_id, self.env.now)))
            for execution_id in self.engine.orphans()
        ]

    def _settle(self, flow: Flow) -> Generator[Any, Any, Execution]:
        execution = yield from self._drive(flow, order_out=True)
        return self.engine.close(execution)

    def _execute(
        self, flow: Flow, rpm: RPMOutput | dict[str, Any]
    ) -> Generator[Any, Any, Execution]:
        engine = self.engine
        try:
            execution = yield from self._drive(flow)
        except DuplicateExecution as duplicate:
            return engine.first_execution(duplicate, rpm)
        except ExecutionTakenOver as taken:
            return engine.database.get_execution(taken.execution_id)
        return engine.close(execution)

    def _drive(self, flow: Flow, order_out: bool = False) -> Generator[Any, Any, Execution]:
        env, broker = self.env, self.engine.broker
        timeout = self.engine.config.request_timeout_seconds
        journal = Journal(self.engine.record, order_out)
        effect = next(flow)
        while True:
            reply: Any = None
            if journal.take(effect):
                pass
            elif isinstance(effect, Sleep):
                yield env.timeout(effect.seconds)
            elif isinstance(effect, BrokerCall) and effect.remote:
                schedule = self.network.plan(env.now).schedule(timeout)
                if schedule.before:
                    yield env.timeout(schedule.before)
                if schedule.reaches_broker:
                    reply = perform_call(effect, broker)
                if schedule.after:
                    yield env.timeout(schedule.after)
                if schedule.error is not None:
                    reply = schedule.error
            else:
                reply = perform_call(effect, broker)
            try:
                effect = flow.send((env.now, reply))
            except StopIteration as stop:
                journal.flush()
                return stop.value
