"""The audit trail's tamper evidence: one hash chain over every record, and its verifier.

Each record's hash covers the previous record's hash and the record's own canonical fields,
so changing, removing or re-ordering any stored record breaks the chain from that record on.
The chain proves the records *behind* its head are untouched; publishing the head hash
elsewhere (a report, a ticket) is what proves nothing was cut off the end.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import msgspec
from pydantic import BaseModel, ConfigDict

from engine.store.base import ExecutionDatabase

GENESIS_HASH = "0" * 64
_PAGE = 5_000


# The byte format every record is hashed over is the standard library's
# JSONEncoder(sort_keys=True, separators=(",", ":")): ASCII only, floats as repr writes them.
# msgspec writes the same text in a third of the time or less, except in ways a trail must
# never see: UTF-8 (and DEL) where the stdlib escaped \uXXXX, its own notation for floats below
# 1e-4 or from 1e16, and null for NaN and infinity. A payload that could hold one of these
# is written by the stdlib instead, which keeps every byte of the format, and a number that
# is not finite is refused: neither NaN nor null is evidence of a price.
_FAST = msgspec.json.Encoder(order="sorted").encode
_PACK = msgspec.msgpack.Encoder().encode
_EXACT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)
_DEL = 0x7F  # ASCII, yet escaped by the stdlib
# Finds, in msgpack (where every float is 0xcb and its IEEE 754 bytes, big-endian), each
# float but zero whose binary exponent is outside [-13, 52], i.e. outside [2**-13, 2**53),
# a span inside [1e-4, 1e16): so every float msgspec may write otherwise than repr, NaN and
# infinity among them. A 0xcb byte that is not a float's may match too, which only costs
# the slower encoder.
_FLOAT_BEYOND_REPR = re.compile(
    rb"\xcb(?![\x00\x80]\x00{7})"
    rb"(?:[\x00-\x3e\x44-\xbe\xc4-\xff]|[\x3f\xbf][\x00-\x1f]|[\x43\xc3][\x40-\xff])"
)


def canonical_json(value: Any) -> str:
    """The one text a payload is stored and hashed as: equal content, equal bytes.

    `value` holds JSON's types only (dict with str keys, list, tuple, str, int, float, bool,
    None): others, which the stdlib refused, msgspec would write its own way. A float that
    is not finite raises ValueError naming its place."""
    try:
        text = _FAST(value)
        fast = (
            text.isascii()
            and text.find(_DEL) == -1
            and _FLOAT_BEYOND_REPR.search(_PACK(value)) is None
        )
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        fast = False  # non-str keys, ints beyond 64 bits: the stdlib decides
    if fast:
        return text.decode()
    place = _not_finite(value, "payload")
    if place is not None:
        raise ValueError(f"{place}: an audit record holds finite numbers only")
    return _EXACT.encode(value)


def _not_finite(value: Any, place: str) -> str | None:
    """Where in `value` the first float that is not finite is, and what it is; else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{place} is {value!r}"
    if isinstance(value, dict):
        found = (_not_finite(item, f"{place}.{key}") for key, item in value.items())
    elif isinstance(value, list | tuple):
        found = (_not_finite(item, f"{place}[{i}]") for i, item in enumerate(value))
    else:
        return None
    return next((where for where in found if where is not None), None)


def grouped(payload: str) -> bool:
    """Whether a stored record holds the events of one append of several (trail format 2,
    engine.store.records), not one event."""
    return payload.startswith("[")


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
    grouped_records: int = 0  # of those, records holding the events of one append (format 2)
    first_bad_seq: int | None = None
    first_bad_execution_id: str | None = None  # None for a control event or a missing record
    first_bad_kind: str | None = None  # as stored; None when the bad record is missing
    problem: str | None = None
    head_hash: str  # of the last record verified: equal runs give equal heads


def verify_audit_chain(db: ExecutionDatabase) -> VerificationResult:
    """Walk the whole chain in seq order; stop at, and name, the first record that fails."""
    if not isinstance(db, ChainSource):
        raise TypeError(f"{type(db).__name__} keeps no hash chain: nothing to verify")
    verified, several, head, expected_seq = 0, 0, GENESIS_HASH, 1
    while records := db.chain_records(expected_seq - 1, _PAGE):
        for record in records:
            problem = _problem(record, expected_seq, head)
            if problem is not None:
                missing = record.seq != expected_seq
                return VerificationResult(
                    ok=False,
                    records_verified=verified,
                    grouped_records=several,
                    first_bad_seq=expected_seq,
                    first_bad_execution_id=None if missing else record.execution_id,
                    first_bad_kind=None if missing else record.kind,
                    problem=problem,
                    head_hash=head,
                )
            verified, head, expected_seq = verified + 1, record.hash, expected_seq + 1
            several += grouped(record.payload)
    return VerificationResult(
        ok=True, records_verified=verified, grouped_records=several, head_hash=head
    )


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
