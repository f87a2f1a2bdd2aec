"""The invariants read a run as a stream of cases: the store's executions joined with the
broker's orders on client order id, one at a time, whatever the run's size."""

from __future__ import annotations

import pytest

from engine.core.ids import client_order_id_for
from engine.core.lifecycle import Execution
from engine.core.ports import BrokerFill, BrokerOrderState
from engine.schemas import Direction
from engine.store import InMemoryExecutionDatabase
from scenarios.invariants import (
    Evidence,
    InvariantChecks,
    cases,
    check_invariants,
    orders_by_client,
)
from sim.ledger import LedgerOrder


def execution(execution_id: str, broker_order_id: str | None = None) -> Execution:
    return Execution(execution_id, broker_order_id=broker_order_id)


def order(client_order_id: str, ticket: int, filled: int = 0) -> LedgerOrder:
    fills = [BrokerFill(f"d{ticket}", filled, 1.1, 1.0)] if filled else []
    return LedgerOrder(
        ticket, client_order_id, "EURUSD", Direction.BUY, 10_000, 1.0, BrokerOrderState.DONE, fills
    )


def evidence() -> Evidence:
    return Evidence(InMemoryExecutionDatabase(), lambda t: True, [])


def test_cases_pair_each_execution_with_its_orders_and_keep_the_unpaired_on_either_side():
    executions = [execution("ex01"), execution("ex03", "7"), execution("ex05")]
    ledger = orders_by_client(
        [order("AX05", 9), order("AX02", 4), order("AX03", 7), order("AX05", 8)]
    )

    paired = [
        (c.client_order_id, c.execution, [o.ticket for o in c.orders])
        for c in cases(executions, ledger)
    ]

    assert paired == [
        ("AX01", executions[0], []),
        ("AX02", None, [4]),
        ("AX03", executions[1], [7]),
        ("AX05", executions[2], [8, 9]),
    ]
    assert [c.client_order_id for c in cases(executions, [])] == ["AX01", "AX03", "AX05"]
    assert [c.client_order_id for c in cases([], ledger)] == ["AX02", "AX03", "AX05"]


def test_an_execution_id_orders_exactly_as_its_client_order_id():
    ids = ["ex" + f"{n:020x}" for n in (0, 9, 10, 255, 2**79)]
    assert sorted(ids, key=client_order_id_for) == sorted(ids)


def test_cases_out_of_client_order_id_order_are_refused_not_misjoined():
    with pytest.raises(ValueError, match="out of client order id order"):
        list(cases([execution("ex02"), execution("ex01")], []))
    with pytest.raises(ValueError, match="AX03 after AX03"):
        list(cases([], [[order("AX03", 1)], [order("AX03", 2)]]))


def test_each_invariant_keeps_its_first_five_problems_and_counts_the_rest():
    # Twelve broker orders that belong to no execution, and one duplicated client id.
    ledger = [order(f"AX{n:02d}", n) for n in range(12)] + [order("AX11", 99)]
    names = ("broker_orders_map_to_executions", "no_duplicate_broker_orders")

    violations = check_invariants(names, cases([], orders_by_client(ledger)), evidence())

    mapped = [v.detail for v in violations if v.invariant == names[0]]
    assert mapped[:5] == [f"broker order {n} (AX{n:02d}) belongs to no execution" for n in range(5)]
    assert mapped[5:] == ["... and 7 more"]
    assert [v.detail for v in violations if v.invariant == names[1]] == [
        "AX11: 2 broker orders [11, 99]"
    ]


def test_the_engine_and_the_broker_disagreeing_on_fills_or_tickets_is_named():
    run = cases(
        [execution("ex01", "1"), execution("ex02", "5"), execution("ex03", "3")],
        orders_by_client([order("AX01", 1, filled=10_000), order("AX02", 2)]),
    )
    violations = check_invariants(("broker_orders_map_to_executions",), run, evidence())
    assert [v.detail for v in violations] == [
        "ex01: broker filled 10000, engine recorded 0",
        "ex02: engine holds order 5, broker has [2]",
        "ex03: engine holds order 3 the broker never had",
    ]


def test_an_unknown_invariant_is_refused_rather_than_passed_unchecked():
    with pytest.raises(ValueError, match="no such invariant: no_free_lunch"):
        InvariantChecks(("every_execution_terminal", "no_free_lunch"), evidence())
