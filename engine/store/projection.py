"""The `executions` table: one row per execution, every column derived from its records.

The table exists for queries (history by symbol, status and time; recovery's open
executions), not as evidence: it sits outside the hash chain and the store updates it as
executions move on. So its rows are defined here once, as a function of the execution's
folded records, which is how the store writes them.
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

    def values(self) -> tuple[str | int | None, ...]:
        """The fields in column order, as a statement's parameters."""
        return tuple(getattr(self, column) for column in COLUMNS)


COLUMNS = tuple(field.name for field in fields(ProjectionRow))


def micros(moment: datetime) -> int:
    """Exact integer microseconds since the epoch (no float rounding on the way)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def apply_events(execution: Execution, events: Iterable[ExecutionEvent]) -> float | None:
    """Apply `events` to `execution`; returns the time of the last one that changed its
    status, or None if none did (a row's updated_at)."""
    changed_at = None
    for event in events:
        before = execution.status
        execution.apply(event)
        if execution.status is not before:
            changed_at = event.at
    return changed_at


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
    )


# The table's SQL, written once for both dialects (? placeholders).

# A new execution's row: the unique keys refuse a second claim of an id or idempotency key.
CLAIM = (
    f"INSERT INTO executions ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)}) ON CONFLICT DO NOTHING"
)
