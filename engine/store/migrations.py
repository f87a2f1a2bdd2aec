"""The audit store's schema, as numbered migrations written once per dialect.

`schema_migrations` records which versions a database has. Opening a store applies the
missing ones in order, inside one transaction that holds an exclusive lock, so two
processes opening the same database at once apply each migration exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.store.backend import Backend
from engine.store.base import StoreUnavailable


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]

    def statements(self, dialect: str) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgresql


def _tables(integer: str, real: str) -> tuple[str, ...]:
    # The payload is TEXT, not JSON/JSONB: the hash covers its exact canonical bytes, which
    # a JSON column type would be free to re-format.
    return (
        f"""CREATE TABLE audit_events (
            seq {integer} PRIMARY KEY,
            execution_id TEXT NOT NULL,
            at {real} NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            engine_version TEXT NOT NULL,
            config_version TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX audit_events_by_execution ON audit_events (execution_id, seq)",
        "CREATE INDEX audit_events_by_time ON audit_events (at)",
        # A second guard under the projection's key: one request per execution, ever.
        "CREATE UNIQUE INDEX audit_events_one_request ON audit_events (execution_id) "
        "WHERE kind = 'ExecutionRequested'",
        # Its times are integer UTC microseconds, the resolution of ExecutionLog's datetimes,
        # so that SQL filters and orders exactly as the logs themselves compare.
        f"""CREATE TABLE executions (
            execution_id TEXT NOT NULL PRIMARY KEY,
            idempotency_key TEXT NOT NULL UNIQUE,
            client_order_id TEXT NOT NULL,
            symbol TEXT,
            status TEXT NOT NULL,
            created_at {integer} NOT NULL,
            updated_at {integer} NOT NULL,
            engine_version TEXT NOT NULL,
            config_version TEXT NOT NULL
        )""",
        "CREATE INDEX executions_by_creation ON executions (created_at, execution_id)",
        "CREATE INDEX executions_by_status ON executions (status, created_at)",
    )


def _control_table(integer: str, real: str) -> tuple[str, ...]:
    # Operator actions (halt, resume) belong to no execution, so they live beside the
    # execution records rather than under a pseudo-execution; their seq is drawn from the
    # same chain, so one hash chain runs through both tables in seq order.
    return (
        f"""CREATE TABLE control_events (
            seq {integer} PRIMARY KEY,
            at {real} NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            engine_version TEXT NOT NULL,
            config_version TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX control_events_by_time ON control_events (at)",
    )


def _quote_tape(real: str) -> tuple[str, ...]:
    # Market data beside the trail (engine.store.quotes): no seq, no hash, no append-only
    # guard, since the store prunes it as it grows. The key makes a sample recorded twice
    # one row; the index serves the reads, which ask for a time span across symbols.
    return (
        f"""CREATE TABLE quote_tape (
            symbol TEXT NOT NULL,
            time {real} NOT NULL,
            bid {real} NOT NULL,
            ask {real} NOT NULL,
            PRIMARY KEY (symbol, time)
        )""",
        "CREATE INDEX quote_tape_by_time ON quote_tape (time, symbol)",
    )


def _events_view(position: str, at_kind_payload: str, items: str) -> str:
    # One row per event, in (seq, position) order when asked: a record of one event as it
    # is, a record of several expanded; the arguments are the dialect's JSON functions.
    versions = "a.engine_version, a.config_version"
    return (
        "CREATE VIEW audit_trail_events AS "
        f"SELECT a.seq, 0 AS position, a.execution_id, a.at, a.kind, a.payload, {versions} "
        "FROM audit_events a WHERE a.payload NOT LIKE '[%' UNION ALL "
        f"SELECT a.seq, {position}, a.execution_id, {at_kind_payload}, {versions} "
        f"FROM audit_events a CROSS JOIN {items} WHERE a.payload LIKE '[%'"
    )


def _owes_protection(field: Callable[[str, str], str]) -> tuple[str, ...]:
    # The column, and its value for the rows already stored, by the definition the store
    # writes it with (Execution.owes_protection), in SQL: ended, filled, asked for stops,
    # and a position a fill named without an outcome of setting its stops on record (or,
    # fills that named none, no outcome at all). `field(payload, "a.b")` reads a key of an
    # event's payload in the dialect's JSON. The statuses are written out, not read
    # from the enum: a migration's text never changes once released.
    terminal = "'FILLED', 'PARTIALLY_FILLED', 'EXPIRED'"  # the only ends that can hold fills
    asked = " OR ".join(
        field("r.payload", f"request.{level}") + " IS NOT NULL"
        for level in ("stop_loss", "stop_loss_pips", "take_profit", "take_profit_pips")
    )
    filled_position = field("f.payload", "position_id")
    outcome_position = field("o.payload", "position_id")
    return (
        "ALTER TABLE executions ADD COLUMN owes_protection INTEGER NOT NULL DEFAULT 0",
        f"""UPDATE executions SET owes_protection = 1
        WHERE status IN ({terminal})
        AND EXISTS (
            SELECT 1 FROM audit_trail_events r WHERE r.execution_id = executions.execution_id
            AND r.kind = 'ExecutionRequested' AND ({asked}))
        AND (
            EXISTS (
                SELECT 1 FROM audit_trail_events f
                WHERE f.execution_id = executions.execution_id AND f.kind = 'OrderFilled'
                AND {filled_position} <> ''
                AND {filled_position} NOT IN (
                    SELECT {outcome_position} FROM audit_trail_events o
                    WHERE o.execution_id = executions.execution_id
                    AND o.kind IN ('ProtectionSet', 'ProtectionFailed')))
            OR (
                EXISTS (
                    SELECT 1 FROM audit_trail_events f
                    WHERE f.execution_id = executions.execution_id AND f.kind = 'OrderFilled')
                AND NOT EXISTS (
                    SELECT 1 FROM audit_trail_events f
                    WHERE f.execution_id = executions.execution_id AND f.kind = 'OrderFilled'
                    AND {filled_position} <> '')
                AND NOT EXISTS (
                    SELECT 1 FROM audit_trail_events o
                    WHERE o.execution_id = executions.execution_id
                    AND o.kind IN ('ProtectionSet', 'ProtectionFailed'))))""",
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="audit events and the executions projection",
        sqlite=_tables("INTEGER", "REAL"),
        postgresql=_tables("BIGINT", "DOUBLE PRECISION"),
    ),
    Migration(
        version=2,
        name="audit events are append-only",
        sqlite=(
            "CREATE TRIGGER audit_events_refuse_update BEFORE UPDATE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END",
            "CREATE TRIGGER audit_events_refuse_delete BEFORE DELETE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END",
        ),
        postgresql=(
            """CREATE FUNCTION audit_events_refuse_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
            END;
            $$""",
            "CREATE TRIGGER audit_events_refuse_update_delete BEFORE UPDATE OR DELETE "
            "ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()",
            "CREATE TRIGGER audit_events_refuse_truncate BEFORE TRUNCATE "
            "ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change()",
        ),
    ),
    Migration(
        version=3,
        name="control events (halt, resume) in the audit chain, append-only",
        sqlite=(
            *_control_table("INTEGER", "REAL"),
            "CREATE TRIGGER control_events_refuse_update BEFORE UPDATE ON control_events "
            "BEGIN SELECT RAISE(ABORT, 'control_events is append-only: UPDATE refused'); END",
            "CREATE TRIGGER control_events_refuse_delete BEFORE DELETE ON control_events "
            "BEGIN SELECT RAISE(ABORT, 'control_events is append-only: DELETE refused'); END",
        ),
        postgresql=(
            *_control_table("BIGINT", "DOUBLE PRECISION"),
            """CREATE FUNCTION control_events_refuse_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'control_events is append-only: % refused', TG_OP;
            END;
            $$""",
            "CREATE TRIGGER control_events_refuse_update_delete BEFORE UPDATE OR DELETE "
            "ON control_events FOR EACH ROW EXECUTE FUNCTION control_events_refuse_change()",
            "CREATE TRIGGER control_events_refuse_truncate BEFORE TRUNCATE ON control_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION control_events_refuse_change()",
        ),
    ),
    Migration(
        version=4,
        name="the quote tape (market data, outside the audit chain)",
        sqlite=_quote_tape("REAL"),
        postgresql=_quote_tape("DOUBLE PRECISION"),
    ),
    # Each index costs every append a B-tree insert, so audit_events keeps only those a read
    # uses (tests/test_store_indexes.py checks each read's plan on SQLite): its primary key
    # (the chain's head, verify's walk, the export's pages, keyset on seq with the time
    # window a filter on them), audit_events_by_execution (an execution's records: the
    # store's fold, history, recovery; executions() and verify's pages in id order) and
    # audit_events_one_request (a guard, which also ends verify's pages). No read goes by
    # time alone: the index on `at` only slowed the writes.
    Migration(
        version=5,
        name="no index on the audit records' time: no read uses it",
        sqlite=("DROP INDEX audit_events_by_time",),
        postgresql=("DROP INDEX audit_events_by_time",),
    ),
    # Trail format 2 (engine.store.records): a record holds the events of one append. The
    # records already stored stay as they are (format 1 is format 2 with one event per
    # record); the migration marks the database, so that an engine that knows only format
    # 1 refuses it rather than misread a record, and adds a view of every event on its own.
    Migration(
        version=6,
        name="trail format 2: one record per append; the view audit_trail_events",
        sqlite=(
            _events_view(
                "e.key",
                "json_extract(e.value, '$.at'), json_extract(e.value, '$.kind'), "
                "json_extract(e.value, '$.payload')",
                "json_each(a.payload) e",
            ),
        ),
        postgresql=(
            _events_view(
                "e.position - 1",
                "(e.item ->> 'at')::double precision, e.item ->> 'kind', "
                "(e.item -> 'payload')::text",
                "LATERAL json_array_elements(a.payload::json) WITH ORDINALITY e(item, position)",
            ),
        ),
    ),
    # A crash between a fill and its stops leaves an execution that has ended (FILLED) but
    # whose position stands without the stops upstream asked for. Recovery looked only at
    # executions that had not ended, so it never found them; the row now says so, and
    # recovery settles these too (engine.core.flow.recovery_flow), from the rows alone:
    # without the column, it would have to fold every ended execution's records.
    Migration(
        version=7,
        name="executions.owes_protection: ended filled, stops not yet on record",
        sqlite=_owes_protection(lambda payload, key: f"json_extract({payload}, '$.{key}')"),
        postgresql=_owes_protection(
            lambda payload, key: f"({payload}::json #>> '{{{key.replace('.', ',')}}}')"
        ),
    ),
)


_CREATE_LEDGER = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
)


def apply_migrations(
    conn: Any, backend: Backend, migrations: Sequence[Migration] = MIGRATIONS
) -> tuple[int, ...]:
    """Bring the schema up to date; returns the versions this call applied (often none)."""
    known = {migration.version for migration in migrations}
    if backend.table_exists(conn, "schema_migrations"):
        applied = _applied(conn)
        _refuse_unknown(applied, known, backend)
        if known <= applied:
            return ()  # the common case takes no write lock, so opening never queues
    backend.begin_exclusive(conn, "migrations")
    try:
        backend.create_namespace(conn)
        conn.execute(_CREATE_LEDGER)
        applied = _applied(conn)  # again, under the lock: another process may have won
        _refuse_unknown(applied, known, backend)
        done = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in applied:
                continue
            for statement in migration.statements(backend.dialect):
                conn.execute(statement)
            conn.execute(
                backend.sql("INSERT INTO schema_migrations (version, name) VALUES (?, ?)"),
                (migration.version, migration.name),
            )
            done.append(migration.version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return tuple(done)


def _applied(conn: Any) -> set[int]:
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}


def _refuse_unknown(applied: set[int], known: set[int], backend: Backend) -> None:
    unknown = sorted(applied - known)
    if unknown:
        raise StoreUnavailable(
            f"{backend.label} has schema migrations {unknown} that this engine does not know "
            f"(it knows up to {max(known)}): a newer engine wrote it; refusing to use it"
        )
