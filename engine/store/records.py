"""How an execution's events become stored audit records, and back (trail format 2).

A record is one append: the events an execution writes together at one durability point
(before its order leaves, when it ends; engine.store.sql). Its `payload` holds them:
- one event: the event's own fields, a JSON object, exactly as trail format 1 stored every
  event;
- more: a JSON array with one `{"at", "kind", "payload"}` object per event, in order.
The record's `at` and `kind` columns are its first event's: the time an export window and
the hash go by, and `ExecutionRequested` where the database's one-request guard looks.

Format 1 wrote a record per event, so a format-1 trail is a format-2 trail whose appends
all held one event: both are read, verified and exported by the same code, and a
database written by format 1 is carried on by format 2 as it is. One hash per append
instead of one per event is what saves the work (issue 21): a filled simulated order is
two records instead of seven; each event stays readable on its own (the view
`audit_trail_events`, and every reader here).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from engine.core.events import ExecutionEvent, event_kind, from_payload, to_payload
from engine.store.chain import canonical_json


def record_of(events: Sequence[ExecutionEvent]) -> tuple[float, str, str]:
    """The `(at, kind, payload)` of the record one append of `events` is stored as.

    Raises ValueError, naming the place, for a number that is not finite."""
    return _record([(event_kind(event), float(event.at), to_payload(event)) for event in events])


def _record(items: Sequence[tuple[str, float, Any]]) -> tuple[float, str, str]:
    """The `(at, kind, payload)` of a record holding these `(kind, at, fields)`, in order."""
    kind, at, fields = items[0]
    if len(items) > 1:
        fields = [{"at": at_, "kind": kind_, "payload": fields_} for kind_, at_, fields_ in items]
    return at, kind, canonical_json(fields)


def items_of(kind: str, at: float, payload: str) -> list[tuple[str, float, dict[str, Any]]]:
    """The `(kind, at, fields)` of each event a stored record holds, in order.

    Raises ValueError when the record is not one this module writes: its payload is
    neither an object nor an array of two events or more, or its columns are not its
    first event's."""
    value = json.loads(payload)
    if isinstance(value, dict):
        return [(kind, at, value)]
    if not (isinstance(value, list) and len(value) > 1):
        raise ValueError(
            f"a {kind} record's payload is neither one event nor the events of one append"
        )
    try:
        items = [(item["kind"], item["at"], item["payload"]) for item in value]
    except (KeyError, TypeError):
        raise ValueError(f"a {kind} record holds an event without kind, at and payload") from None
    first_kind, first_at, _ = items[0]
    if (first_kind, first_at) != (kind, at):
        raise ValueError(
            f"a record's kind and time ({kind} at {at!r}) are not its first event's "
            f"({first_kind} at {first_at!r})"
        )
    return items


def decoded(
    execution_id: str, rows: Iterable[tuple[str, float, str]]
) -> tuple[ExecutionEvent, ...]:
    """The events of an execution's stored (kind, at, payload) records, in order."""
    return tuple(
        from_payload(kind, execution_id, at, fields)
        for row in rows
        for kind, at, fields in items_of(*row)
    )


def export_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """An exported record (its payload a JSON text) as one row per event: the events of one
    record share its seq, versions and hashes. The rows of one seq are all a re-verifier
    needs: `stored_record` over them gives back the record's hashed fields."""
    items = items_of(record["kind"], record["at"], record["payload"])
    return [record | {"kind": kind, "at": at, "payload": fields} for kind, at, fields in items]


def stored_record(rows: Sequence[dict[str, Any]]) -> tuple[float, str, str]:
    """The `(at, kind, payload)` hashed for the record whose exported rows (one seq, in
    order) these are: the inverse of `export_rows`, for checking a chain from a file."""
    return _record([(row["kind"], float(row["at"]), row["payload"]) for row in rows])
