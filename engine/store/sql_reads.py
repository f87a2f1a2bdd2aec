"""The SQL audit store's reads: executions, history, the trail's exports and evidence.

Written once for SQLite and PostgreSQL, as `engine.store.sql` writes. Every read goes
through the writer's `_reading`, which holds its lock and first commits any group of sync
appends still open, so a reader never sees records a failing commit could take back.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from itertools import groupby
from typing import Any

from engine.core.events import ExecutionEvent
from engine.core.lifecycle import Execution
from engine.schemas import ExecutionLog, ExecutionStatus
from engine.store.backend import Backend
from engine.store.base import (
    ControlEvent,
    ControlKind,
    ExecutionDatabase,
    HistoryQuery,
    aware,
    called_with_fields_of,
)
from engine.store.chain import ChainRecord
from engine.store.projection import (
    EVIDENCE,
    PAGE_END,
    UP_TO,
    ProjectionEvidence,
    ProjectionRow,
    micros,
)
from engine.store.quotes import QuoteSample, read_quotes
from engine.store.records import decoded, export_rows

RECORD_COLUMNS = (
    "seq, execution_id, at, kind, payload, engine_version, config_version, prev_hash, hash"
)
_RECORD_FIELDS = tuple(RECORD_COLUMNS.split(", "))
CONTROL_COLUMNS = "seq, at, kind, payload, engine_version, config_version, prev_hash, hash"
# Both tables, as one chain of records in seq order; `{where}` filters each side alike.
_CHAIN = (
    f"SELECT {RECORD_COLUMNS} FROM audit_events WHERE {{where}} UNION ALL "
    "SELECT seq, NULL, at, kind, payload, engine_version, config_version, prev_hash, hash "
    "FROM control_events WHERE {where} ORDER BY seq"
)
_TERMINAL = tuple(status.value for status in ExecutionStatus if status.is_terminal)


class SQLReads(ExecutionDatabase):
    """What the SQL store answers; the store (engine.store.sql) gives the connection."""

    _backend: Backend

    @abstractmethod
    def _reading(self, action: str) -> AbstractContextManager[Any]:
        """The connection for a read, under the store's lock; `action` names it in errors."""

    def events(self, execution_id: str) -> Sequence[ExecutionEvent]:
        with self._reading(f"read the events of execution {execution_id}") as conn:
            return self._read_events(conn, execution_id)

    def execution_ids(self) -> list[str]:
        query = "SELECT execution_id FROM executions ORDER BY created_at, execution_id"
        with self._reading("list executions") as conn:
            return [row[0] for row in conn.execute(query).fetchall()]

    def executions(self, chunk: int = 1000) -> Iterator[Execution]:
        # Keyset pages, each read under the lock and replayed outside it: a writer waits at
        # most one page, and memory holds one page, however many executions there are.
        ids_after = self._backend.sql(
            "SELECT execution_id FROM executions WHERE execution_id > ? "
            "ORDER BY execution_id LIMIT ?"
        )
        records_between = self._backend.sql(
            "SELECT execution_id, kind, at, payload FROM audit_events "
            "WHERE execution_id >= ? AND execution_id <= ? ORDER BY execution_id, seq"
        )
        after = ""
        while True:
            with self._reading("read executions in id order") as conn:
                ids = [row[0] for row in conn.execute(ids_after, (after, chunk)).fetchall()]
                if not ids:
                    return
                rows = conn.execute(records_between, (ids[0], ids[-1])).fetchall()
            for execution_id, records in groupby(rows, key=lambda row: row[0]):
                yield Execution.replay(
                    execution_id, decoded(execution_id, (row[1:] for row in records))
                )
            after = ids[-1]

    @called_with_fields_of(HistoryQuery)
    def history(self, query: HistoryQuery) -> list[ExecutionLog]:
        """Executions created in [start, end), oldest first, filtered and paginated."""
        filters: list[tuple[str, Any]] = []
        if query.symbol is not None:
            filters.append(("symbol = ?", query.symbol))
        if query.status is not None:
            filters.append(("status = ?", query.status.value))
        if query.start is not None:
            filters.append(("created_at >= ?", micros(query.start)))
        if query.end is not None:
            filters.append(("created_at < ?", micros(query.end)))
        where = " AND ".join(clause for clause, _ in filters) or "1 = 1"
        select = self._backend.sql(
            f"SELECT execution_id FROM executions WHERE {where} "
            "ORDER BY created_at, execution_id LIMIT ? OFFSET ?"
        )
        params = (*(value for _, value in filters), query.limit, query.offset)
        with self._reading("query execution history") as conn:
            ids = [row[0] for row in conn.execute(select, params).fetchall()]
            return [Execution.replay(i, self._read_events(conn, i)).to_log() for i in ids]

    def unsettled(self) -> list[str]:
        """Executions a stop or a lost reply left unfinished, oldest first: those that have
        not ended, and those that ended filled with their stops not yet on record.
        Recovery must settle each one."""
        marks = ", ".join("?" for _ in _TERMINAL)
        query = self._backend.sql(
            f"SELECT execution_id FROM executions WHERE status NOT IN ({marks}) "
            "OR owes_protection = 1 ORDER BY created_at, execution_id"
        )
        with self._reading("list unsettled executions") as conn:
            return [row[0] for row in conn.execute(query, _TERMINAL).fetchall()]

    def export_audit_trail(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Every event of the records stamped in [start, end) (a record is stamped with its
        first event's time, and kept or left whole), in recording (seq) order, with its
        record's hashes; control events (halt, resume) among them, with no execution_id."""
        return list(self.iter_audit_trail(start, end))

    def iter_audit_trail(
        self, start: datetime, end: datetime, page: int = 10_000
    ) -> Iterator[dict[str, Any]]:
        # Keyset pages on seq, each read under the lock: a trail of millions of records is
        # exported in the memory of one page.
        query = self._backend.sql(
            _CHAIN.format(where="at >= ? AND at < ? AND seq > ?") + " LIMIT ?"
        )
        bounds = (aware(start, "start").timestamp(), aware(end, "end").timestamp())
        after = 0
        while True:
            with self._reading("export the audit trail") as conn:
                rows = conn.execute(query, (*bounds, after) * 2 + (page,)).fetchall()
            for row in rows:
                record = dict(zip(_RECORD_FIELDS, row, strict=True))
                if record["execution_id"] is None:  # a control event: always one event
                    yield record | {"payload": json.loads(record["payload"])}
                else:
                    yield from export_rows(record)
            if len(rows) < page:
                return
            after = rows[-1][0]

    def chain_records(self, after_seq: int, limit: int) -> list[ChainRecord]:
        """Stored records with seq > after_seq, in seq order, exactly as the database holds them."""
        query = self._backend.sql(_CHAIN.format(where="seq > ?") + " LIMIT ?")
        with self._reading("read the audit chain") as conn:
            rows = conn.execute(query, (after_seq, after_seq, limit))
            return [ChainRecord(*row) for row in rows]

    def projection_evidence(self, page: int = 1000) -> Iterator[ProjectionEvidence]:
        """Every execution's row in the executions table beside its records, in execution
        id order, ids that have only one of the two included: what verify checks the table
        against. A page's rows and records come from one statement, so from one snapshot,
        whatever other connections commit meanwhile."""
        sql, after = self._backend.sql, ""
        while True:
            with self._reading("read the executions table beside its records") as conn:
                (end,) = conn.execute(sql(PAGE_END), (after, page - 1) * 2).fetchone()
                # The last page (end None) runs to the end of both tables.
                bounded, params = ("", (after,)) if end is None else (UP_TO, (after, end))
                query = sql(EVIDENCE.format(bounded=bounded))
                rows = conn.execute(query, params * 2).fetchall()
            for execution_id, group in groupby(rows, key=lambda row: row[0]):
                stored, records = None, []
                for *row, seq, kind, at, payload in group:
                    if seq == 0:
                        stored = ProjectionRow(*row)
                    else:
                        records.append((kind, at, payload))
                yield ProjectionEvidence(execution_id, stored, tuple(records))
            if end is None:
                return
            after = end

    def quote_tape(self, start: float | None = None, end: float | None = None) -> list[QuoteSample]:
        with self._reading("read the quote tape") as conn:
            return read_quotes(conn, self._backend, start, end)

    def control_events(self) -> list[ControlEvent]:
        query = f"SELECT {CONTROL_COLUMNS} FROM control_events ORDER BY seq"
        with self._reading("read the control events") as conn:
            rows = conn.execute(query).fetchall()
        return [
            ControlEvent(ControlKind(kind), at, json.loads(payload), engine_version, config_ver)
            for _, at, kind, payload, engine_version, config_ver, _, _ in rows
        ]

    def ping(self) -> None:
        with self._reading("reach the audit store") as conn:
            conn.execute("SELECT 1").fetchone()

    def _read_events(self, conn: Any, execution_id: str) -> tuple[ExecutionEvent, ...]:
        rows = conn.execute(
            self._backend.sql(
                "SELECT kind, at, payload FROM audit_events WHERE execution_id = ? ORDER BY seq"
            ),
            (execution_id,),
        ).fetchall()
        return decoded(execution_id, rows)
