"""`arbitrex audit verify`: the hash chain, and the executions table checked against it.

The chain (engine.store.chain) proves the records untouched. The executions table is not
in the chain: the store updates it as executions move on, and the database cannot refuse
an UPDATE to it. It is checked instead: each execution's records are folded again, as the
store folded them when it wrote the row (engine.store.projection), and the stored row must
equal the row the fold derives, column by column. A row changed, added or removed behind
the store's back is named, with its execution and column.

One pass, in pages of executions (the store's projection_evidence), so the cost is linear
in the trail and memory holds one page.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from engine.core.lifecycle import Execution
from engine.store.base import ExecutionDatabase
from engine.store.chain import VerificationResult, verify_audit_chain
from engine.store.projection import (
    COLUMNS,
    ProjectionEvidence,
    apply_events,
    moment_of,
    row_of,
)
from engine.store.records import decoded

_KEPT = 20  # disagreements kept for the report; every one is counted
_TIMES = ("created_at", "updated_at")


@runtime_checkable
class ProjectionSource(Protocol):
    """A store that keeps an executions table: it hands out each row beside its records."""

    def projection_evidence(self, page: int = ...) -> Iterable[ProjectionEvidence]: ...


class Disagreement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    execution_id: str
    column: str | None  # None: the row or the records as a whole are missing or unreadable
    problem: str  # one line, naming the execution and the column


class TableVerification(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool
    executions_verified: int  # executions whose row agrees with their records
    executions_disagreeing: int
    disagreements: tuple[Disagreement, ...]  # the first few, in execution id order


class AuditVerification(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: VerificationResult
    executions: TableVerification

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.executions.ok


def verify_audit_store(db: ExecutionDatabase) -> AuditVerification:
    """The chain and the executions table: both are checked, whichever fails first."""
    return AuditVerification(chain=verify_audit_chain(db), executions=verify_executions_table(db))


def verify_executions_table(db: ExecutionDatabase) -> TableVerification:
    """Check every row of the executions table against the fold of its execution's records."""
    if not isinstance(db, ProjectionSource):
        raise TypeError(f"{type(db).__name__} keeps no executions table: nothing to verify")
    agreeing, disagreeing, kept = 0, 0, []
    for evidence in db.projection_evidence():
        found = _disagreements(evidence)
        if found:
            disagreeing += 1
            kept.extend(found[: _KEPT - len(kept)])
        else:
            agreeing += 1
    return TableVerification(
        ok=not disagreeing,
        executions_verified=agreeing,
        executions_disagreeing=disagreeing,
        disagreements=tuple(kept),
    )


def _disagreements(evidence: ProjectionEvidence) -> list[Disagreement]:
    execution_id, stored = evidence.execution_id, evidence.row
    if stored is None:
        count = len(evidence.records)
        return [_whole(execution_id, f"{count} audit record(s) but no row in the executions table")]
    if not evidence.records:
        return [_whole(execution_id, "a row in the executions table but no audit records")]
    execution = Execution(execution_id)
    try:
        changed_at = apply_events(execution, decoded(execution_id, evidence.records))
    # A tampered record may not even decode, let alone fold: whatever it raises, it is
    # this execution's evidence that is broken, and the rest is still worth checking.
    except Exception as error:
        return [_whole(execution_id, f"its audit records do not replay: {_cause(error)}")]
    assert changed_at is not None  # records that fold begin with the request, a change
    derived = row_of(execution, changed_at)
    return [
        Disagreement(
            execution_id=execution_id,
            column=column,
            problem=(
                f"execution {execution_id}: column {column} is {_shown(column, value)} in "
                f"the executions table, but {_shown(column, expected)} by its audit records"
            ),
        )
        for column in COLUMNS
        if (value := getattr(stored, column)) != (expected := getattr(derived, column))
    ]


def _whole(execution_id: str, problem: str) -> Disagreement:
    return Disagreement(
        execution_id=execution_id, column=None, problem=f"execution {execution_id}: {problem}"
    )


def _cause(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _shown(column: str, value: object) -> str:
    """A stored value as a reader checks it: times also as UTC, since they are integers."""
    if column in _TIMES and isinstance(value, int):
        return f"{value} ({moment_of(value).isoformat()})"
    return repr(value)
