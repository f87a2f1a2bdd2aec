"""The quote tape in the store: what is recorded reads back, once, in order, bounded, and
outside the audit chain — on every backend (in memory, SQLite file and memory, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.store import (
    ExecutionDatabase,
    QuoteSample,
    open_database,
    verify_audit_store,
)
from engine.store.migrations import MIGRATIONS, apply_migrations
from engine.store.postgres import PostgresBackend
from engine.store.sqlite import SQLiteBackend
from sim.world import DEFAULT_START
from tests import store_backends as sb

T0 = DEFAULT_START
Opener = Callable[..., ExecutionDatabase]


@pytest.fixture(params=("memory", *sb.ALL))
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a fresh store of each kind (options as open_database takes them)."""
    if request.param == "memory":
        yield lambda **options: open_database("memory://", **options)
        return
    with sb.store_target(request.param, tmp_path) as target:
        yield lambda **options: target.open(**options)


def sample(time: float, symbol: str = "EURUSD", bid: float = 1.1, ask: float = 1.1002):
    return QuoteSample(symbol, time, bid, ask)


def test_the_tape_reads_back_what_was_recorded_by_time_then_symbol(opener):
    db = opener()
    recorded = [sample(T0 + 1, "USDJPY", 150.1, 150.12), sample(T0 + 1), sample(T0)]

    db.record_quotes(recorded)

    assert db.quote_tape() == [sample(T0), sample(T0 + 1), sample(T0 + 1, "USDJPY", 150.1, 150.12)]


def test_a_sample_recorded_twice_is_one_row_as_first_recorded(opener):
    db = opener()
    db.record_quotes([sample(T0), sample(T0)])
    db.record_quotes([sample(T0, bid=1.2, ask=1.2002), sample(T0 + 1)])

    assert db.quote_tape() == [sample(T0), sample(T0 + 1)]


def test_the_tape_is_read_over_a_half_open_window(opener):
    db = opener()
    db.record_quotes([sample(T0 + second) for second in range(5)])

    window = db.quote_tape(T0 + 1, T0 + 3)

    assert [q.time for q in window] == [T0 + 1, T0 + 2]
    assert [q.time for q in db.quote_tape(start=T0 + 3)] == [T0 + 3, T0 + 4]
    assert [q.time for q in db.quote_tape(end=T0 + 1)] == [T0]


def test_recording_prunes_each_symbols_samples_older_than_the_retention_before_its_newest(
    opener,
):
    db = opener(quote_retention_seconds=60.0)
    db.record_quotes(
        [sample(T0 + s) for s in range(0, 60, 10)] + [sample(T0, "USDJPY", 150, 150.1)]
    )

    db.record_quotes([sample(T0 + 75)])

    # EURUSD keeps [T0 + 15, T0 + 75]; USDJPY, not recorded since, keeps its sample.
    assert [(q.symbol, q.time - T0) for q in db.quote_tape()] == [
        ("USDJPY", 0),
        ("EURUSD", 20),
        ("EURUSD", 30),
        ("EURUSD", 40),
        ("EURUSD", 50),
        ("EURUSD", 75),
    ]


def test_recording_a_past_period_prunes_nothing_newer(opener):
    db = opener(quote_retention_seconds=60.0)
    db.record_quotes([sample(T0 + 1_000)])

    db.record_quotes([sample(T0), sample(T0 + 30)])

    assert [q.time - T0 for q in db.quote_tape()] == [0, 30, 1_000]


def test_a_retention_that_keeps_nothing_is_refused():
    with pytest.raises(ValueError, match="quote_retention_seconds must be positive"):
        open_database("memory://", quote_retention_seconds=0)
    with pytest.raises(ValueError, match="quote_retention_seconds must be positive"):
        open_database("sqlite:///:memory:", quote_retention_seconds=-1.0)


def test_the_tape_stays_out_of_the_audit_chain(target):
    db = target.open()
    sb.seeded_run(db, seed=7, until=5.0)
    before = verify_audit_store(db)

    db.record_quotes([sample(T0 + s) for s in range(100)])
    db.record_quotes([sample(T0 + 100 + 7 * 86_400)])  # prunes the first hundred

    after = verify_audit_store(db)
    assert after.ok and after.chain.records_verified == before.chain.records_verified
    assert after.chain.head_hash == before.chain.head_hash


def test_tape_samples_recorded_between_batched_appends_lose_no_audit_record(shared):
    db = shared.open(durability="batched", batch_size=1_000)
    db.append(sb.requested("pending-when-the-tape-is-written"))

    db.record_quotes([sample(T0)])
    db.close()

    reopened = shared.open()
    assert len(list(reopened.execution_ids())) == 1
    assert reopened.quote_tape() == [sample(T0)]


def test_an_existing_database_gets_the_tape_when_opened(shared):
    backend: Any = (
        SQLiteBackend.from_url(shared.url)
        if shared.kind == "sqlite-file"
        else PostgresBackend.from_url(shared.url)
    )
    conn = backend.connect()
    assert apply_migrations(conn, backend, MIGRATIONS[:3]) == (1, 2, 3)
    conn.close()

    db = shared.open()
    db.record_quotes([sample(T0)])

    assert db.quote_tape() == [sample(T0)]
    with shared.raw() as raw:
        versions = [row[0] for row in raw.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == [m.version for m in MIGRATIONS]
