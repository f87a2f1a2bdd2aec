"""The executions table checked against the records it is derived from, on SQLite and
PostgreSQL: the table is outside the hash chain and may be updated, but never unnoticed."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import store_backends as sb

from engine.core.events import (
    OrderProvenAbsent,
    ReconciliationAttempted,
    SubmissionAttempted,
    ValidationCompleted,
)
from engine.store import InMemoryExecutionDatabase, verify_audit_chain, verify_audit_store
from engine.store.verify import verify_executions_table
from sim.world import DEFAULT_START

SEED = 28  # its run has rejections, fills, a lost reply and a reconciliation


def arbitrex(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("arbitrex")
    if exe is None:
        pytest.fail("the arbitrex command is not installed: pip install -e '.[dev]'")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


def one_with_status(target: sb.StoreTarget, status: str) -> str:
    with target.raw() as conn:
        query = f"SELECT execution_id FROM executions WHERE status = '{status}' ORDER BY 1"
        row = conn.execute(query).fetchone()
    assert row is not None, f"the seeded run has no {status} execution"
    return str(row[0])


def test_an_untouched_store_verifies_every_row_against_its_records(target):
    db = target.open()
    sb.seeded_run(db, SEED)

    result = verify_audit_store(db)

    assert result.ok and result.chain.ok
    assert result.executions.executions_verified == len(list(db.execution_ids())) == 30
    assert result.executions.disagreements == ()


def test_rows_and_records_read_back_alike_however_small_the_pages(target):
    db = target.open()
    sb.seeded_run(db, SEED, until=0.3)  # open executions as well as settled ones

    whole = list(db.projection_evidence())

    assert [e.execution_id for e in whole] == sorted(db.execution_ids())
    assert list(db.projection_evidence(page=1)) == list(db.projection_evidence(page=7)) == whole


def test_a_row_follows_a_status_change_that_its_own_batch_undoes(target):
    db = target.open()
    request = sb.requested("round-trip")
    eid = request.execution_id
    db.append(request)
    db.append_batch(
        (
            ValidationCompleted(eid, DEFAULT_START + 1, ("all",), 1.0, 1.1, 1.1002, None),
            SubmissionAttempted(eid, DEFAULT_START + 2, 1),
        )
    )
    # SUBMITTING -> UNRESOLVED -> SUBMITTING in one batch: the row must still move on.
    db.append_batch(
        (
            ReconciliationAttempted(eid, DEFAULT_START + 3, "lookup 1"),
            OrderProvenAbsent(eid, DEFAULT_START + 4, "no such order"),
        )
    )

    assert verify_audit_store(db).ok


def test_a_rejected_execution_marked_filled_behind_the_store_is_named_with_its_column(shared):
    db = shared.open()
    sb.seeded_run(db, SEED)
    rejected = one_with_status(shared, "REJECTED")

    with shared.raw() as conn:  # no trigger to drop: the table may be updated
        conn.execute(f"UPDATE executions SET status = 'FILLED' WHERE execution_id = '{rejected}'")
    result = verify_audit_store(db)

    assert result.chain.ok and not result.ok  # the records are intact: only the row lies
    assert result.executions.executions_disagreeing == 1
    (found,) = result.executions.disagreements
    assert (found.execution_id, found.column) == (rejected, "status")
    assert found.problem == (
        f"execution {rejected}: column status is 'FILLED' in the executions table, "
        "but 'REJECTED' by its audit records"
    )


def test_arbitrex_audit_verify_fails_naming_the_execution_and_column_changed(shared):
    db = shared.open()
    sb.seeded_run(db, SEED)
    db.close()
    assert arbitrex("audit", "verify", "--db", shared.url).returncode == 0
    rejected = one_with_status(shared, "REJECTED")

    with shared.raw() as conn:
        conn.execute(f"UPDATE executions SET status = 'FILLED' WHERE execution_id = '{rejected}'")
    verified = arbitrex("audit", "verify", "--db", shared.url)

    assert verified.returncode == 1, verified.stderr
    assert verified.stdout.splitlines() == [
        f"TAMPERED: execution {rejected}: column status is 'FILLED' in the executions "
        "table, but 'REJECTED' by its audit records"
    ]


def test_a_row_removed_or_made_up_behind_the_store_is_named(shared):
    db = shared.open()
    sb.seeded_run(db, SEED)
    removed = one_with_status(shared, "FILLED")

    with shared.raw() as conn:
        conn.execute(f"DELETE FROM executions WHERE execution_id = '{removed}'")
        conn.execute(
            "INSERT INTO executions SELECT 'zz-made-up', 'key-made-up', client_order_id, "
            "symbol, status, created_at, updated_at, engine_version, config_version, "
            "owes_protection "
            f"FROM executions WHERE execution_id = '{one_with_status(shared, 'REJECTED')}'"
        )
    problems = [d.problem for d in verify_executions_table(db).disagreements]

    assert any(
        p.startswith(f"execution {removed}: ") and "no row in the executions table" in p
        for p in problems
    )
    assert "execution zz-made-up: a row in the executions table but no audit records" in problems


def test_every_disagreeing_row_is_counted_and_the_command_names_the_first_few(shared):
    db = shared.open()
    sb.seeded_run(db, SEED)
    db.close()

    with shared.raw() as conn:
        conn.execute("UPDATE executions SET updated_at = updated_at + 1")
    result = verify_executions_table(shared.open())
    verified = arbitrex("audit", "verify", "--db", shared.url)

    assert result.executions_disagreeing == 30 and result.executions_verified == 0
    assert {d.column for d in result.disagreements} == {"updated_at"}
    lines = verified.stdout.splitlines()
    assert verified.returncode == 1
    assert len(lines) == len(result.disagreements) + 1
    assert lines[-1] == (
        f"TAMPERED: and {30 - len(result.disagreements)} more executions whose row "
        "disagrees with their records"
    )


def test_records_that_no_longer_replay_are_named_and_the_other_rows_still_checked(shared):
    db = shared.open()
    sb.seeded_run(db, SEED)
    filled = one_with_status(shared, "FILLED")

    shared.tamper(
        "UPDATE audit_events SET payload = '{}' WHERE seq = "
        "(SELECT MAX(seq) FROM audit_events WHERE execution_id = ?)",
        (filled,),
    )
    result = verify_audit_store(db)

    assert not result.chain.ok
    (found,) = result.executions.disagreements
    assert found.execution_id == filled and found.column is None
    assert found.problem.startswith(f"execution {filled}: its audit records do not replay: ")
    assert result.executions.executions_verified == 29


def test_a_store_without_an_executions_table_has_nothing_to_verify():
    with pytest.raises(TypeError, match="keeps no executions table"):
        verify_executions_table(InMemoryExecutionDatabase())


def test_the_chain_alone_still_verifies_when_only_a_row_was_changed(shared):
    db = shared.open()
    sb.seeded_run(db, SEED)

    with shared.raw() as conn:
        conn.execute("UPDATE executions SET updated_at = updated_at + 1")

    assert verify_audit_chain(db).ok and not verify_audit_store(db).ok
