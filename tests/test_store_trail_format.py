"""Trail format 2: one hash-chained record per append, a format-1 trail carried on as it is.

A record holds the events an execution writes at one durability point; each event stays
readable on its own (every reader, the exports, the view `audit_trail_events`), and a
database written one record per event verifies, reads and exports as before.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import store_backends as sb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_store_canonical import REFERENCE_HEAD, REFERENCE_TRAIL, reference_store

from engine.store import (
    ExecutionDatabase,
    InMemoryExecutionDatabase,
    StoreUnavailable,
    export_audit_trail_to,
    open_database,
    verify_audit_store,
)
from engine.store.chain import canonical_json
from engine.store.migrations import MIGRATIONS, apply_migrations
from engine.store.records import items_of, record_of
from engine.store.sqlite import SQLiteBackend

EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
SEED = 28  # a run with a lost reply, a reconciliation and refusals
# What a store of one record per event (the in-memory reference) exports too.
EVENT_COLUMNS = ("execution_id", "at", "kind", "payload")
VERSIONS = ("engine_version", "config_version")


def events_of(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The exported rows' events, chain columns left out, payloads as their stored text."""
    return [
        tuple(canonical_json(row[c]) if c == "payload" else row[c] for c in EVENT_COLUMNS)
        for row in rows
    ]


@pytest.fixture(scope="module")
def reference() -> InMemoryExecutionDatabase:
    db = InMemoryExecutionDatabase()
    sb.seeded_run(db, SEED)
    return db


def test_a_filled_order_is_two_records_the_first_named_by_its_request(tmp_path):
    with open_database(f"sqlite:///{tmp_path / 'audit.db'}") as db:
        sb.seeded_run(db, SEED)
        rows = db.export_audit_trail(*EVER)
    filled = [
        record
        for record in sb.appends(rows)
        if record[0]["execution_id"] == rows[0]["execution_id"]
    ]

    assert [len(record) > 1 for record in filled] == [True, True]
    assert filled[0][0]["kind"] == "ExecutionRequested"
    assert filled[-1][-1]["kind"] in ("SlippageMeasured", "ExecutionCompleted", "OrderClosed")


def test_every_export_format_holds_the_same_events_as_a_store_of_one_record_per_event(
    target, reference, tmp_path
):
    db = target.open()
    sb.seeded_run(db, SEED)

    for fmt in ("jsonl", "csv", "parquet"):
        ours, theirs = tmp_path / f"ours.{fmt}", tmp_path / f"theirs.{fmt}"
        export_audit_trail_to(db, ours, fmt, *EVER)
        export_audit_trail_to(reference, theirs, fmt, *EVER)
        if fmt == "jsonl":
            read = [json.loads(line) for line in ours.read_text().splitlines()]
            assert sb.chain_problem(read) is None  # the file alone re-verifies the chain
            assert sorted(events_of(read)) == sorted(events_of(reference.export_audit_trail(*EVER)))
        else:
            load = pd.read_csv if fmt == "csv" else pd.read_parquet
            mine, other = load(ours), load(theirs)
            key = ["execution_id", "at", "kind"]
            pd.testing.assert_frame_equal(
                mine[list(EVENT_COLUMNS)].sort_values(key).reset_index(drop=True),
                other[list(EVENT_COLUMNS)].sort_values(key).reset_index(drop=True),
            )


def test_the_view_shows_every_event_on_its_own_as_the_export_does(shared):
    db = shared.open()
    sb.seeded_run(db, SEED)
    rows = db.export_audit_trail(*EVER)

    with shared.raw() as conn:
        viewed = conn.execute(
            "SELECT execution_id, at, kind, payload, engine_version, config_version "
            "FROM audit_trail_events ORDER BY seq, position"
        ).fetchall()

    assert [(*row[:3], json.loads(row[3]), *row[4:]) for row in viewed] == [
        tuple(row[c] for c in EVENT_COLUMNS + VERSIONS)
        for row in rows
        if row["execution_id"] is not None
    ]


def test_a_format_1_trail_verifies_reads_and_goes_on_in_format_2_with_one_chain(tmp_path):
    raw = sqlite3.connect(":memory:")
    raw.executescript(REFERENCE_TRAIL.read_text(encoding="utf-8"))
    stored_before = raw.execute(
        "SELECT execution_id, at, kind, payload FROM audit_events ORDER BY seq"
    ).fetchall()
    db = reference_store(tmp_path)  # migrated to format 2; its records as they were

    old = db.export_audit_trail(*EVER)
    assert [
        (r["execution_id"], r["at"], r["kind"], canonical_json(r["payload"]))
        for r in old
        if r["execution_id"] is not None
    ] == stored_before
    before = verify_audit_store(db)
    assert before.ok and (before.chain.records_verified, before.chain.grouped_records) == (11, 0)
    assert before.chain.head_hash == REFERENCE_HEAD

    sb.seeded_run(db, SEED)
    after = verify_audit_store(db)
    rows = db.export_audit_trail(*EVER)

    assert after.ok and after.chain.grouped_records > 0
    assert after.chain.records_verified == len(sb.appends(rows))
    assert rows[: len(old)] == old and sb.chain_problem(rows) is None
    assert rows[len(old)]["prev_hash"] == REFERENCE_HEAD
    assert all(len(record) == 1 for record in sb.appends(old))


def test_an_engine_that_knows_only_format_1_refuses_a_format_2_database(tmp_path):
    path = tmp_path / "audit.db"
    open_database(f"sqlite:///{path}").close()
    backend = SQLiteBackend(str(path))
    conn = backend.connect("sync")

    with pytest.raises(StoreUnavailable, match=r"migrations \[6(, \d+)*\].*newer engine"):
        apply_migrations(conn, backend, MIGRATIONS[:5])
    conn.close()


@pytest.mark.parametrize(
    ("kind", "at", "payload", "problem"),
    [
        ("ExecutionRequested", 1.0, "[]", "neither one event nor the events of one append"),
        ("X", 1.0, '[{"at":1.0,"kind":"X","payload":{}}]', "neither one event nor"),
        ("X", 1.0, '[{"at":1.0,"kind":"X","payload":{}},{"kind":"Y"}]', "without kind, at"),
        (
            "X",
            2.0,
            '[{"at":1.0,"kind":"X","payload":{}},{"at":1.0,"kind":"Y","payload":{}}]',
            "are not its first event's",
        ),
        ("X", 1.0, '"text"', "neither one event nor"),
    ],
)
def test_a_record_that_is_not_one_append_is_refused_when_read(kind, at, payload, problem):
    with pytest.raises(ValueError, match=problem):
        items_of(kind, at, payload)


def appended_in_batches(
    reference: ExecutionDatabase, cuts: list[int]
) -> tuple[ExecutionDatabase, list[list[Any]]]:
    """Each execution of `reference` appended again to a SQLite store, its events cut into
    appends after the positions `cuts` picks (cycled over the executions)."""
    db = open_database("sqlite:///:memory:")
    batches = []
    for n, execution_id in enumerate(reference.execution_ids()):
        events = list(reference.events(execution_id))
        cut = cuts[n % len(cuts)] % len(events) + 1
        for batch in (events[:cut], events[cut:]):
            if batch:
                db.append_batch(batch)
                batches.append(batch)
    return db, batches


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=8))
def test_however_an_executions_events_are_cut_into_appends_they_read_back_and_verify(
    reference, cuts
):
    db, batches = appended_in_batches(reference, cuts)
    rows = db.export_audit_trail(*EVER)

    for execution_id in reference.execution_ids():
        assert db.events(execution_id) == reference.events(execution_id)
    assert [len(record) for record in sb.appends(rows)] == [len(batch) for batch in batches]
    assert sb.chain_problem(rows) is None and verify_audit_store(db).ok
    assert [record_of(batch)[1] for batch in batches] == [r[0]["kind"] for r in sb.appends(rows)]
