"""The execution engine: one entry point, over whichever driver it is given.

`ExecutionEngine` owns what every driver shares — config, broker, audit store, metrics,
the kill switch — and opens, runs and closes executions: duplicate keys, takeovers and
recovery are handled here, once. The driver (`engine.live.LiveDriver` on the wall clock,
`sim.driver.SimPyDriver` in virtual time) only decides how the work waits.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from engine.clock import Clock
from engine.core.config import EngineConfig
from engine.core.costing import CostEstimator, Costing
from engine.core.events import ExecutionEvent, PositionExited
from engine.core.flow import Flow, build_request, execution_flow, recovery_flow
from engine.core.ids import execution_id_of_tag, idempotency_key_for
from engine.core.lifecycle import Execution, IllegalTransition
from engine.core.ports import BrokerInterface
from engine.core.protection import exits_since
from engine.core.vocabulary import ExecutionStatus
from engine.driving import Driver, Work, carry_out
from engine.journal import Journal
from engine.live import LiveDriver
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

H = TypeVar("H")

# The statuses of executions that may have opened a position (whose exits are recorded).
_HOLDS_POSITIONS = frozenset(
    {ExecutionStatus.FILLED, ExecutionStatus.PARTIALLY_FILLED, ExecutionStatus.EXPIRED}
)


class ExecutionEngine(Generic[H]):
    def __init__(
        self,
        broker: BrokerInterface,
        database: ExecutionDatabase | None = None,
        config: EngineConfig | None = None,
        driver: Driver[H] | None = None,
        instance_id: str | None = None,
    ) -> None:
        """`driver`: how the engine waits; by default the live driver on the wall clock."""
        self.broker = broker
        self.driver: Driver[H] = driver if driver is not None else LiveDriver()  # type: ignore[assignment]
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
        # Told of every group of records as the engine writes it (the quote tape learns from
        # them which symbols trade): called on the execution's own thread, so they must be
        # quick and must not raise.
        self.record_watchers: list[Callable[[Sequence[ExecutionEvent]], None]] = []
        # A pre-trade cost model, when one is attached: its estimates are evidence only.
        self.costing: Costing | None = None

    def attach_cost_estimator(self, estimator: CostEstimator | None) -> None:
        """Record `estimator`'s estimate of each order's slippage as it is validated (None:
        stop). Nothing the engine decides reads it; its memory of the market starts empty."""
        self.costing = None if estimator is None else Costing(estimator, threading.Lock())

    def _leave(self, execution_id: str) -> None:
        self._in_flight[execution_id] -= 1
        if self._in_flight[execution_id] <= 0:
            del self._in_flight[execution_id]

    @property
    def clock(self) -> Clock:
        """The driver's clock this engine stamps its records with."""
        return self.driver.clock

    # -- what every driver uses -------------------------------------------------------

    def record(
        self,
        events: Sequence[ExecutionEvent],
        order_out: bool,
        durable: bool = True,
        folded: Execution | None = None,
    ) -> None:
        """Write one group of an execution's audit records in one transaction, write-ahead
        (`durable`: on disk before returning; engine.journal says which groups need not be).

        Until an order may be at the broker, a group the store refuses stops the execution
        (StoreUnavailable reaches the caller; nothing is sent). Afterwards the group is
        kept in memory, in order, and written as soon as the store answers again.
        """
        for watcher in self.record_watchers:
            watcher(events)
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
            self.database.append_batch(events, durable=durable, folded=folded)
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
        return execution_flow(
            rpm, request, self.config, now, engine_halted=self.halted, costing=self.costing
        )

    def orphans(self) -> list[str]:
        """Unsettled executions (open, or filled and owing their stops) no live engine is
        working on: what recovery settles."""
        with self._unwritten_lock:
            mine_in_flight = set(self._in_flight)
        orphaned = []
        for execution_id in self.database.unsettled():
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
        return recovery_flow(execution, self.config, now, self.costing)

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

    # -- running executions, on whichever driver -------------------------------------------

    def submit(
        self, rpm_output: RPMOutput | dict[str, Any], idempotency_key: str | None = None
    ) -> H:
        """Start one execution now: the driver's handle to it (live: the final Execution;
        SimPy: a process whose value it is).

        Malformed input raises here, at once, before anything is scheduled or recorded.
        """
        flow = self.open(rpm_output, idempotency_key, self.clock.now())
        return self.driver.start(self._execution(flow, rpm_output))

    def execute(
        self, rpm_output: RPMOutput | dict[str, Any], idempotency_key: str | None = None
    ) -> ExecutionConfirmation:
        """The seed's API: execute one decision to its end and confirm it."""
        execution = self.driver.result(self.submit(rpm_output, idempotency_key))
        return ExecutionConfirmation.from_log(execution.to_log())

    def recover(self) -> list[H]:
        """Settle every unsettled execution no live engine is working on, recording it:
        on start, and once lost replies can be asked about. The driver's handles to the
        settled executions (live: settled one after another; SimPy: concurrently)."""
        handles = [
            self.driver.start(self._settlement(self.open_recovery(execution_id, self.clock.now())))
            for execution_id in self.orphans()
        ]
        return [handle for handle in handles if handle is not None]

    def _execution(self, flow: Flow, rpm_output: RPMOutput | dict[str, Any]) -> Work[Execution]:
        try:
            execution = yield from self._drive(flow, order_out=False)
        except DuplicateExecution as duplicate:
            return self.first_execution(duplicate, rpm_output)
        except ExecutionTakenOver as taken:
            return self._as_stored(taken.execution_id)
        return self.close(execution)

    def _settlement(self, flow: Flow) -> Work[Execution | None]:
        try:
            execution = yield from self._drive(flow, order_out=True)
        except ExecutionTakenOver:
            return None  # a live engine is settling it; its record is the truth
        return self.close(execution)

    def _drive(self, flow: Flow, order_out: bool) -> Work[Execution]:
        """`order_out` when an order may already be out (recovery): from then on a store
        error no longer stops the execution, the recorder keeps the record for later."""
        journal = Journal(self.record, order_out)
        return carry_out(flow, self.broker, journal, self.driver.clock, self.driver.carrier)

    def _as_stored(self, execution_id: str) -> Execution:
        execution = self.database.get_execution(execution_id)
        assert execution is not None
        return execution

    def watch_exits(self, since: float) -> H:
        """Record how positions our executions opened were closed at the broker since
        `since` (driver time) — stop-loss, take-profit, stop-out or a closing order — each
        on the execution whose order opened it, found by the order's tag. The driver's
        handle to the number of exits recorded; exits already recorded are skipped, so
        overlapping windows are harmless."""
        return self.driver.start(self._exits(since))

    def record_exits(self, since: float) -> int:
        """`watch_exits`, waited for."""
        return int(self.driver.result(self.watch_exits(since)))

    def _exits(self, since: float) -> Work[int]:
        journal = Journal(self.record, order_out=True)
        exits = yield from carry_out(
            exits_since(since), self.broker, journal, self.driver.clock, self.driver.carrier
        )
        recorded = 0
        for found in exits:
            execution_id = execution_id_of_tag(found.client_order_id)
            execution = self.database.get_execution(execution_id) if execution_id else None
            if (
                execution is None
                or found.deal_id in execution.exit_deal_ids
                or execution.status not in _HOLDS_POSITIONS
            ):
                continue  # not ours, known, or still being worked: the next watch takes it
            event = PositionExited(
                execution.execution_id,
                self.clock.now(),
                found.deal_id,
                found.position_id,
                found.reason,
                found.units,
                found.price,
                found.level,
                found.time,
            )
            self.record([event], order_out=True)
            recorded += 1
        return recorded

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
    driver: Driver[Any] | None = None,
    instance_id: str | None = None,
) -> ExecutionEngine[Any]:
    """The seed's factory: `ee = create_execution_engine(broker, database)`."""
    return ExecutionEngine(broker, database, config, driver, instance_id)


def _process_instance_id() -> str:
    """host-pid-start: unique per engine process, and readable in an audit record."""
    return f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
