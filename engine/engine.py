"""The execution engine: one entry point, whichever driver carries out the work.

`ExecutionEngine` owns what every driver shares — config, broker, audit store, metrics,
the kill switch — and opens and closes executions; a driver (the live one here, the SimPy
one in `sim/`) carries out the core's effects in between.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from engine.core.config import EngineConfig
from engine.core.events import ExecutionEvent
from engine.core.flow import Flow, build_request, execution_flow, recovery_flow
from engine.core.ids import idempotency_key_for
from engine.core.lifecycle import Execution, IllegalTransition
from engine.core.ports import BrokerInterface
from engine.live import Clock, LiveDriver
from engine.metrics import ExecutionMetrics
from engine.schemas import NUL_REFUSED, ExecutionConfirmation, RPMOutput
from engine.store.base import (
    DuplicateExecution,
    ExecutionDatabase,
    ExecutionTakenOver,
    IdempotencyConflict,
    StoreUnavailable,
)
from engine.store.memory import InMemoryExecutionDatabase


class ExecutionEngine:
    def __init__(
        self,
        broker: BrokerInterface,
        database: ExecutionDatabase | None = None,
        config: EngineConfig | None = None,
        clock: Clock = time.time,
        sleep: Callable[[float], None] = time.sleep,
        instance_id: str | None = None,
    ) -> None:
        self.broker = broker
        self.database = database if database is not None else InMemoryExecutionDatabase()
        self.config = config if config is not None else EngineConfig()
        # Who this engine is, for as long as it lives: recovery leaves the executions of
        # live engines alone and settles those of dead ones.
        self.instance_id = instance_id or _process_instance_id()
        self.database.hold_lease(self.instance_id)
        # Flows this engine is driving, counted: the same key may be submitted twice at once.
        self._in_flight: Counter[str] = Counter()
        self.metrics = ExecutionMetrics()
        self.halted = False
        # Records of executions whose order is already out, that the store refused: kept
        # in order and retried before anything else is written — never dropped.
        self._unwritten: deque[tuple[ExecutionEvent, ...]] = deque()
        self._unwritten_lock = threading.Lock()
        self._live = LiveDriver(broker, self.record, clock, sleep)

    def _leave(self, execution_id: str) -> None:
        self._in_flight[execution_id] -= 1
        if self._in_flight[execution_id] <= 0:
            del self._in_flight[execution_id]

    @property
    def clock(self) -> Clock:
        """The driver's clock this engine stamps its records with."""
        return self._live.clock

    # -- what every driver uses -------------------------------------------------------

    def record(self, events: Sequence[ExecutionEvent], order_out: bool) -> None:
        """Write one group of an execution's audit records in one transaction, write-ahead.

        Until an order may be at the broker, a group the store refuses stops the execution
        (StoreUnavailable reaches the caller; nothing is sent). Afterwards the group is
        kept in memory, in order, and written as soon as the store answers again.
        """
        with self._unwritten_lock:
            self._drain()
            if self._unwritten:
                if not order_out:
                    raise StoreUnavailable(self._backlog())
                self._unwritten.append(tuple(events))
                return
        # Written outside the lock: the groups of concurrent executions meet in the store,
        # which commits them together, instead of queueing here one durable commit apiece.
        # One execution's groups come from one thread, one after another, so its own
        # records stay in order.
        try:
            self.database.append_batch(events)
        except IllegalTransition as refused:
            # The store's own fold refused it: someone else wrote this execution.
            raise ExecutionTakenOver(events[0].execution_id, str(refused)) from refused
        except StoreUnavailable:
            if not order_out:
                raise
            with self._unwritten_lock:
                self._unwritten.append(tuple(events))

    def _drain(self) -> None:
        while self._unwritten:
            try:
                self.database.append_batch(self._unwritten[0])
            except StoreUnavailable:
                return
            self._unwritten.popleft()

    def _backlog(self) -> str:
        return (
            f"{sum(map(len, self._unwritten))} audit records of executions already at the "
            "broker are not yet durable; no new execution starts until the store takes them"
        )

    @property
    def unwritten_records(self) -> int:
        with self._unwritten_lock:
            self._drain()
            return sum(map(len, self._unwritten))

    def open(
        self, rpm_output: RPMOutput | dict[str, Any], idempotency_key: str | None, now: float
    ) -> Flow:
        """Validate the input (pydantic errors name the field) and create the flow.

        Fail safe: while records of in-flight executions wait for the store, no new
        execution starts (StoreUnavailable says why).
        """
        if self.unwritten_records:
            raise StoreUnavailable(self._backlog())
        rpm = (
            rpm_output
            if isinstance(rpm_output, RPMOutput)
            else RPMOutput.model_validate(rpm_output)
        )
        if idempotency_key is not None and "\x00" in idempotency_key:
            raise ValueError(f"idempotency_key: {NUL_REFUSED}")  # it is a database column
        key = idempotency_key if idempotency_key is not None else idempotency_key_for(rpm)
        request = build_request(rpm, key, self.config, now, self.instance_id)
        with self._unwritten_lock:
            self._in_flight[request.execution_id] += 1
        return execution_flow(rpm, request, self.config, now, engine_halted=self.halted)

    def orphans(self) -> list[str]:
        """Non-terminal executions no live engine is working on: what recovery settles."""
        with self._unwritten_lock:
            mine_in_flight = set(self._in_flight)
        orphaned = []
        for execution_id in self.database.non_terminal():
            request = self.database.request(execution_id)
            owner = request.engine_instance if request is not None else None
            if owner == self.instance_id:
                if execution_id in mine_in_flight:
                    continue
            elif owner is not None and self.database.lease_alive(owner):
                continue
            orphaned.append(execution_id)
        return orphaned

    def open_recovery(self, execution_id: str, now: float) -> Flow:
        """The flow that settles one execution a stop or a lost reply left open."""
        execution = self.database.get_execution(execution_id)
        if execution is None:
            raise KeyError(f"no execution {execution_id}")
        return recovery_flow(execution, self.config, now)

    def close(self, execution: Execution) -> Execution:
        with self._unwritten_lock:
            self._leave(execution.execution_id)
        self.metrics.observe(execution)
        return execution

    def first_execution(
        self, duplicate: DuplicateExecution, rpm_output: RPMOutput | dict[str, Any]
    ) -> Execution:
        """The execution a repeated idempotency key refers to; a different decision is refused."""
        with self._unwritten_lock:  # this attempt opened nothing: it is not in flight
            self._leave(duplicate.execution_id)
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
        except ExecutionTakenOver as taken:
            execution = self._as_stored(taken.execution_id)
        return ExecutionConfirmation.from_log(execution.to_log())

    def _as_stored(self, execution_id: str) -> Execution:
        execution = self.database.get_execution(execution_id)
        assert execution is not None
        return execution

    def recover(self) -> list[Execution]:
        """On start: reconcile every non-terminal execution with the broker, recording it."""
        settled = []
        for execution_id in self.orphans():
            flow = self.open_recovery(execution_id, self._live.clock())
            try:
                settled.append(self.close(self._live.run(flow, order_out=True)))
            except ExecutionTakenOver:
                continue  # a live engine is settling it; its record is the truth
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


def _process_instance_id() -> str:
    """host-pid-start: unique per engine process, and readable in an audit record."""
    return f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
