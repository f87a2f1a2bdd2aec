"""The audit store's interface: append-only events, idempotency, and the queries on them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from inspect import Parameter, signature
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from pydantic import AwareDatetime, ConfigDict, NonNegativeInt
from pydantic.dataclasses import dataclass as validated_dataclass

from engine.core.config import ENGINE_VERSION
from engine.core.events import ExecutionEvent, ExecutionRequested, event_kind, to_payload
from engine.core.lifecycle import Execution
from engine.metrics import ExecutionMetrics, MetricsSummary
from engine.schemas import ExecutionLog, ExecutionRequest, ExecutionStatus
from engine.store.quotes import QuoteSample


class DuplicateExecution(Exception):
    """The idempotency key was claimed before: the caller gets the first execution."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"execution {execution_id} already exists for this idempotency key")
        self.execution_id = execution_id


class ExecutionTakenOver(RuntimeError):
    """The store holds events for this execution that this engine did not write (another
    engine process is settling it): this engine stops and defers to the store's record."""

    def __init__(self, execution_id: str, why: str) -> None:
        super().__init__(f"execution {execution_id} is being settled elsewhere: {why}")
        self.execution_id = execution_id


class IdempotencyConflict(ValueError):
    """The same idempotency key came back with a different decision: refused, not guessed."""


class StoreUnavailable(RuntimeError):
    """The audit store cannot accept writes: no new execution may start (fail safe)."""


class ControlKind(StrEnum):
    TRADING_HALTED = "TradingHalted"
    TRADING_RESUMED = "TradingResumed"


@dataclass(frozen=True, slots=True)
class ControlEvent:
    """An operator's action on the engine as a whole (the kill switch), not on one execution.

    It belongs to no execution, so it never enters an execution's lifecycle; it is kept in
    the same append-only trail, in the same hash chain, so a halt is as tamper-evident as a
    fill. Time is the driver's clock, as for execution events.
    """

    kind: ControlKind
    at: float
    payload: dict[str, Any]  # who acted and why: never a secret
    engine_version: str
    config_version: str


def control_event(
    kind: ControlKind,
    at: float,
    *,
    by: str,
    role: str | None,
    reason: str | None,
    config_version: str,
) -> ControlEvent:
    """A halt or resume as the trail records it, whoever pulled the switch (an API key, a
    scenario's kill switch): one payload an auditor reads alike for every source."""
    return ControlEvent(
        kind=kind,
        at=at,
        payload={"by": by, "role": role, "reason": reason},
        engine_version=ENGINE_VERSION,
        config_version=config_version,
    )


@validated_dataclass(frozen=True, config=ConfigDict(strict=True, extra="forbid"))
class HistoryQuery:
    """Which executions `history` returns: those created in [start, end), oldest first,
    filtered by symbol and status, `limit` of them after the first `offset`.

    Strict: the store's callers are code, and a value of the wrong type (a naive datetime,
    a status as text) is their bug, refused rather than guessed at.
    """

    symbol: str | None = None
    status: ExecutionStatus | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    limit: NonNegativeInt = 100
    offset: NonNegativeInt = 0


Fields = ParamSpec("Fields")
Query = TypeVar("Query")
Store = TypeVar("Store")
Answer = TypeVar("Answer")


def called_with_fields_of(
    query: Callable[Fields, Query],
) -> Callable[[Callable[[Store, Query], Answer]], Callable[Concatenate[Store, Fields], Answer]]:
    """Make a method written for one query object callable with the query's own arguments,
    `history(symbol="EURUSD", limit=10)`: its signature is written once, as the query's
    fields, whichever store implements it."""

    def decorate(
        method: Callable[[Store, Query], Answer],
    ) -> Callable[Concatenate[Store, Fields], Answer]:
        def called(self: Store, /, *args: Fields.args, **kwargs: Fields.kwargs) -> Answer:
            return method(self, query(*args, **kwargs))

        called.__module__, called.__doc__ = method.__module__, method.__doc__
        called.__name__, called.__qualname__ = method.__name__, method.__qualname__
        # What help() and inspect show: the query's fields, after self.
        fields = signature(query).parameters.values()
        called.__signature__ = signature(method).replace(  # type: ignore[attr-defined]
            parameters=[Parameter("self", Parameter.POSITIONAL_ONLY), *fields]
        )
        return called

    return decorate


def aware(moment: datetime, name: str) -> datetime:
    """`moment`, refused if naive: it would be read in the host's local zone, a silent,
    machine-dependent shift of the window."""
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (e.g. UTC), got naive {moment!r}")
    return moment


def one_execution(events: Sequence[ExecutionEvent]) -> str:
    """The execution a batch belongs to; a batch spanning several is a caller's error."""
    if not events:
        raise ValueError("an empty batch: nothing to append")
    execution_id = events[0].execution_id
    for event in events:
        if event.execution_id != execution_id:
            raise ValueError(
                f"a batch holds one execution's events: {event_kind(event)} of "
                f"{event.execution_id} follows events of {execution_id}"
            )
    return execution_id


class ExecutionDatabase(ABC):
    """Events are appended, never changed; every other view is derived from them.

    It also knows which engine instances are alive, so that recovery settles only the
    executions of engines that died: an instance is alive while it holds its lease, and a
    lease dies with its process. This default keeps leases in this process (enough for a
    store no other process can open); stores shared between processes override it.
    """

    _leases: set[str]
    # How long the quote tape keeps a symbol's samples before its newest (engine.store.quotes).
    quote_retention_seconds: float

    def hold_lease(self, instance_id: str) -> None:
        """Mark `instance_id` alive for as long as this store stays open in this process."""
        self.__dict__.setdefault("_leases", set()).add(instance_id)

    def release_lease(self, instance_id: str) -> None:
        self.__dict__.setdefault("_leases", set()).discard(instance_id)

    def lease_alive(self, instance_id: str) -> bool:
        return instance_id in self.__dict__.setdefault("_leases", set())

    @abstractmethod
    def append_batch(
        self,
        events: Sequence[ExecutionEvent],
        *,
        durable: bool = True,
        folded: Execution | None = None,
    ) -> None:
        """Persist events of one execution together: all of them or none.

        `durable=False` lets a store that commits each append (sync) return before the disk
        has the events: a crash of this process cannot lose them, a power cut can, until
        the next durable commit. The engine asks it only for records of what the broker
        already did (engine.journal); a batched store, which waits for neither, ignores it.

        `folded` is the execution as the caller's own fold of these events left it (the
        engine's): a store that keeps a projection may take its status from it rather than
        fold the events again, but only where it can tell that the caller folded them onto
        exactly what the store wrote last; otherwise it folds them itself.

        An ExecutionRequested whose key exists raises DuplicateExecution; an event the
        execution's lifecycle does not allow raises IllegalTransition; either way nothing
        of the batch is written.
        """

    def append(self, event: ExecutionEvent) -> None:
        """Persist one event (a batch of one)."""
        self.append_batch((event,))

    @abstractmethod
    def events(self, execution_id: str) -> Sequence[ExecutionEvent]: ...

    @abstractmethod
    def append_control(self, event: ControlEvent) -> None:
        """Persist one control event, durably at once whatever the store's batching."""

    @abstractmethod
    def control_events(self) -> Sequence[ControlEvent]:
        """Every control event, oldest first."""

    @abstractmethod
    def record_quotes(self, samples: Sequence[QuoteSample]) -> None:
        """Add samples to the quote tape, durably, all or none; a sample of a (symbol, time)
        already there is kept as first recorded. Each symbol's samples older than
        `quote_retention_seconds` before its newest in `samples` are pruned in the same
        write: the tape stays bounded without a job of its own. Outside the hash chain."""

    @abstractmethod
    def quote_tape(self, start: float | None = None, end: float | None = None) -> list[QuoteSample]:
        """The tape's samples with time in [start, end) (POSIX seconds), by time then symbol."""

    def ping(self) -> None:  # noqa: B027 - a store in this process is always reachable
        """Raise StoreUnavailable when the store cannot be reached (a health probe)."""

    @abstractmethod
    def execution_ids(self) -> Iterable[str]: ...

    def request(self, execution_id: str) -> ExecutionRequest | None:
        events = self.events(execution_id)
        first = events[0] if events else None
        return first.request if isinstance(first, ExecutionRequested) else None

    def get_execution(self, execution_id: str) -> Execution | None:
        events = self.events(execution_id)
        return Execution.replay(execution_id, events) if events else None

    def executions(self) -> Iterator[Execution]:
        """Every execution, replayed from its records, in execution id order.

        A run of a million orders is checked and summarised from here, so a store that
        keeps its records outside memory reads them a chunk at a time."""
        for execution_id in sorted(self.execution_ids()):
            execution = self.get_execution(execution_id)
            if execution is not None:
                yield execution

    def get_execution_log(self, execution_id: str) -> ExecutionLog | None:
        execution = self.get_execution(execution_id)
        return execution.to_log() if execution is not None else None

    @called_with_fields_of(HistoryQuery)
    def history(self, query: HistoryQuery) -> list[ExecutionLog]:
        """Executions created in [start, end), oldest first, filtered and paginated."""
        matched: list[ExecutionLog] = []
        for execution_id in self.execution_ids():
            log = self.get_execution_log(execution_id)
            if log is None:
                continue
            if query.symbol is not None and log.symbol != query.symbol:
                continue
            if query.status is not None and log.status is not query.status:
                continue
            if query.start is not None and log.created_at < query.start:
                continue
            if query.end is not None and log.created_at >= query.end:
                continue
            matched.append(log)
        matched.sort(key=lambda log: (log.created_at, log.execution_id))
        return matched[query.offset : query.offset + query.limit]

    def unsettled(self) -> list[str]:
        """Executions a stop or a lost reply left unfinished: those that have not ended,
        and those that ended filled with their stops not yet on record. Recovery must
        settle each one."""
        return [
            execution_id
            for execution_id in self.execution_ids()
            if not (execution := self.get_execution(execution_id))
            or not execution.is_terminal
            or execution.owes_protection
        ]

    def export_audit_trail(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Every event stamped in [start, end) by the driver's clock, in time order (stable
        within an execution), as flat JSON-ready rows; control events have no execution_id.
        Naive datetimes are refused."""
        lo, hi = aware(start, "start").timestamp(), aware(end, "end").timestamp()
        rows = []
        for execution_id in self.execution_ids():
            for event in self.events(execution_id):
                if lo <= event.at < hi:
                    rows.append(
                        {
                            "execution_id": execution_id,
                            "at": event.at,
                            "kind": event_kind(event),
                            "payload": to_payload(event),
                        }
                    )
        for control in self.control_events():
            if lo <= control.at < hi:
                rows.append(
                    {
                        "execution_id": None,
                        "at": control.at,
                        "kind": control.kind.value,
                        "payload": control.payload,
                    }
                )
        rows.sort(key=lambda row: row["at"])
        return rows

    def iter_audit_trail(self, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """The records of export_audit_trail one at a time: a store that keeps its records
        outside memory reads them a page at a time."""
        yield from self.export_audit_trail(start, end)

    def metrics(self, start: datetime | None = None, end: datetime | None = None) -> MetricsSummary:
        """Execution-quality aggregates of the executions created in [start, end)."""
        metrics = ExecutionMetrics(window=1_000_000)
        for execution_id in self.execution_ids():
            execution = self.get_execution(execution_id)
            if execution is None or execution.created_at is None:
                continue
            if start is not None and execution.created_at < start.timestamp():
                continue
            if end is not None and execution.created_at >= end.timestamp():
                continue
            metrics.observe(execution)
        return metrics.summary()

    def flush(self) -> None:  # noqa: B027 - a store that writes at once has nothing pending
        """Make every appended event durable (stores that batch commits override this)."""

    def close(self) -> None:  # noqa: B027 - a store with nothing to release may keep this
        """Release connections and files."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
