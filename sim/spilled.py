"""Records that no longer change, the newest in memory and older ones in a scratch file.

A simulated terminal's history grows with every order; a million orders of it would not fit
a study's memory. Each record has an integer key (a ticket) and a group (the order it
belongs to); the newest stay in memory, older ones are pickled in batches into a private
SQLite file that SQLite deletes once the records are gone, and every question (by key, by
group, all in key order) reads both parts and gets what it would from a dict.
"""

from __future__ import annotations

import heapq
import pickle
import sqlite3
from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")

_SCHEMA = """
CREATE TABLE record (key INTEGER PRIMARY KEY, grp INTEGER, value BLOB NOT NULL);
CREATE INDEX record_by_group ON record (grp, key);
"""


class SpilledRecords(Generic[V]):
    def __init__(self, keep: int = 4096) -> None:
        self._keep = keep
        self._memory: dict[int, tuple[int | None, V]] = {}  # key -> (group, record), as added
        self._memory_groups: dict[int, list[int]] = {}
        self._db: sqlite3.Connection | None = None  # opened at the first spill
        self._spilled = 0

    def add(self, key: int, record: V, group: int | None = None) -> None:
        """A new record: its key is not in the records yet, and it will not change. Without a
        group it is found by key only."""
        self._memory[key] = (group, record)
        if group is not None:
            self._memory_groups.setdefault(group, []).append(key)
        if len(self._memory) >= 2 * self._keep:
            self._spill(self._keep)

    def get(self, key: int) -> V | None:
        held = self._memory.get(key)
        if held is not None:
            return held[1]
        if self._db is None:
            return None
        row = self._db.execute("SELECT value FROM record WHERE key = ?", (key,)).fetchone()
        return pickle.loads(row[0]) if row else None

    def of_group(self, group: int) -> list[V]:
        """A group's records, in key order."""
        found = [(key, self._memory[key][1]) for key in self._memory_groups.get(group, ())]
        if self._db is not None:
            rows = self._db.execute("SELECT key, value FROM record WHERE grp = ?", (group,))
            found += [(key, pickle.loads(value)) for key, value in rows]
        return [record for _, record in sorted(found, key=lambda pair: pair[0])]

    def items(self, chunk: int = 4096, first_key: int = 0) -> Iterator[tuple[int, V]]:
        """Every (key, record) from `first_key` on, in key order, the spilled read a chunk at
        a time."""

        def spilled() -> Iterator[tuple[int, V]]:
            after = first_key - 1
            while self._db is not None:
                rows = self._db.execute(
                    "SELECT key, value FROM record WHERE key > ? ORDER BY key LIMIT ?",
                    (after, chunk),
                ).fetchall()
                if not rows:
                    return
                yield from ((key, pickle.loads(value)) for key, value in rows)
                after = rows[-1][0]

        held = sorted(
            ((key, record) for key, (_, record) in self._memory.items() if key >= first_key),
            key=lambda p: p[0],
        )
        return heapq.merge(spilled(), held, key=lambda pair: pair[0])

    def clear(self) -> None:
        self._memory, self._memory_groups, self._spilled = {}, {}, 0
        if self._db is not None:
            self._db.close()
            self._db = None

    def __len__(self) -> int:
        return len(self._memory) + self._spilled

    def _spill(self, count: int) -> None:
        leaving = [(key, *self._memory.pop(key)) for key in list(self._memory)[:count]]
        for key, group, _ in leaving:
            if group is None:
                continue
            keys = self._memory_groups[group]
            keys.remove(key)
            if not keys:
                del self._memory_groups[group]
        db = self._db if self._db is not None else self._open()
        with db:
            db.executemany(
                "INSERT INTO record VALUES (?, ?, ?)",
                ((key, group, pickle.dumps(record)) for key, group, record in leaving),
            )
        self._spilled += len(leaving)

    def _open(self) -> sqlite3.Connection:
        self._db = scratch_database(_SCHEMA)
        return self._db


def scratch_database(schema: str) -> sqlite3.Connection:
    """A private SQLite file for data spilled out of memory, with `schema` created in it.

    "": a temporary file of this connection's own, paged through a small cache and deleted
    when the connection closes; a scratch copy needs no journal and no fsync. It may be used
    from several threads, one at a time (the venue is served under one lock)."""
    db = sqlite3.connect("", check_same_thread=False)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.executescript(schema)
    return db
