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

This module writes; what the store answers is in engine.store.sql_reads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal

from engine.core.events import ExecutionEvent, ExecutionRequested, event_kind
from engine.core.lifecycle import Execution
from engine.store.backend import DEFAULT_BATCH_SIZE, Backend, Durability, check_durability
from engine.store.base import (
    ControlEvent,
    DuplicateExecution,
    StoreUnavailable,
    one_execution,
)
from engine.store.chain import GENESIS_HASH, canonical_json, record_hash
from engine.store.migrations import apply_migrations
from engine.store.projection import (
    CLAIM,
    ProjectionRow,
    apply_events,
    changed_since,
    row_of,
)
from engine.store.quotes import (
    DEFAULT_QUOTE_RETENTION_SECONDS,
    QuoteSample,
    check_retention,
    write_quotes,
)
from engine.store.records import record_of
from engine.store.sql_reads import CONTROL_COLUMNS, RECORD_COLUMNS, SQLReads

# The chain's head: the newest record of either table, in one statement.
_HEAD = (
    "SELECT seq, hash FROM (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) a "
    "UNION ALL SELECT seq, hash FROM (SELECT seq, hash FROM control_events "
    "ORDER BY seq DESC LIMIT 1) c ORDER BY seq DESC LIMIT 1"
)
# Why a failed group commit failed, kept for its waiting appends to read, for this many of
# the latest groups: far more than there can be appends waiting at once.
_LOST_GROUPS_KEPT = 1024
# How long an append waits for the rest of its group to commit it before it commits itself.
_GROUP_WAIT_SECONDS = 0.02


class SQLExecutionDatabase(SQLReads):
    """The audit store on one connection to a SQLite or PostgreSQL database (thread-safe)."""

    def __init__(
        self,
        backend: Backend,
        *,
        durability: Durability = "sync",
        batch_size: int = DEFAULT_BATCH_SIZE,
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
        lazy = self._lazy(durable)
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
                self._begin(conn, self._lazy(durable=True))
            assert self._head is not None
            prev_seq, prev_hash = self._head
            seq, at, kind = prev_seq + 1, float(event.at), event.kind.value
            payload = canonical_json(event.payload)
            versions = (event.engine_version, event.config_version)
            digest = record_hash(prev_hash, seq, None, at, kind, payload, *versions)
            conn.execute(
                self._backend.sql(
                    f"INSERT INTO control_events ({CONTROL_COLUMNS}) "
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

    def _lazy(self, durable: bool) -> bool | None:
        """The safety level of a transaction for an append that is `durable` or not: a
        batched store's connection keeps its own (it never waits for the disk)."""
        return None if self.durability == "batched" else not durable

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
            changed_at = changed_since(folded, written.status_changes if written else 0)
            owed_before = written is not None and written.owes_protection
        else:
            if isinstance(first, ExecutionRequested):
                execution = Execution(execution_id)
            else:
                execution = self._fold(conn, first, written)
            owed_before = execution.owes_protection
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
        owes = execution.owes_protection  # asked once: the row, the cache and the next append
        if isinstance(first, ExecutionRequested):
            assert changed_at is not None  # a request always moves the status
            self._claim(conn, row_of(execution, changed_at))
        elif changed_at is not None:
            # The row follows every status change, even one a batch undoes (SUBMITTING,
            # UNRESOLVED, SUBMITTING): its updated_at is then the fold's, as verify expects.
            row = row_of(execution, changed_at)
            conn.execute(
                sql(
                    "UPDATE executions SET status = ?, updated_at = ?, owes_protection = ? "
                    "WHERE execution_id = ?"
                ),
                (row.status, row.updated_at, row.owes_protection, execution_id),
            )
        elif owes != owed_before:  # the stops' outcome came in a later append
            conn.execute(
                sql("UPDATE executions SET owes_protection = ? WHERE execution_id = ?"),
                (int(owes), execution_id),
            )
        conn.execute(
            sql(f"INSERT INTO audit_events ({RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            (seq, execution_id, at, kind, payload, *versions, prev_hash, digest),
        )
        self._head = (seq, digest)
        self._folds[execution_id] = _Written(
            own, folded, execution.applied, execution.status_changes, owes
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
    caller's), the caller's execution object if one came, and the counts and the row's
    owes_protection it had then."""

    fold: Execution | None
    caller: Execution | None
    applied: int
    status_changes: int
    owes_protection: bool


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
