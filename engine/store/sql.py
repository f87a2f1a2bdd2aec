"""The SQL audit store: one schema and one code path over SQLite and PostgreSQL.

Every append runs in one transaction that holds the chain's exclusive lock (SQLite
`BEGIN IMMEDIATE`, PostgreSQL a transaction-level advisory lock): it reads the chain head,
inserts the hashed record and updates the `executions` projection together. Idempotency is
the database's: the projection's primary key and unique idempotency key refuse a second
`ExecutionRequested`, whichever connection or process sends it.

Durability "sync" commits each append before returning (write-ahead, for live trading).
Appends that arrive together share one commit: an append that finds others already queued
for the store leaves its transaction open for them and waits, and the last of the group
commits for all (group commit). Each still returns only once its own events are durable,
and a commit that fails fails every append of its group; readers never see a group before
it is committed. One engine alone commits every append at once, as before.
"batched" keeps the transaction open across appends and commits every `batch_size` events
and on `flush()` / `close()` (for simulation): duplicates are still refused at once, and
reads on this store see the pending events, because they go through the same transaction.
A crash loses the events since the last commit, which is why live trading uses "sync";
a batched SQLite store also skips the fsync of each commit (engine.store.sqlite).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any, Literal

from engine.core.events import ExecutionEvent, ExecutionRequested, event_kind
from engine.core.lifecycle import Execution
from engine.schemas import ExecutionLog, ExecutionStatus
from engine.store.backend import Backend, Durability, check_durability
from engine.store.base import (
    ControlEvent,
    ControlKind,
    DuplicateExecution,
    ExecutionDatabase,
    HistoryQuery,
    StoreUnavailable,
    aware,
    called_with_fields_of,
    one_execution,
)
from engine.store.chain import GENESIS_HASH, ChainRecord, canonical_json, record_hash
from engine.store.migrations import apply_migrations
from engine.store.projection import (
    CLAIM,
    EVIDENCE,
    PAGE_END,
    UP_TO,
    ProjectionEvidence,
    ProjectionRow,
    apply_events,
    micros,
    row_of,
)
from engine.store.quotes import (
    DEFAULT_QUOTE_RETENTION_SECONDS,
    QuoteSample,
    check_retention,
    read_quotes,
    write_quotes,
)
from engine.store.records import decoded, export_rows, record_of

_RECORD_COLUMNS = (
    "seq, execution_id, at, kind, payload, engine_version, config_version, prev_hash, hash"
)
_RECORD_FIELDS = tuple(_RECORD_COLUMNS.split(", "))
_CONTROL_COLUMNS = "seq, at, kind, payload, engine_version, config_version, prev_hash, hash"
# Both tables, as one chain of records in seq order; `{where}` filters each side alike.
_CHAIN = (
    f"SELECT {_RECORD_COLUMNS} FROM audit_events WHERE {{where}} UNION ALL "
    "SELECT seq, NULL, at, kind, payload, engine_version, config_version, prev_hash, hash "
    "FROM control_events WHERE {where} ORDER BY seq"
)
# The chain's head: the newest record of either table, in one statement.
_HEAD = (
    "SELECT seq, hash FROM (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) a "
    "UNION ALL SELECT seq, hash FROM (SELECT seq, hash FROM control_events "
    "ORDER BY seq DESC LIMIT 1) c ORDER BY seq DESC LIMIT 1"
)
_TERMINAL = tuple(status.value for status in ExecutionStatus if status.is_terminal)
# Why a failed group commit failed, kept for its waiting appends to read, for this many of
# the latest groups: far more than there can be appends waiting at once.
_LOST_GROUPS_KEPT = 1024
# How long an append waits for the rest of its group to commit it before it commits itself.
_GROUP_WAIT_SECONDS = 0.02


class SQLExecutionDatabase(ExecutionDatabase):
    """The audit store on one connection to a SQLite or PostgreSQL database (thread-safe)."""

    def __init__(
        self,
        backend: Backend,
        *,
        durability: Durability = "sync",
        batch_size: int = 1000,
        state_cache_size: int = 4096,
        quote_retention_seconds: float = DEFAULT_QUOTE_RETENTION_SECONDS,
    ) -> None:
        check_durability(durability, batch_size)
        self.durability = durability
        self.quote_retention_seconds = check_retention(quote_retention_seconds)
        self._backend = backend
        self._batch_size = batch_size if durability == "batched" else 1
        self._state_cache_size = state_cache_size
        self._lock = threading.RLock()
        self._conn: Any = None
        self._closed = False
        self._head: tuple[int, str] | None = None  # (seq, hash), only while a write is open
        self._open_lazy = False  # the open write may commit before the disk has it
        self._pending = 0  # appended in the open transaction, not yet committed
        # Group commit (sync): appends on their way to the lock, the group of appends the
        # open transaction holds, the last group committed, and why lost groups were lost.
        self._arriving = 0
        self._arrivals = threading.Lock()
        self._group = 1
        self._committed_group = 0
        self._lost_groups: dict[int, str] = {}
        self._group_settled = threading.Condition(self._lock)
        # What this store wrote last of recent executions, keyed by id: saves reading and
        # replaying an execution's events on every append. Every entry is this store's own
        # latest write of its execution: the cache is emptied whenever a transaction finds
        # that another connection wrote since this store's last commit.
        self._folds: OrderedDict[str, _Written] = OrderedDict()
        self._committed_seq = -1  # the head's seq after this store's last commit
        self._lease_handles: dict[str, Any] = {}
        try:
            with self._guard("open the audit store") as conn:
                apply_migrations(conn, backend)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"SQLExecutionDatabase({self._backend.label}, durability={self.durability!r})"

    # -- writing -------------------------------------------------------------------------

    def append_batch(
        self,
        events: Sequence[ExecutionEvent],
        *,
        durable: bool = True,
        folded: Execution | None = None,
    ) -> None:
        execution_id = one_execution(events)
        lazy = None if self.durability == "batched" else not durable
        with self._arrivals:
            self._arriving += 1
        with self._lock:
            with self._arrivals:
                self._arriving -= 1
            action = f"append {len(events)} event(s) for execution {execution_id}"
            with self._guard(action) as conn:
                if self._head is not None and self._open_lazy and lazy is False:
                    # A transaction's safety level is set as it begins: the lazy group open
                    # is committed as it is, and this append begins a durable one.
                    self._commit(conn)
                if self._head is None:
                    self._begin(conn, lazy)
                group = self._group
                try:
                    self._insert(conn, events, folded)
                except Exception as exc:
                    # A refused batch (duplicate, unknown execution, illegal transition)
                    # wrote nothing; a transaction holding nothing else is released at once,
                    # one holding a group's appends is still committed for them.
                    if not isinstance(exc, self._backend.driver_errors):
                        if not self._pending:
                            self._end(conn, "ROLLBACK")
                        elif self.durability == "sync" and not self._arriving:
                            self._commit(conn)
                    raise
                self._pending += len(events)
                if self.durability == "batched":
                    if self._pending >= self._batch_size:
                        self._commit(conn)
                    return
                if not self._arriving:
                    self._commit(conn)
                    return
            # Others are queued for the lock: they join this transaction, the last commits.
            while self._committed_group < group and group not in self._lost_groups:
                if not self._group_settled.wait(_GROUP_WAIT_SECONDS) and self._group == group:
                    # No one came to commit it (an arrival never reached the lock): this
                    # append holds the lock again, and commits its group itself.
                    with self._guard(action) as conn:
                        self._commit(conn)
            if group in self._lost_groups:
                raise StoreUnavailable(self._lost_groups[group])

    def append_control(self, event: ControlEvent) -> None:
        """Chain one control event after the head; committed at once, even when batched: an
        operator's halt must not wait for a batch to fill."""
        with self._lock, self._guard(f"append {event.kind.value}") as conn:
            if self._head is not None and self._open_lazy:
                self._commit(conn)
            if self._head is None:
                self._begin(conn, lazy=None if self.durability == "batched" else False)
            assert self._head is not None
            prev_seq, prev_hash = self._head
            seq, at, kind = prev_seq + 1, float(event.at), event.kind.value
            payload = canonical_json(event.payload)
            versions = (event.engine_version, event.config_version)
            digest = record_hash(prev_hash, seq, None, at, kind, payload, *versions)
            conn.execute(
                self._backend.sql(
                    f"INSERT INTO control_events ({_CONTROL_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (seq, at, kind, payload, *versions, prev_hash, digest),
            )
            self._head = (seq, digest)
            self._commit(conn)

    def record_quotes(self, samples: Sequence[QuoteSample]) -> None:
        if not samples:
            return
        with self._lock, self._guard(f"record {len(samples)} quote sample(s)") as conn:
            # Audit records waiting in an open transaction (a group commit, a batch) are
            # committed first: a failed tape write must never take them down with it.
            if self._head is not None:
                self._commit(conn)
            write_quotes(conn, self._backend, samples, self.quote_retention_seconds)

    def hold_lease(self, instance_id: str) -> None:
        super().hold_lease(instance_id)
        with self._lock:
            if instance_id not in self._lease_handles:
                try:
                    self._lease_handles[instance_id] = self._backend.hold_lease(instance_id)
                except (OSError, *self._backend.driver_errors) as exc:
                    raise StoreUnavailable(
                        f"{self._backend.label}: cannot take the lease of engine "
                        f"{instance_id}: {type(exc).__name__}: {exc}"
                    ) from exc

    def release_lease(self, instance_id: str) -> None:
        super().release_lease(instance_id)
        with self._lock:
            handle = self._lease_handles.pop(instance_id, None)
        if handle is not None:
            with suppress(Exception):
                handle.close()

    def lease_alive(self, instance_id: str) -> bool:
        if super().lease_alive(instance_id):
            return True
        try:
            alive = self._backend.lease_alive(instance_id)
        except (OSError, *self._backend.driver_errors) as exc:
            raise StoreUnavailable(
                f"{self._backend.label}: cannot tell whether engine {instance_id} is alive: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return bool(alive)

    def flush(self) -> None:
        """Commit the pending events (batched durability); a no-op when nothing is pending."""
        with self._lock:
            if self._head is not None:
                with self._guard("commit pending events") as conn:
                    self._commit(conn)

    def close(self) -> None:
        """Commit what is pending, then release the connection. Closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                self._closed = True
                for instance_id in list(self._lease_handles):
                    self.release_lease(instance_id)
                if self._conn is not None:
                    with suppress(*self._backend.driver_errors):
                        self._conn.close()
                    self._conn = None

    def _begin(self, conn: Any, lazy: bool | None) -> None:
        self._backend.begin_exclusive(conn, "audit-chain", lazy)
        self._open_lazy = bool(lazy)
        head = conn.execute(_HEAD).fetchone()
        self._head = (head[0], head[1]) if head is not None else (0, GENESIS_HASH)
        if self._head[0] != self._committed_seq:
            self._folds.clear()  # someone else wrote: any execution may have moved on

    def _end(self, conn: Any, statement: Literal["COMMIT", "ROLLBACK"]) -> None:
        conn.execute(statement)
        self._head, self._pending = None, 0

    def _commit(self, conn: Any) -> None:
        """Commit the open transaction: every append of its group is durable now."""
        assert self._head is not None
        head_seq = self._head[0]
        self._end(conn, "COMMIT")
        self._committed_seq = head_seq
        self._committed_group = self._group
        self._group += 1
        self._group_settled.notify_all()

    def _settled(self, conn: Any) -> Any:
        """The connection for a read, once no group of sync appends is left uncommitted: a
        reader never sees records that a failing commit could still take back."""
        if self._pending and self.durability == "sync":
            self._commit(conn)
        return conn

    def _insert(
        self, conn: Any, events: Sequence[ExecutionEvent], folded: Execution | None
    ) -> None:
        """Fold, hash, then claim, then write: every refusal comes before the first write."""
        assert self._head is not None
        first, execution_id, sql = events[0], events[0].execution_id, self._backend.sql
        written = self._folds.pop(execution_id, None)  # trusted again only once stored
        if folded is not None and _continues(written, folded, events):
            # The caller folded these very events onto what this store wrote last: its
            # fold is the one the store would make (the lifecycle is one table).
            execution, own = folded, None
            before = written.status_changes if written is not None else 0
            changed = folded.status_changes > before
            changed_at = folded.status_changed_at if changed else None
        else:
            if isinstance(first, ExecutionRequested):
                execution = Execution(execution_id)
            else:
                execution = self._fold(conn, first, written)
            changed_at = apply_events(execution, events)
            own = execution
            if folded is not None and folded.applied != execution.applied:
                folded = None  # the caller's fold is not ours: it is not taken next time
        request = execution.request
        assert request is not None
        prev_seq, prev_hash = self._head
        seq, versions = prev_seq + 1, (request.engine_version, request.config_version)
        at, kind, payload = record_of(events)  # refuses a number that is not finite
        digest = record_hash(prev_hash, seq, execution_id, at, kind, payload, *versions)
        if isinstance(first, ExecutionRequested):
            assert changed_at is not None  # a request always moves the status
            self._claim(conn, row_of(execution, changed_at))
        elif changed_at is not None:
            # The row follows every status change, even one a batch undoes (SUBMITTING,
            # UNRESOLVED, SUBMITTING): its updated_at is then the fold's, as verify expects.
            row = row_of(execution, changed_at)
            conn.execute(
                sql("UPDATE executions SET status = ?, updated_at = ? WHERE execution_id = ?"),
                (row.status, row.updated_at, execution_id),
            )
        conn.execute(
            sql(f"INSERT INTO audit_events ({_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            (seq, execution_id, at, kind, payload, *versions, prev_hash, digest),
        )
        self._head = (seq, digest)
        self._folds[execution_id] = _Written(
            own, folded, execution.applied, execution.status_changes
        )
        if len(self._folds) > self._state_cache_size:
            self._folds.popitem(last=False)

    def _claim(self, conn: Any, row: ProjectionRow) -> None:
        """Insert the execution's row, in the status its first batch leaves it in: the
        database's unique keys decide who was first."""
        sql = self._backend.sql
        # ON CONFLICT DO NOTHING lets the keys refuse a second claim without failing the
        # statement, which on PostgreSQL would abort the whole (maybe batched) transaction.
        claimed = conn.execute(sql(CLAIM), row.values()).rowcount
        if claimed == 0:
            found = conn.execute(
                sql(
                    "SELECT execution_id FROM executions "
                    "WHERE execution_id = ? OR idempotency_key = ?"
                ),
                (row.execution_id, row.idempotency_key),
            ).fetchone()
            raise DuplicateExecution(found[0] if found else row.execution_id)

    def _fold(self, conn: Any, event: ExecutionEvent, written: _Written | None) -> Execution:
        """The execution's state before `event`: this store's own fold of its last write of
        it, or its records read back and replayed."""
        execution_id = event.execution_id
        if written is not None and written.fold is not None:
            return written.fold
        stored = self._read_events(conn, execution_id)
        if not stored:
            raise KeyError(
                f"{event_kind(event)} refused: execution {execution_id} has no "
                "ExecutionRequested in this store"
            )
        return Execution.replay(execution_id, stored)

    # -- reading -------------------------------------------------------------------------

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

    def non_terminal(self) -> list[str]:
        """Executions a crash or a lost reply left open: recovery must settle each one."""
        marks = ", ".join("?" for _ in _TERMINAL)
        query = self._backend.sql(
            f"SELECT execution_id FROM executions WHERE status NOT IN ({marks}) "
            "ORDER BY created_at, execution_id"
        )
        with self._reading("list open executions") as conn:
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
        query = f"SELECT {_CONTROL_COLUMNS} FROM control_events ORDER BY seq"
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

    # -- failing safe --------------------------------------------------------------------

    @contextmanager
    def _reading(self, action: str) -> Iterator[Any]:
        with self._lock, self._guard(action) as conn:
            yield self._settled(conn)

    @contextmanager
    def _guard(self, action: str) -> Iterator[Any]:
        """The one place driver errors become StoreUnavailable, naming backend and cause."""
        label = self._backend.label
        if self._closed:
            raise StoreUnavailable(f"{label}: cannot {action}: the store is closed")
        try:
            if self._conn is None:
                self._conn = self._backend.connect(self.durability)
            yield self._conn
        except self._backend.driver_errors as exc:
            lost = self._abandon()
            note = f"; {lost} appended event(s) not yet committed were lost" if lost else ""
            cause = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            if lost:
                self._lose_group(
                    f"{label} is unavailable: the commit this append waited for failed: "
                    f"{cause}; its events were not recorded"
                )
            raise StoreUnavailable(
                f"{label} is unavailable: cannot {action}: {cause}{note}"
            ) from exc

    def _lose_group(self, message: str) -> None:
        """The open transaction is gone, and with it every append of its group: each one
        still waiting raises `message`."""
        self._lost_groups[self._group] = message
        oldest_kept = self._group - _LOST_GROUPS_KEPT
        for stale in [group for group in self._lost_groups if group <= oldest_kept]:
            del self._lost_groups[stale]
        self._group += 1
        self._group_settled.notify_all()

    def _abandon(self) -> int:
        """Roll back whatever was open and forget what it implied; returns the events lost."""
        lost = self._pending
        self._head, self._pending = None, 0
        self._folds.clear()
        conn, backend = self._conn, self._backend
        if conn is not None:
            if backend.is_broken(conn):
                with suppress(*backend.driver_errors):
                    conn.close()
                self._conn = None  # the next call reconnects
            else:
                # Best effort: the original error is the one worth reporting.
                with suppress(*backend.driver_errors):
                    conn.execute("ROLLBACK")
        return lost


@dataclass(frozen=True, slots=True)
class _Written:
    """What a store wrote last of one execution: its own fold (None when it took the
    caller's), the caller's execution object if one came, and the counts it had then."""

    fold: Execution | None
    caller: Execution | None
    applied: int
    status_changes: int


def _continues(
    written: _Written | None, folded: Execution, events: Sequence[ExecutionEvent]
) -> bool:
    """Whether `folded` is the caller's fold of exactly `events` onto what the store wrote
    last: a new execution's first batch, or the next batch of the very object that came
    with the last write, with no event applied in between. Any other writer of the
    execution through this store came with another object, or none; one through another
    connection emptied the cache."""
    before = folded.applied - len(events)
    if isinstance(events[0], ExecutionRequested):
        return written is None and before == 0
    return written is not None and written.caller is folded and written.applied == before
