"""When the journal writes an execution's records, and which writes must reach the disk.

Everything written before an order may be out, and whatever precedes a call that acts at
the broker, is durable before the engine goes on; other writes after the order is out
record what the broker already did and may be committed without waiting for the disk.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.effects import (
    CancelOrder,
    FetchQuote,
    FindOrder,
    PlaceOrder,
    QueryOrder,
    Record,
    SetProtection,
    Sleep,
)
from engine.core.events import SubmissionAttempted
from engine.journal import Journal

ORDER: Any = object()  # the journal never looks inside a call's arguments


def writes(
    *effects: Any, order_out: bool = False, end: bool = True
) -> list[tuple[int, bool, bool]]:
    """(records, order_out, durable) of each write the journal makes for `effects`."""
    made: list[tuple[int, bool, bool]] = []
    journal = Journal(
        lambda events, out, durable, _folded: made.append((len(events), out, durable)), order_out
    )
    for effect in effects:
        journal.take(effect)
    if end:
        journal.flush()
    return made


def record(n: int = 1) -> Record:
    return Record(SubmissionAttempted("ex-1", float(n), attempt=n))


def test_records_before_the_order_are_written_durably_as_one_group_before_it_leaves():
    assert writes(record(1), record(2), FetchQuote("EURUSD"), PlaceOrder(ORDER), end=False) == [
        (2, False, True)
    ]


def test_what_follows_the_order_is_written_lazily_at_a_poll_a_sleep_and_the_end():
    made = writes(
        PlaceOrder(ORDER),
        record(1),
        QueryOrder("1"),
        record(2),
        Sleep(0.5),
        record(3),
        FindOrder("c-1"),
        record(4),
    )

    assert made == [(1, True, False), (1, True, False), (1, True, False), (1, True, False)]


@pytest.mark.parametrize("acting", [CancelOrder("1"), SetProtection("p-1", 1.09, None)])
def test_what_precedes_another_call_that_acts_at_the_broker_is_durable_first(acting):
    assert writes(PlaceOrder(ORDER), record(1), acting, record(2)) == [
        (1, True, True),
        (1, True, False),
    ]


def test_an_execution_that_never_sent_an_order_ends_durably():
    assert writes(record(1), FetchQuote("EURUSD"), record(2)) == [(2, False, True)]


def test_recovery_which_starts_with_the_order_possibly_out_writes_lazily_until_it_acts():
    assert writes(record(1), QueryOrder("1"), record(2), CancelOrder("1"), order_out=True) == [
        (1, True, False),
        (1, True, True),
    ]


def test_local_reads_are_no_durability_points():
    assert writes(record(1), FetchQuote("EURUSD"), record(2), end=False) == []
