"""The execution engine: one entry point, whichever driver carries out the work.

`ExecutionEngine` owns what every driver shares — config, broker, audit store, metrics,
the kill switch — and opens and closes executions; a driver (the live one here, the SimPy
one in `sim/`) carries out the core's effects in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.core.config import EngineConfig
from engine.core.flow import Flow, build_request, execution_flow, recovery_flow
from engine.core.ids import idempotency_key_for
from engine.core.lifecycle import Execution
from engine.core.ports import BrokerInterface
from engine.live import Clock, LiveDriver
from engine.metrics import ExecutionMetrics
from engine.schemas import ExecutionConfirmation, RPMOutput
from engine.store.base import DuplicateExecution, ExecutionDatabase, IdempotencyConflict
from engine.store.memory import InMemoryExecutionDatabase


class ExecutionEngine:
    def __init__(
        self,
        broker: BrokerInterface,
        database: ExecutionDatabase | None = None,
        config: EngineConfig | None = None,
        clock: Clock = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.broker = broker
        self.database = database if database is not None else InMemoryExecutionDatabase()
        self.config = config if config is not None else EngineConfig()
        self.metrics = ExecutionMetrics()
        self.halted = False
        self._live = LiveDriver(broker, self.database, clock, sleep)

    # -- what every driver uses -------------------------------------------------------

    def open(
        self, rpm_output: RPMOutput | dict[str, Any], idempotency_key: str | None, now: float
    ) -> Flow:
        """Validate the input (pydantic errors name the field) and create the flow."""
        rpm = (
            rpm_output
            if isinstance(rpm_output, RPMOutput)
            else RPMOutput.model_validate(rpm_output)
        )
        key = idempotency_key if idempotency_key is not None else idempotency_key_for(rpm)
        request = build_request(rpm, key, self.config, now)
        return execution_flow(rpm, request, self.config, now, engine_halted=self.halted)

    def open_recovery(self, execution_id: str, now: float) -> Flow:
        """The flow that settles one execution a stop or a lost reply left open."""
        execution = self.database.get_execution(execution_id)
        if execution is None:
            raise KeyError(f"no execution {execution_id}")
        return recovery_flow(execution, self.config, now)

    def close(self, execution: Execution) -> Execution:
        self.metrics.observe(execution)
        return execution

    def first_execution(
        self, duplicate: DuplicateExecution, rpm_output: RPMOutput | dict[str, Any]
    ) -> Execution:
        """The execution a repeated idempotency key refers to; a different decision is refused."""
        rpm = (
            rpm_output
            if isinstance(rpm_output, RPMOutput)
            else RPMOutput.model_validate(rpm_output)
        )
        execution = self.database.get_execution(duplicate.execution_id)
        assert execution is not None and execution.request is not None
        if execution.request.decision != rpm.model_dump(mode="json"):
            raise IdempotencyConflict(
                f"idempotency key {execution.request.idempotency_key!r} was used for a "
                "different decision; refusing to guess which one is meant"
            )
        return execution

    # -- the seed's API (live driver) ------------------------------------------------------

    def execute(
        self, rpm_output: RPMOutput | dict[str, Any], idempotency_key: str | None = None
    ) -> ExecutionConfirmation:
        flow = self.open(rpm_output, idempotency_key, self._live.clock())
        try:
            execution = self.close(self._live.run(flow))
        except DuplicateExecution as duplicate:
            execution = self.first_execution(duplicate, rpm_output)
        return ExecutionConfirmation.from_log(execution.to_log())

    def recover(self) -> list[Execution]:
        """On start: reconcile every non-terminal execution with the broker, recording it."""
        settled = []
        for execution_id in self.database.non_terminal():
            flow = self.open_recovery(execution_id, self._live.clock())
            settled.append(self.close(self._live.run(flow)))
        return settled

    def halt(self) -> None:
        self.halted = True

    def resume(self) -> None:
        self.halted = False

    def export_audit_trail(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        return self.database.export_audit_trail(start, end)


def create_execution_engine(
    broker: BrokerInterface,
    database: ExecutionDatabase | None = None,
    config: EngineConfig | None = None,
    **driver_options: Any,
) -> ExecutionEngine:
    """The seed's factory: `ee = create_execution_engine(broker, database)`."""
    return ExecutionEngine(broker, database, config, **driver_options)
