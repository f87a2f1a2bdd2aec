"""The store takes the engine's fold of what it writes, and only when it may.

The SQL store keeps the executions table from each execution's fold. The engine has just
folded the same events, with the same lifecycle table, so the store takes that fold rather
than make it again, but only when the caller's execution continues exactly what the store
wrote last: any other writer (another engine sharing the store, a stale copy) is folded by
the store itself, which is where a takeover is caught.
"""

from __future__ import annotations

import pytest
import store_backends as sb

import engine.store.sql
from engine.core.events import OrderAcknowledged, SubmissionAttempted, ValidationCompleted
from engine.core.lifecycle import Execution, IllegalTransition
from engine.schemas import ExecutionStatus
from engine.store import open_database, verify_audit_store
from sim.world import DEFAULT_START, paper_engine
from tests.test_write_ahead import FAST, STILL


@pytest.fixture
def store_folds(monkeypatch) -> list[str]:
    """The executions the store folds itself, one entry per batch."""
    folds: list[str] = []
    own_fold = engine.store.sql.apply_events

    def counted(execution, events):
        folds.append(execution.execution_id)
        return own_fold(execution, events)

    monkeypatch.setattr(engine.store.sql, "apply_events", counted)
    return folds


def test_an_engine_on_sqlite_has_the_store_take_its_folds_and_the_table_still_verifies(
    tmp_path, store_folds
):
    database = open_database(f"sqlite:///{tmp_path / 'audit.db'}")
    engine, _ = paper_engine(seed=1, market=STILL, config=FAST, database=database)

    statuses = [engine.execute(sb.decision(f"taken-{n}", units=10_000)).status for n in range(5)]

    assert statuses == [ExecutionStatus.FILLED] * 5
    assert store_folds == []
    assert verify_audit_store(database).ok
    database.close()


def test_the_store_folds_itself_when_the_callers_execution_is_not_the_one_it_wrote_last(
    store_folds,
):
    db = open_database("sqlite:///:memory:")
    request = sb.requested("two-writers")
    eid, t = request.execution_id, DEFAULT_START
    validated = ValidationCompleted(eid, t + 1, ("all",), 1.0, 1.1, 1.1001, 10)
    attempted = SubmissionAttempted(eid, t + 2, attempt=1)
    mine = Execution(eid)
    mine.apply(request)
    db.append_batch((request,), folded=mine)
    for event in (validated, attempted):
        mine.apply(event)
    db.append_batch((validated, attempted), folded=mine)
    assert store_folds == []  # its writer's own fold, continued: taken

    theirs = Execution.replay(eid, db.events(eid))  # another writer, in the same state
    acknowledged = OrderAcknowledged(eid, t + 3, "42")
    theirs.apply(acknowledged)
    db.append_batch((acknowledged,), folded=theirs)
    assert store_folds == [eid]  # not the object the store wrote last: folded by the store

    stale = OrderAcknowledged(eid, t + 4, "43")
    mine.apply(stale)  # the first writer never saw the other's acknowledgement
    with pytest.raises(IllegalTransition, match="OrderAcknowledged is not allowed in state"):
        db.append_batch((stale,), folded=mine)
    assert db.events(eid) == (request, validated, attempted, acknowledged)
    assert verify_audit_store(db).ok
