"""The port a SQL database implements to carry the audit store, and what its backends share.

The SQL store (`engine.store.sql`), the schema migrations and the SQLite and PostgreSQL
backends all stand on this module; it imports none of them, so none of them needs another
just to reach a type, a default or a helper.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Protocol

Durability = Literal["sync", "batched"]
DEFAULT_TIMEOUT_SECONDS = 10.0


class Backend(Protocol):
    """What differs between the databases; everything else is shared SQL."""

    dialect: str
    label: str  # names the backend in every error, e.g. "SQLite database runs/a.db"
    driver_errors: tuple[type[Exception], ...]

    def connect(self, durability: Durability = "sync") -> Any:
        """A new connection for a store of this durability."""

    def begin_exclusive(self, conn: Any, lock: str, lazy: bool | None = None) -> None:
        """Begin a transaction holding the named exclusive lock. `lazy` sets whether its
        commit may return before the disk has it (True) or not (False); None leaves the
        connection's own setting (its durability's)."""

    def create_namespace(self, conn: Any) -> None: ...

    def table_exists(self, conn: Any, table: str) -> bool: ...

    def is_broken(self, conn: Any) -> bool: ...

    def sql(self, query: str) -> str: ...

    def hold_lease(self, instance_id: str) -> Any: ...

    def lease_alive(self, instance_id: str) -> bool | None: ...


def parse_timeout(value: str, url: str) -> float:
    """A URL's `?timeout=`: seconds to wait for the write lock."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(
            f"URL {url!r}: timeout must be a positive number of seconds, not {value!r}"
        )
    return seconds


# Events per commit of a batched (simulation) store. Large, because a long run's indexes on
# execution ids (hashes: random places in each B-tree) put nearly every execution's rows on
# pages of their own: a commit writes each page it dirtied once, however many of its
# executions share it, so fewer, larger commits write far less (benchmarks/README.md).
DEFAULT_BATCH_SIZE = 10_000


def check_durability(durability: str, batch_size: int) -> None:
    if durability not in ("sync", "batched"):
        raise ValueError(f"durability must be 'sync' or 'batched', not {durability!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
