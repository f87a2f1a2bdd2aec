"""The invariants read a run as a stream of cases: the store's executions joined with the
broker's orders on client order id, one at a time, whatever the run's size."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.core.ids import client_order_id_for
from engine.core.lifecycle import Execution
from engine.core.ports import BrokerFill, BrokerOrderState, Position
from engine.schemas import Direction, ExecutionRequest, ExecutionStatus, ExitReason
from engine.store import InMemoryExecutionDatabase
from scenarios.invariants import (
    Evidence,
    InvariantChecks,
    cases,
    check_invariants,
    orders_by_client,
    positions_by_tag,
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


# --- Child orders, the server's own orders, protection and positions left open ---

EID = "ex" + "0" * 19 + "1"  # a full-length execution id, so its tag has children
TAG = client_order_id_for(EID)


def request(units: int = 10_000, **terms) -> ExecutionRequest:
    return ExecutionRequest(
        execution_id=EID,
        idempotency_key="k",
        client_order_id=TAG,
        symbol="EURUSD",
        direction=Direction.BUY,
        intended_units=units,
        max_slippage_pips=None,
        decision={"decision": {"status": "APPROVED"}},
        received_at=datetime(2024, 1, 8, tzinfo=UTC),
        engine_version="t",
        config_version="t",
        engine_instance="t",
        **terms,
    )


def filled(executed: int, *order_ids: str, **terms) -> Execution:
    e = Execution(
        EID, request=request(**terms), broker_order_id=order_ids[-1] if order_ids else None
    )
    e.executed_units, e.order_ids = executed, list(order_ids)
    e.status = ExecutionStatus.FILLED
    return e


def position(tag: str, stop_loss: float | None = None, take_profit: float | None = None):
    return Position("7", "EURUSD", Direction.BUY, 10_000, 1.1, 1.0, stop_loss, take_profit, tag)


def test_child_orders_join_their_parents_case_and_the_servers_stop_orders_join_none():
    stop = order("[sl 1.09000]", 9, filled=10_000)
    stop.reason = ExitReason.STOP_LOSS
    ledger = orders_by_client(
        [order(TAG, 1, filled=6_000), order(TAG + "C1", 2, filled=4_000), stop]
    )

    (case,) = cases([filled(10_000, "1", "2")], ledger)

    assert case.client_order_id == TAG and [o.ticket for o in case.orders] == [1, 2]
    names = ("broker_orders_map_to_executions", "no_duplicate_broker_orders")
    assert check_invariants(names, cases([filled(10_000, "1", "2")], ledger), evidence()) == []


def test_executed_units_above_intended_children_included_is_a_violation():
    # Each order within its own size, the engine's count right, but the child refilled
    # what the parent had already filled: the broker filled 14,000 of 10,000.
    ledger = orders_by_client([order(TAG, 1, filled=10_000), order(TAG + "C1", 2, filled=4_000)])
    e = filled(10_000, "1", "2")

    violations = check_invariants(
        ("executed_never_exceeds_intended",), cases([e], ledger), evidence()
    )

    assert [v.detail for v in violations] == [
        f"{EID}: broker filled 14000 of 10000 over 2 orders (children included)"
    ]
    fine = orders_by_client([order(TAG, 1, filled=6_000), order(TAG + "C1", 2, filled=4_000)])
    assert (
        check_invariants(("executed_never_exceeds_intended",), cases([e], fine), evidence()) == []
    )


def test_a_position_the_broker_holds_without_the_stops_upstream_asked_for_is_a_violation():
    e = filled(10_000, "1", stop_loss_pips=20.0, take_profit_pips=40.0)
    ledger = orders_by_client([order(TAG, 1, filled=10_000)])

    def check(*positions: Position, unprotected: dict[str, str] | None = None) -> list[str]:
        e.unprotected = unprotected or {}
        run = Evidence(
            InMemoryExecutionDatabase(),
            lambda t: True,
            [],
            positions_at_end_of_flow=positions_by_tag(positions),
        )
        found = check_invariants(("no_position_left_unprotected",), cases([e], ledger), run)
        return [v.detail for v in found]

    assert check(position(TAG, 1.09, 1.12)) == []
    assert check(position(TAG, None, 1.12)) == [f"{EID}: position 7 at the broker has no stop-loss"]
    assert check(position(TAG + "C1", 1.09, None)) == [
        f"{EID}: position 7 at the broker has no take-profit"
    ]
    assert check(unprotected={"7": "10016 invalid stops"}) == [
        f"{EID}: position 7 left unprotected: 10016 invalid stops"
    ]


def test_a_position_of_ours_left_open_is_a_violation_only_when_the_run_was_to_close_all():
    left = [position(TAG), position("someone else's")]

    def check(flatten: bool) -> list[str]:
        run = Evidence(
            InMemoryExecutionDatabase(),
            lambda t: True,
            [],
            positions_left=left,
            flatten_at_end=flatten,
        )
        return [v.detail for v in check_invariants(("every_position_ends_closed",), [], run)]

    assert check(True) == [f"position 7 (EURUSD 10000 units, opened by {TAG}) still open"]
    assert check(False) == []
