"""audit_events keeps the indexes its reads use, and no more: every append pays for each
one. Each read the store makes is checked against SQLite's query plan."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import store_backends as sb

from engine.schemas import ExecutionStatus
from engine.store import SQLExecutionDatabase, verify_audit_store
from engine.store.backend import Durability
from engine.store.migrations import MIGRATIONS, apply_migrations
from engine.store.postgres import PostgresBackend
from engine.store.sqlite import SQLiteBackend

# The newest record, read by the primary key backwards: a SCAN in SQLite's words, which
# stops at the first row it reads.
CHAIN_HEAD = "FROM audit_events ORDER BY seq DESC LIMIT 1"
SECONDARY_INDEXES = {
    "sqlite-file": "SELECT name FROM sqlite_master "
    "WHERE type = 'index' AND tbl_name = 'audit_events' AND sql IS NOT NULL",
    "postgresql": "SELECT indexname FROM pg_indexes WHERE tablename = 'audit_events' "
    "AND schemaname = current_schema() AND indexname <> 'audit_events_pkey'",
}


class TracedSQLite(SQLiteBackend):
    """A SQLite backend that keeps every statement the store runs, values filled in."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.statements: list[str] = []

    def connect(self, durability: Durability = "sync") -> sqlite3.Connection:
        conn = super().connect(durability)
        conn.set_trace_callback(self.statements.append)
        return conn


def reads_of_audit_events(statements: list[str]) -> dict[str, str]:
    """Each distinct SELECT on audit_events, keyed by its text without its values."""
    reads: dict[str, str] = {}
    for statement in statements:
        if statement.lstrip().upper().startswith("SELECT") and "audit_events" in statement:
            shape = re.sub(r"'[^']*'|\b\d+(?:\.\d+)?\b", "?", statement)
            reads.setdefault(shape, statement)
    return reads


def test_every_read_of_the_audit_records_goes_through_an_index(tmp_path):
    backend = TracedSQLite(tmp_path / "traced.db")
    db = SQLExecutionDatabase(backend)
    sb.seeded_run(db, 28)
    db.close()
    db = SQLExecutionDatabase(backend)  # reads after a restart miss the store's fold cache
    some = next(iter(db.execution_ids()))
    db.events(some)
    db.get_execution(some)
    db.history(status=ExecutionStatus.FILLED, symbol="EURUSD", limit=5)
    db.unsettled()
    list(db.executions(chunk=7))
    db.export_audit_trail(datetime(2024, 1, 8, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC))
    assert verify_audit_store(db).ok
    db.close()

    reads = reads_of_audit_events(backend.statements)
    conn = sqlite3.connect(tmp_path / "traced.db")
    scans = {
        shape: plan
        for shape, statement in reads.items()
        if CHAIN_HEAD not in statement
        for plan in [[row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}")]]
        if any(step.startswith("SCAN audit_events") for step in plan)
    }

    assert len(reads) >= 6, reads  # the fold, history, executions(), export, verify's two
    assert scans == {}


def test_an_older_database_loses_the_index_on_time_and_keeps_the_others(shared):
    backend: Any = (
        SQLiteBackend.from_url(shared.url)
        if shared.kind == "sqlite-file"
        else PostgresBackend.from_url(shared.url)
    )
    conn = backend.connect()
    apply_migrations(conn, backend, MIGRATIONS[:4])
    conn.close()

    shared.open().append(sb.requested("after-the-upgrade"))

    with shared.raw() as raw:
        names = {row[0] for row in raw.execute(SECONDARY_INDEXES[shared.kind]).fetchall()}
    assert names == {"audit_events_by_execution", "audit_events_one_request"}
