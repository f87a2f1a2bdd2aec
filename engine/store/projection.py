"""The `executions` table: one row per execution, every column derived from its records.

The table exists for queries (history by symbol, status and time; what recovery must
settle), not as evidence: it sits outside the hash chain and the store updates it as
executions move on. So its rows are defined here once, as a function of the execution's
folded records, and the store writes them and `engine.store.verify` checks them with the
same definition: a row changed behind the store's back disagrees with its records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from engine.core.events import ExecutionEvent
from engine.core.lifecycle import Execution
from engine.schemas import utc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ProjectionRow:
    """One row of the executions table, its fields in the table's column order."""

    execution_id: str
    idempotency_key: str
    client_order_id: str
    symbol: str | None
    status: str
    created_at: int  # UTC microseconds: when the execution was requested
    updated_at: int  # UTC microseconds: when its status last changed
    engine_version: str
    config_version: str
    # 1 while the execution has ended filled but its stops are not yet on record (see
    # Execution.owes_protection): recovery's second kind of unfinished business.
    owes_protection: int

    def values(self) -> tuple[str | int | None, ...]:
        """The fields in column order, as a statement's parameters."""
        return tuple(getattr(self, column) for column in COLUMNS)


COLUMNS = tuple(field.name for field in fields(ProjectionRow))


def micros(moment: datetime) -> int:
    """Exact integer microseconds since the epoch (no float rounding on the way)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def moment_of(micros_since_epoch: int) -> datetime:
    """The UTC time that `micros` turned into this integer."""
    return _EPOCH + timedelta(microseconds=micros_since_epoch)


def apply_events(execution: Execution, events: Iterable[ExecutionEvent]) -> float | None:
    """Apply `events` to `execution`; returns the time of the last one that changed its
    status, or None if none did (a row's updated_at)."""
    before = execution.status_changes
    for event in events:
        execution.apply(event)
    return changed_since(execution, before)


def changed_since(execution: Execution, status_changes: int) -> float | None:
    """When the execution's status last changed, if it changed after its first
    `status_changes` changes; else None."""
    return execution.status_changed_at if execution.status_changes > status_changes else None


def row_of(execution: Execution, status_changed_at: float) -> ProjectionRow:
    """The row of a requested execution whose status last changed at `status_changed_at`."""
    request, status = execution.request, execution.status
    assert request is not None and status is not None and execution.created_at is not None
    return ProjectionRow(
        execution_id=execution.execution_id,
        idempotency_key=request.idempotency_key,
        client_order_id=request.client_order_id,
        symbol=request.symbol,
        status=status.value,
        created_at=micros(utc(execution.created_at)),
        updated_at=micros(utc(status_changed_at)),
        engine_version=request.engine_version,
        config_version=request.config_version,
        owes_protection=int(execution.owes_protection),
    )


# The table's SQL, written once for both dialects (? placeholders).

# A new execution's row: the unique keys refuse a second claim of an id or idempotency key.
CLAIM = (
    f"INSERT INTO executions ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)}) ON CONFLICT DO NOTHING"
)
# Where the next page of the store's projection_evidence ends: at the nearer of its
# page-th row and its page-th request, so that neither rows without records nor records
# without rows (a tamperer's leftovers) make one page unbounded; NULL when both run out.
PAGE_END = (
    "SELECT MIN(execution_id) FROM ("
    "SELECT execution_id FROM (SELECT execution_id FROM executions WHERE execution_id > ? "
    "ORDER BY execution_id LIMIT 1 OFFSET ?) r UNION ALL "
    "SELECT execution_id FROM (SELECT execution_id FROM audit_events "
    "WHERE kind = 'ExecutionRequested' AND execution_id > ? "
    "ORDER BY execution_id LIMIT 1 OFFSET ?) q) ends"
)
UP_TO = " AND execution_id <= ?"
# Rows (seq 0) and records (seq from 1) of the executions in one id range, each row first.
EVIDENCE = (
    f"SELECT {', '.join(COLUMNS)}, 0 AS seq, NULL AS kind, NULL AS at, NULL AS payload "
    "FROM executions WHERE execution_id > ?{bounded} UNION ALL "
    f"SELECT execution_id, {', '.join('NULL' for _ in COLUMNS[1:])}, seq, kind, at, payload "
    "FROM audit_events WHERE execution_id > ?{bounded} ORDER BY execution_id, seq"
)


@dataclass(frozen=True, slots=True)
class ProjectionEvidence:
    """An execution's row as stored beside its records as stored (kind, at, payload), in
    seq order: either may be missing when someone removed it."""

    execution_id: str
    row: ProjectionRow | None
    records: tuple[tuple[str, float, str], ...]
