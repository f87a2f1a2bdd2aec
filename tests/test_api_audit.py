"""The kill switch in the audit store: halts and resumes chained with the executions'
records, on every backend, append-only and tamper-evident like them."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from itertools import pairwise

import pytest
import store_backends as sb

from engine.core.config import ENGINE_VERSION
from engine.store import InMemoryExecutionDatabase, verify_audit_chain
from engine.store.base import ControlEvent, ControlKind, ExecutionDatabase
from sim.world import DEFAULT_START

EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
SQLITE_GUARDS = ("control_events_refuse_update", "control_events_refuse_delete")


def control(kind: ControlKind, at: float, by: str = "ops") -> ControlEvent:
    return ControlEvent(kind, at, {"by": by, "reason": None}, ENGINE_VERSION, "cfg")


def run_with_a_halt(db: ExecutionDatabase) -> None:
    """A seeded run with a halt and a resume recorded while it is under way."""
    db.append_control(control(ControlKind.TRADING_HALTED, DEFAULT_START + 0.1))
    db.append(sb.requested("during", DEFAULT_START + 0.2))
    db.append_control(control(ControlKind.TRADING_RESUMED, DEFAULT_START + 0.3))
    db.append(sb.requested("after", DEFAULT_START + 0.4))


def test_control_events_join_the_one_chain_in_seq_order_and_verify(target):
    db = target.open()
    run_with_a_halt(db)

    rows = db.export_audit_trail(*EVER)
    result = verify_audit_chain(db)

    assert [(row["kind"], row["execution_id"] is None) for row in rows] == [
        ("TradingHalted", True),
        ("ExecutionRequested", False),
        ("TradingResumed", True),
        ("ExecutionRequested", False),
    ]
    assert [row["seq"] for row in rows] == [1, 2, 3, 4]
    assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(rows))
    assert result.ok and result.records_verified == 4 and result.head_hash == rows[-1]["hash"]
    assert [event.kind for event in db.control_events()] == [
        ControlKind.TRADING_HALTED,
        ControlKind.TRADING_RESUMED,
    ]


def test_control_events_are_no_executions_for_history_recovery_or_metrics(target):
    db = target.open()
    run_with_a_halt(db)

    assert len(list(db.execution_ids())) == 2
    assert len(db.history(limit=10)) == 2
    assert db.metrics().executions == 2
    assert len(db.unsettled()) == 2  # the two requests, never the control events


def test_a_control_event_is_committed_at_once_even_in_batched_durability(shared):
    writer = shared.open(durability="batched", batch_size=1000)
    writer.append(sb.requested("pending"))
    writer.append_control(control(ControlKind.TRADING_HALTED, DEFAULT_START + 1))

    reader = shared.open()

    assert [record.kind for record in reader.chain_records(0, 10)] == [
        "ExecutionRequested",
        "TradingHalted",
    ]


@pytest.mark.parametrize(
    "statement", ["UPDATE control_events SET payload = '{}'", "DELETE FROM control_events"]
)
def test_the_database_itself_refuses_to_change_or_remove_a_control_event(shared, statement):
    db = shared.open()
    run_with_a_halt(db)

    with shared.raw() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(statement)


def tamper_with_the_resume(target: sb.StoreTarget) -> None:
    """Change the payload of record 3 (the TradingResumed of run_with_a_halt) behind the
    store, its append-only guards dropped first."""
    with target.raw() as conn:
        if target.kind == "postgresql":
            conn.execute("DROP TRIGGER control_events_refuse_update_delete ON control_events")
        else:
            for trigger in SQLITE_GUARDS:
                conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute("UPDATE control_events SET payload = '{}' WHERE seq = 3")


def test_verify_names_a_control_event_changed_behind_the_store(shared):
    db = shared.open()
    run_with_a_halt(db)

    tamper_with_the_resume(shared)
    result = verify_audit_chain(db)

    assert not result.ok and result.first_bad_seq == 3 and result.records_verified == 2
    assert result.first_bad_execution_id is None and "content changed" in result.problem
    assert result.first_bad_kind == "TradingResumed"  # present, so not "missing"


def test_arbitrex_audit_verify_reports_a_changed_control_event_as_tampered_not_missing(shared):
    run_with_a_halt(shared.open())
    shared.close_all()

    tamper_with_the_resume(shared)
    exe = shutil.which("arbitrex")
    assert exe is not None, "the arbitrex command is not installed: pip install -e '.[dev]'"
    verified = subprocess.run(
        [exe, "audit", "verify", "--db", shared.url], capture_output=True, text=True, timeout=120
    )

    assert verified.returncode == 1, verified.stderr
    assert verified.stdout.splitlines() == [
        "TAMPERED: record 3 (control event TradingResumed): content changed: record 3's "
        "fields no longer match its hash; 2 records before it verified"
    ]


def test_the_in_memory_store_keeps_control_events_in_its_time_ordered_trail():
    db = InMemoryExecutionDatabase()
    run_with_a_halt(db)

    kinds = [row["kind"] for row in db.export_audit_trail(*EVER)]

    assert kinds == ["TradingHalted", "ExecutionRequested", "TradingResumed", "ExecutionRequested"]
    assert db.control_events()[0].payload == {"by": "ops", "reason": None}
