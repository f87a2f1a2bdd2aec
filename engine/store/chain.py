"""The audit trail's tamper evidence: one hash chain over every record, and its verifier.

Each record's hash covers the previous record's hash and the record's own canonical fields,
so changing, removing or re-ordering any stored record breaks the chain from that record on.
The chain proves the records *behind* its head are untouched; publishing the head hash
elsewhere (a report, a ticket) is what proves nothing was cut off the end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from engine.store.base import ExecutionDatabase

GENESIS_HASH = "0" * 64
_PAGE = 5_000


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical_json(value: Any) -> str:
    """The one text a payload is stored and hashed as: equal content, equal bytes."""
    return _CANONICAL.encode(value)


def record_hash(
    prev_hash: str,
    seq: int,
    execution_id: str | None,
    at: float,
    kind: str,
    payload: str,
    engine_version: str,
    config_version: str,
) -> str:
    # Fields joined by the ASCII unit separator: canonical JSON escapes every control
    # character and the other fields are our own ids, kinds and versions, so no field can
    # hold one and the boundaries stay unambiguous — without encoding the payload twice.
    fields = (prev_hash, str(seq), execution_id or "", repr(at), kind, payload)
    material = "\x1f".join((*fields, engine_version, config_version))
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainRecord:
    """One stored audit record exactly as the database returned it (a control event, such
    as a halt, has no execution_id)."""

    seq: int
    execution_id: str | None
    at: float
    kind: str
    payload: str
    engine_version: str
    config_version: str
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return record_hash(
            self.prev_hash,
            self.seq,
            self.execution_id,
            self.at,
            self.kind,
            self.payload,
            self.engine_version,
            self.config_version,
        )


@runtime_checkable
class ChainSource(Protocol):
    """A store that keeps a hash chain: it hands out its records in pages, by seq."""

    def chain_records(self, after_seq: int, limit: int) -> Sequence[ChainRecord]: ...


class VerificationResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool
    records_verified: int  # records that passed before the first bad one (all, when ok)
    first_bad_seq: int | None = None
    first_bad_execution_id: str | None = None  # None for a control event or a missing record
    first_bad_kind: str | None = None  # as stored; None when the bad record is missing
    problem: str | None = None
    head_hash: str  # of the last record verified: equal runs give equal heads


def verify_audit_chain(db: ExecutionDatabase) -> VerificationResult:
    """Walk the whole chain in seq order; stop at, and name, the first record that fails."""
    if not isinstance(db, ChainSource):
        raise TypeError(f"{type(db).__name__} keeps no hash chain: nothing to verify")
    verified, head, expected_seq = 0, GENESIS_HASH, 1
    while records := db.chain_records(expected_seq - 1, _PAGE):
        for record in records:
            problem = _problem(record, expected_seq, head)
            if problem is not None:
                missing = record.seq != expected_seq
                return VerificationResult(
                    ok=False,
                    records_verified=verified,
                    first_bad_seq=expected_seq,
                    first_bad_execution_id=None if missing else record.execution_id,
                    first_bad_kind=None if missing else record.kind,
                    problem=problem,
                    head_hash=head,
                )
            verified, head, expected_seq = verified + 1, record.hash, expected_seq + 1
    return VerificationResult(ok=True, records_verified=verified, head_hash=head)


def _problem(record: ChainRecord, expected_seq: int, head: str) -> str | None:
    if record.seq != expected_seq:
        return f"record {expected_seq} is missing (the next stored record is {record.seq})"
    if record.prev_hash != head:
        return (
            f"broken link: record {record.seq} does not point at the hash of record "
            f"{record.seq - 1}; that record or this link was rewritten"
        )
    if record.expected_hash() != record.hash:
        return f"content changed: record {record.seq}'s fields no longer match its hash"
    return None
