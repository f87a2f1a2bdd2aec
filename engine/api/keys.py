"""API keys: bearer tokens with a role, kept hashed in a small SQLite file of their own.

A key is printed once, when it is created; the file keeps its id, a per-key salt and the
HMAC-SHA256 of its secret under that salt — never the key. The secret is 256 random bits,
so a fast keyed hash suffices: slow password hashes defend guessable secrets, not random
ones, and a per-request check must stay cheap.

Keys live apart from the audit store on purpose: they are mutable credentials (revoked at
will), while the audit store is append-only evidence that is exported to auditors.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
import sqlite3
import threading
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict

TOKEN_PREFIX = "axk_"
# Seconds within which a key revoked by another process is refused (at once when revoked
# through this store).
CHANGES_CHECKED_EVERY = 0.1
_ID_HEX = 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    salt BLOB NOT NULL,
    digest BLOB NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys (name)
    WHERE revoked_at IS NULL;
"""


class Role(StrEnum):
    TRADER = "trader"  # may execute
    AUDITOR = "auditor"  # may read and export
    ADMIN = "admin"  # may halt and resume, and read


class KeyStoreError(ValueError):
    """A key store request that cannot be carried out (unknown name, name taken, bad file)."""


class ApiKey(BaseModel):
    """What is known of a key once created: everything but the key itself."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None


class KeyStore:
    """The keys file; safe to share between the server's event loop and worker threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            _create_private(self.path)
            self._conn = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            # WAL: the server's per-request reads never wait behind `keys create` or `revoke`.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise KeyStoreError(f"cannot open the key store {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        # Active keys already looked up: key id -> (salt, digest, record), emptied by this
        # store's own revocations at once, and by another process's (SQLite's data_version
        # changes) when next checked: at most every CHANGES_CHECKED_EVERY seconds.
        self._active: dict[str, tuple[bytes, bytes, ApiKey]] = {}
        self._version: int | None = None
        self._checked_at = -math.inf

    def create(self, role: Role, name: str | None = None) -> tuple[ApiKey, str]:
        """A new key: its record, and the bearer token to hand over (shown this once)."""
        key_id = secrets.token_hex(_ID_HEX // 2)
        name = name if name is not None else f"{role.value}-{key_id[:6]}"
        if not _NAME.match(name):
            raise KeyStoreError(
                f"key name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        created = datetime.now(UTC)
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT INTO api_keys (key_id, name, role, salt, digest, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (key_id, name, role.value, salt, _digest(salt, secret), created.isoformat()),
                )
        except sqlite3.IntegrityError as exc:
            raise KeyStoreError(f"an active key is already named {name!r}") from exc
        record = ApiKey(key_id=key_id, name=name, role=role, created_at=created)
        return record, f"{TOKEN_PREFIX}{key_id}_{secret}"

    def records(self) -> list[ApiKey]:
        """Every key ever created, revoked ones included, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key_id, name, role, created_at, revoked_at FROM api_keys "
                "ORDER BY created_at, key_id"
            ).fetchall()
        return [_record(*row) for row in rows]

    def revoke(self, name: str) -> ApiKey:
        """Revoke the active key of that name: this store refuses it from the next request
        on, a server's store in another process within CHANGES_CHECKED_EVERY seconds."""
        revoked = datetime.now(UTC)
        with self._lock:
            row = self._conn.execute(
                "SELECT key_id, name, role, created_at FROM api_keys "
                "WHERE name = ? AND revoked_at IS NULL",
                (name,),
            ).fetchone()
            if row is None:
                raise KeyStoreError(f"no active key named {name!r}")
            self._conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ?",
                (revoked.isoformat(), row[0]),
            )
            self._active.pop(row[0], None)
        return _record(*row, revoked.isoformat())

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key this bearer token belongs to, or None."""
        parsed = _parse(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        now = time.monotonic()
        with self._lock:
            # Any call into SQLite lets go of the GIL, and on the server's event loop under
            # load that hand-off costs more than the whole check: the file is asked whether
            # another process (`arbitrex keys revoke`) committed at most so often.
            if now - self._checked_at >= CHANGES_CHECKED_EVERY:
                version = self._conn.execute("PRAGMA data_version").fetchone()[0]
                if version != self._version:
                    self._active.clear()
                    self._version = version
                self._checked_at = now
            known = self._active.get(key_id)
            if known is None:
                row = self._conn.execute(
                    "SELECT name, role, salt, digest, created_at FROM api_keys "
                    "WHERE key_id = ? AND revoked_at IS NULL",
                    (key_id,),
                ).fetchone()
                if row is None:
                    return None  # unknown ids are not kept: a flood of them costs no memory
                name, role, salt, digest, created_at = row
                known = (salt, digest, _record(key_id, name, role, created_at, None))
                self._active[key_id] = known
        salt, digest, record = known
        if not hmac.compare_digest(_digest(salt, secret), digest):
            return None
        return record

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _create_private(path: Path) -> None:
    """Create the file readable by its owner only, before SQLite opens it."""
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


def _parse(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token: axk_<16 hex>_<secret>."""
    head = len(TOKEN_PREFIX) + _ID_HEX
    if not token.startswith(TOKEN_PREFIX) or len(token) <= head + 1 or token[head] != "_":
        return None
    key_id = token[len(TOKEN_PREFIX) : head]
    if any(char not in "0123456789abcdef" for char in key_id):
        return None
    return key_id, token[head + 1 :]


def _record(key_id: str, name: str, role: str, created_at: str, revoked_at: str | None) -> ApiKey:
    return ApiKey(
        key_id=key_id,
        name=name,
        role=Role(role),
        created_at=datetime.fromisoformat(created_at),
        revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
    )
