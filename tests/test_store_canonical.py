"""The canonical JSON that audit records are stored and hashed as: one byte format for good.

Every record ever written was hashed over the text of the standard library's
`JSONEncoder(sort_keys=True, separators=(",", ":"))`. The store now writes it through
msgspec, so these tests pin the bytes: the same payload gives the stdlib's text or is
refused, and a trail written before the change still verifies, with the same chain head.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
import store_backends as sb
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.events import (
    CostEstimated,
    ExecutionRequested,
    OrderAcknowledged,
    OrderClosed,
    OrderFilled,
    SlippageMeasured,
    SubmissionAttempted,
    ValidationCompleted,
    ValidationFailed,
)
from engine.core.ports import BrokerOrderState
from engine.core.vocabulary import ExecutionRejectionReason, SlippageQuality
from engine.store import ExecutionDatabase, open_database, verify_audit_store
from engine.store.base import ControlEvent, ControlKind
from engine.store.chain import canonical_json
from sim.world import DEFAULT_START

# Written by `write_reference_trail` into a SQLite store with the stdlib encoder (commit
# 5a76d8d), then dumped as SQL text; its chain head as `arbitrex audit verify` printed it.
REFERENCE_TRAIL = Path(__file__).parent / "fixtures" / "trail_stdlib_json.sql"
REFERENCE_HEAD = "f0e5347b76f19a07c5ab05da34a64ab11dafc399233db4c18b038c8cfd310800"
STDLIB = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
FINITE_ONLY = json.JSONEncoder(allow_nan=False)


def write_reference_trail(db: ExecutionDatabase) -> None:
    """Records whose canonical text msgspec alone would write differently: non-ASCII and
    DEL in ids and free text, floats below 1e-4 and from 1e16, a negative zero."""
    t = DEFAULT_START
    filled = sb.requested("ordre-été-😀", at=t)
    eid = filled.execution_id
    db.append(filled)
    db.append_batch(
        (
            ValidationCompleted(eid, t + 1, ("all",), 1.0, 1.08497, 1.08503, None),
            CostEstimated(
                eid,
                t + 1.5,
                3.0000000000196536e-05,
                1e-05,
                1e16,
                "modèle-1",
                {"spread": 1.5e-07, "note": "délai\x7f\t", "size": 1.2345678901234568e17},
            ),
            SubmissionAttempted(eid, t + 2, 1),
        )
    )
    db.append_batch(
        (
            OrderAcknowledged(eid, t + 3, "42"),
            OrderFilled(eid, t + 4, "f1", 100_000, 1.08503, t + 4.0, "p1"),
            OrderClosed(eid, t + 4.5, BrokerOrderState.DONE),
            SlippageMeasured(eid, t + 5, 1.08503, 1.08503, -0.0, SlippageQuality.EXCELLENT),
        )
    )
    db.append_control(
        ControlEvent(ControlKind.TRADING_HALTED, t + 6, {"reason": "arrêt ☕ 😀"}, "0.1.0", "c")
    )
    refused = sb.requested("plain-1", at=t + 7)
    db.append(refused)
    db.append(
        ValidationFailed(
            refused.execution_id,
            t + 7.5,
            "spread_acceptable",
            ExecutionRejectionReason.SPREAD_TOO_WIDE,
            "spread 0.00001 > 5e-06 — refusé",
        )
    )


def reference_store(tmp_path: Path) -> ExecutionDatabase:
    """The committed reference trail, loaded into a SQLite file and opened by today's store
    (which migrates it to today's schema)."""
    path = tmp_path / "reference.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(REFERENCE_TRAIL.read_text(encoding="utf-8"))
    conn.close()
    return open_database(f"sqlite:///{path}")


def test_a_trail_written_by_the_stdlib_encoder_still_verifies_with_the_same_head(tmp_path):
    db = reference_store(tmp_path)

    result = verify_audit_store(db)

    assert result.ok, result
    assert (result.chain.records_verified, result.chain.head_hash) == (11, REFERENCE_HEAD)


def test_its_records_written_again_today_give_the_same_bytes_and_the_same_head(tmp_path):
    old = reference_store(tmp_path)
    new = open_database("sqlite:///:memory:")
    for record in old.chain_records(0, 100):
        if record.execution_id is None:
            (control,) = [c for c in old.control_events() if c.at == record.at]
            new.append_control(control)
        else:
            (event,) = [e for e in old.events(record.execution_id) if e.at == record.at]
            new.append(event)

    assert [r.payload for r in new.chain_records(0, 100)] == [
        r.payload for r in old.chain_records(0, 100)
    ]
    assert verify_audit_store(new).chain.head_hash == REFERENCE_HEAD


def test_non_ascii_ids_and_free_text_are_stored_escaped_and_read_back_as_written():
    db = open_database("sqlite:///:memory:")
    write_reference_trail(db)
    requested = next(r for r in db.chain_records(0, 100) if r.kind == "ExecutionRequested")
    (first, *_) = db.events(requested.execution_id)

    assert requested.payload.isascii()
    assert r"ordre-\u00e9t\u00e9-\ud83d\ude00" in requested.payload
    assert isinstance(first, ExecutionRequested)
    assert first.request.idempotency_key == "decision:ordre-été-😀"
    assert db.control_events()[0].payload == {"reason": "arrêt ☕ 😀"}
    assert verify_audit_store(db).ok


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_number_that_is_not_finite_is_refused_with_its_place_named(number):
    with pytest.raises(ValueError) as refused:
        canonical_json({"fill": {"price": 1.1, "levels": [1.0, number]}})

    assert str(refused.value) == (
        f"payload.fill.levels[1] is {number!r}: an audit record holds finite numbers only"
    )


@pytest.mark.parametrize("durability", ["sync", "batched"])
def test_a_record_with_a_number_that_is_not_finite_is_refused_and_nothing_is_written(durability):
    db = open_database("sqlite:///:memory:", durability=durability)
    requested = sb.requested("nan-fill")
    eid = requested.execution_id
    db.append(requested)
    db.append_batch(
        (
            ValidationCompleted(eid, DEFAULT_START + 1, ("all",), 1.0, 1.1, 1.1002, None),
            SubmissionAttempted(eid, DEFAULT_START + 2, 1),
            OrderAcknowledged(eid, DEFAULT_START + 3, "1"),
        )
    )

    with pytest.raises(ValueError, match="price is nan: an audit record holds finite"):
        db.append(OrderFilled(eid, DEFAULT_START + 4, "f", 100_000, math.nan, DEFAULT_START + 4))

    db.flush()
    assert type(db.events(eid)[-1]) is OrderAcknowledged
    assert verify_audit_store(db).ok  # the executions table did not move on either


# Any character, lone surrogates and DEL included: the stdlib escaped them all.
TEXT = st.text(st.characters(exclude_categories=()))
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
# Floats where the notations of msgspec and repr part (below 1e-4, from 1e16), often.
EDGE_FLOATS = st.sampled_from([1e-4, 9.99e-5, 1e-5, 1.5e-7, 5e-324, 1e15, 9.999e15, 1e16, 1e300])


@settings(max_examples=500)
@given(JSON_VALUES | st.dictionaries(TEXT, EDGE_FLOATS | JSON_VALUES, max_size=6))
def test_the_canonical_text_is_the_stdlib_text_byte_for_byte_or_the_payload_is_refused(value):
    try:
        FINITE_ONLY.encode(value)
    except ValueError:  # NaN or infinity: the stdlib wrote them, but not as JSON
        with pytest.raises(ValueError, match="an audit record holds finite numbers only"):
            canonical_json(value)
    else:
        assert canonical_json(value) == STDLIB.encode(value)
