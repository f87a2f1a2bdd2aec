"""The 9-stage flow end to end, in SimPy virtual time, against the simulated broker."""

from __future__ import annotations

from itertools import pairwise

import pytest
from pydantic import ValidationError

from engine.core.config import EngineConfig
from engine.core.events import (
    CancelRequested,
    OrderProvenAbsent,
    ReconciliationAttempted,
    SubmissionAttempted,
    SubmissionUnanswered,
)
from engine.schemas import ExecutionRejectionReason, ExecutionStatus
from engine.store import IdempotencyConflict
from sim.account import AccountConfig
from sim.latency import LatencyConfig
from sim.liquidity import DepthLadder
from sim.market import MarketConfig, SymbolConfig
from sim.network import FaultKind, FaultWindow, LateExecution, NetworkConfig
from sim.venue import VenueConfig
from sim.world import DEFAULT_START, SimulatedWorld
from tests.builders import decision, run_one

R = ExecutionRejectionReason
S = ExecutionStatus
T0 = DEFAULT_START


def faulty(kind: FaultKind, seconds: float) -> SimulatedWorld:
    window = FaultWindow(start=T0, end=T0 + seconds, kind=kind)
    return SimulatedWorld.build(
        seed=3, network=NetworkConfig(faults=(window,), latency=LatencyConfig.constant(10.0))
    )


def attempts_at(world: SimulatedWorld, execution_id: str) -> list[float]:
    return [
        e.at
        for e in world.engine.database.events(execution_id)
        if isinstance(e, SubmissionAttempted)
    ]


def test_an_approved_trade_fills_at_the_quote_on_arrival_with_measured_slippage(world):
    execution = run_one(world, decision(units=250_000))
    assert execution.status is S.FILLED
    assert execution.executed_units == 250_000 and execution.lots == 2.5
    [order] = world.venue.orders.values()
    assert order.client_order_id == execution.request.client_order_id
    assert execution.average_fill_price == order.fills[0].price
    assert execution.slippage_pips == pytest.approx(
        (order.fills[0].price - execution.arrival_ask) / 0.0001, abs=1e-6
    )


def test_a_decision_that_is_not_approved_is_refused_and_never_reaches_the_broker(world):
    execution = run_one(world, decision(status="HOLD"))
    assert execution.status is S.REJECTED
    assert execution.outcome_reason is R.DECISION_NOT_APPROVED
    assert world.venue.orders == {}


def test_a_decision_without_a_trade_is_recorded_and_refused(world):
    rpm = {"decision": {"status": "REJECTED", "reason": "VaR limit"}}
    execution = run_one(world, rpm)
    assert execution.outcome_reason is R.DECISION_NOT_APPROVED
    assert "VaR limit" in (execution.outcome_detail or "")
    assert world.venue.orders == {}


def test_trading_halted_is_checked_first_and_nothing_is_sent(world):
    execution = run_one(world, decision(halted=True, units=1_234))  # odd size too: halt wins
    assert execution.outcome_reason is R.TRADING_HALTED
    assert world.venue.orders == {}


def test_units_that_are_not_whole_lots_steps_are_rejected_not_rounded(world):
    execution = run_one(world, decision(units=100_500))
    assert execution.status is S.REJECTED and execution.outcome_reason is R.INVALID_VOLUME
    assert "volume step" in (execution.outcome_detail or "")
    assert world.venue.orders == {}


def test_orders_on_the_weekend_are_refused_as_market_closed():
    saturday = SimulatedWorld.build(seed=1, start=T0 + 5 * 86_400)
    execution = run_one(saturday, decision())
    assert execution.outcome_reason is R.MARKET_CLOSED
    assert saturday.venue.orders == {}


def test_an_order_beyond_the_free_margin_is_refused_before_it_is_sent():
    small = SimulatedWorld.build(seed=1, account=AccountConfig(balance=1_000.0, leverage=30))
    execution = run_one(small, decision(units=100_000))
    assert execution.outcome_reason is R.INSUFFICIENT_MARGIN
    assert small.venue.orders == {}


def test_a_refused_connection_is_retried_three_times_one_second_apart_then_fails():
    world = faulty(FaultKind.REFUSE, 60.0)
    execution = run_one(world, decision())
    assert execution.status is S.FAILED and execution.outcome_reason is R.NETWORK_ERROR
    assert execution.attempts == 3
    times = attempts_at(world, execution.execution_id)
    assert [round(b - a, 6) for a, b in pairwise(times)] == [1.0, 1.0]
    assert world.venue.orders == {}


def test_a_retry_after_a_refused_connection_places_exactly_one_order():
    world = faulty(FaultKind.REFUSE, 1.5)
    execution = run_one(world, decision())
    assert execution.status is S.FILLED and execution.attempts == 3
    assert len(world.venue.orders) == 1


def test_a_broker_rejection_is_final_and_never_retried():
    # A fast market and a slow wire: the price moves further than the 0.1-pip bound
    # between the engine's quote and the order's arrival, and the broker requotes.
    fast = MarketConfig(
        symbols=(SymbolConfig(symbol="EURUSD", start_mid=1.085, volatility_pips=20.0),)
    )
    slow = NetworkConfig(latency=LatencyConfig.constant(400.0))
    world = SimulatedWorld.build(seed=1, market=fast, network=slow)
    execution = run_one(world, decision(units=100_000, max_slippage_pips=0.1))
    assert execution.status is S.REJECTED and execution.outcome_reason is R.REQUOTE
    assert execution.broker_code == 10004
    assert execution.attempts == 1
    assert world.venue.orders == {}


def test_a_lost_reply_is_reconciled_and_the_order_adopted_not_resent():
    world = faulty(FaultKind.DROP_REPLIES, 1.0)
    execution = run_one(world, decision())
    assert execution.status is S.FILLED and execution.attempts == 1
    assert len(world.venue.orders) == 1
    kinds = [type(e) for e in world.engine.database.events(execution.execution_id)]
    assert SubmissionUnanswered in kinds and ReconciliationAttempted in kinds
    assert OrderProvenAbsent not in kinds


def test_a_lost_request_is_proven_absent_by_reconciliation_before_it_is_resent():
    world = faulty(FaultKind.HANG, 1.0)
    execution = run_one(world, decision())
    assert execution.status is S.FILLED and execution.attempts == 2
    assert len(world.venue.orders) == 1
    kinds = [type(e) for e in world.engine.database.events(execution.execution_id)]
    second_attempt = [i for i, k in enumerate(kinds) if k is SubmissionAttempted][1]
    assert kinds.index(OrderProvenAbsent) < second_attempt


def test_an_unreachable_broker_after_a_lost_reply_leaves_the_execution_unresolved_not_resent():
    world = faulty(FaultKind.DROP_REPLIES, 600.0)
    execution = run_one(world, decision())
    assert execution.status is S.UNRESOLVED
    assert execution.outcome_reason is R.OUTCOME_UNKNOWN
    assert len(world.venue.orders) == 1  # it did execute; the engine must not send another
    assert world.engine.database.unsettled() == [execution.execution_id]


def test_an_order_unfilled_after_sixty_seconds_expires_and_is_cancelled_in_virtual_time():
    world = SimulatedWorld.build(
        seed=1,
        venue=VenueConfig(fill_delay_seconds=float("inf")),
        network=NetworkConfig(latency=LatencyConfig.constant(10.0)),
    )
    execution = run_one(world, decision())
    assert execution.status is S.EXPIRED and execution.outcome_reason is R.ORDER_TIMEOUT
    assert execution.executed_units == 0
    [cancel] = [
        e
        for e in world.engine.database.events(execution.execution_id)
        if isinstance(e, CancelRequested)
    ]
    assert cancel.at - execution.submitted_at == pytest.approx(60.0, abs=0.5)
    assert execution.completed_at - execution.submitted_at == pytest.approx(60.04, abs=0.5)
    [order] = world.venue.orders.values()
    assert order.state.value == "CANCELLED"


def test_an_order_that_rests_is_polled_every_half_second_until_it_fills():
    world = SimulatedWorld.build(
        seed=1,
        venue=VenueConfig(fill_delay_seconds=3.0),
        network=NetworkConfig(latency=LatencyConfig.constant(5.0)),
    )
    execution = run_one(world, decision())
    assert execution.status is S.FILLED
    # 3 s at the broker, seen at the first poll after it: at most one poll interval late
    assert 3.0 <= execution.fill_time_seconds <= 3.0 + 0.5 + 0.05


def test_a_partial_fill_is_accepted_and_logged_with_the_units_that_executed():
    world = SimulatedWorld.build(
        seed=1, venue=VenueConfig(depth=DepthLadder(top_units=60_000, levels=1))
    )
    execution = run_one(world, decision(units=100_000))
    assert execution.status is S.PARTIALLY_FILLED
    assert execution.executed_units == 60_000 and execution.remaining_units == 40_000
    assert execution.slippage_pips is not None
    log = execution.to_log()
    assert log.executed_units == 60_000 and len(log.fills) == 1


def test_the_same_idempotency_key_twice_places_one_order_and_returns_the_first_execution(world):
    first = world.engine.submit(decision(), "key-1")
    second = world.engine.submit(decision(), "key-1")
    world.env.run()
    assert first.value.execution_id == second.value.execution_id
    assert len(world.venue.orders) == 1


def test_the_same_idempotency_key_with_a_different_decision_is_refused(world):
    run_one(world, decision(units=100_000), "key-1")
    with pytest.raises(IdempotencyConflict, match="different decision"):
        run_one(world, decision(units=200_000), "key-1")
    assert len(world.venue.orders) == 1


def test_a_nul_character_where_it_would_reach_a_text_column_is_refused_at_the_door(world):
    # The decision id becomes the idempotency key, a column PostgreSQL keeps as text, which
    # cannot hold NUL: refused before any store sees it, on every backend alike.
    with pytest.raises(ValidationError, match=r"decision\.decision_id\n.*NUL"):
        world.engine.submit(decision(decision_id="d\x00-1"))
    with pytest.raises(ValueError, match=r"idempotency_key: .*NUL"):
        world.engine.submit(decision(), idempotency_key="key\x00")
    assert world.venue.orders == {}
    assert list(world.engine.database.execution_ids()) == []


def test_a_malformed_decision_is_refused_with_an_error_naming_the_field(world):
    bad = decision(units=-5)
    with pytest.raises(ValidationError, match="position_units"):
        world.engine.submit(bad)
    with pytest.raises(ValidationError, match="symbol"):
        world.engine.submit(decision(symbol="EUR/USD"))
    assert world.venue.orders == {}
    assert list(world.engine.database.execution_ids()) == []


def test_a_thousand_concurrent_executions_all_finish_in_virtual_time():
    world = SimulatedWorld.build(seed=5)
    processes = [
        world.engine.submit(decision(decision_id=f"c{i}", direction=1 if i % 2 else -1))
        for i in range(1_000)
    ]
    world.env.run()
    statuses = {p.value.status for p in processes}
    assert statuses == {S.FILLED}
    assert len(world.venue.orders) == 1_000
    assert world.env.now - T0 < 1.0  # all interleaved: the whole batch took under a second


def test_the_same_seed_gives_the_same_ledger_and_another_seed_another():
    def ledger(seed: int) -> list[tuple]:
        world = SimulatedWorld.build(seed=seed, network=NetworkConfig(reply_loss=0.05))
        for i in range(200):
            world.engine.submit(decision(decision_id=f"s{i}", symbol=("EURUSD", "USDJPY")[i % 2]))
        world.env.run()
        return list(world.venue.ledger_rows())

    assert ledger(1) == ledger(1)
    assert ledger(1) != ledger(2)


def test_config_numbers_come_from_one_object_and_its_version_is_recorded(world):
    execution = run_one(world, decision())
    assert execution.request.config_version == EngineConfig().version
    assert EngineConfig(poll_interval_seconds=0.25).version != EngineConfig().version


def test_a_symbol_the_broker_does_not_list_is_refused_as_not_tradable(world):
    execution = run_one(world, decision(symbol="EURCHF"))
    assert execution.outcome_reason is R.SYMBOL_NOT_TRADABLE
    assert world.venue.orders == {}


def test_a_refused_margin_question_is_rejected_with_the_brokers_reason_not_as_a_network_error():
    # The core is sans-I/O: answer its requests by hand, the way any driver would.
    from engine.core.effects import FetchAccount, FetchMargin, FetchQuote, FetchSymbol, Record
    from engine.core.flow import build_request, execution_flow
    from engine.core.ports import BrokerRejected
    from engine.schemas import RPMOutput

    world = SimulatedWorld.build(seed=1)
    rpm = RPMOutput.model_validate(decision())
    config = EngineConfig()
    flow = execution_flow(rpm, build_request(rpm, "k", config, T0, "t"), config, T0)
    answers = {
        FetchSymbol: world.venue.spec("EURUSD"),
        FetchQuote: world.venue.quote("EURUSD", T0),
        FetchAccount: world.venue.account_state(T0),
        FetchMargin: BrokerRejected(R.INSUFFICIENT_MARGIN, "margin calculation refused", 10019),
    }
    effect = next(flow)
    try:
        while True:
            reply = None if isinstance(effect, Record) else answers[type(effect)]
            if isinstance(reply, BrokerRejected):  # a failed call is thrown in, as drivers do
                reply.at = T0
                effect = flow.throw(reply)
            else:
                effect = flow.send((T0, reply))
    except StopIteration as stop:
        execution = stop.value
    assert execution.outcome_reason is R.INSUFFICIENT_MARGIN
    assert "margin calculation refused" in execution.outcome_detail


def test_a_not_found_right_after_a_timeout_is_no_proof_and_a_late_execution_is_adopted():
    late = LateExecution(probability=1.0, min_seconds=20.0, max_seconds=20.0)
    dropped = FaultWindow(start=T0, end=T0 + 1.0, kind=FaultKind.DROP_REPLIES)
    world = SimulatedWorld.build(
        seed=3, network=NetworkConfig(faults=(dropped,), late_execution=late)
    )
    execution = run_one(world, decision())
    assert execution.status is S.FILLED and len(world.venue.orders) == 1  # never sent twice
    details = [
        e.detail
        for e in world.engine.database.events(execution.execution_id)
        if isinstance(e, ReconciliationAttempted)
    ]
    assert any("not found yet" in detail for detail in details)  # the evidence of waiting


def test_a_not_found_is_proof_of_absence_once_the_servers_grace_has_passed():
    world = faulty(FaultKind.HANG, 1.0)
    execution = run_one(world, decision())
    attempts = attempts_at(world, execution.execution_id)
    assert execution.status is S.FILLED and len(world.venue.orders) == 1
    assert attempts[1] - attempts[0] >= EngineConfig().absence_proof_seconds


def test_a_fill_worse_than_the_decisions_bound_is_recorded_as_a_breach():
    # Market execution does not enforce max_slippage_pips at the venue: the engine says so.
    from engine.core.effects import (
        FetchAccount,
        FetchMargin,
        FetchQuote,
        FetchSymbol,
        PlaceOrder,
        Record,
        Sleep,
    )
    from engine.core.events import SlippageBoundBreached
    from engine.core.flow import build_request, execution_flow
    from engine.core.ports import BrokerFill, BrokerOrderState, OrderReport
    from engine.schemas import RPMOutput

    world = SimulatedWorld.build(seed=1)
    rpm = RPMOutput.model_validate(decision(max_slippage_pips=0.5))
    config = EngineConfig()
    request = build_request(rpm, "k", config, T0, "t")
    quote = world.venue.quote("EURUSD", T0)
    two_pips_worse = quote.ask + 0.0002
    answers = {
        FetchSymbol: world.venue.spec("EURUSD"),
        FetchQuote: quote,
        FetchAccount: world.venue.account_state(T0),
        FetchMargin: 100.0,
        PlaceOrder: OrderReport(
            "1",
            request.client_order_id,
            BrokerOrderState.DONE,
            100_000,
            (BrokerFill("9", 100_000, two_pips_worse, T0),),
        ),
    }
    flow = execution_flow(rpm, request, config, T0)
    recorded, effect = [], next(flow)
    try:
        while True:
            if isinstance(effect, Record):
                recorded.append(effect.event)
            reply = None if isinstance(effect, Record | Sleep) else answers[type(effect)]
            effect = flow.send((T0, reply))
    except StopIteration as stop:
        execution = stop.value
    [breach] = [e for e in recorded if isinstance(e, SlippageBoundBreached)]
    assert breach.slippage_pips == pytest.approx(2.0) and breach.max_slippage_pips == 0.5
    assert execution.status is S.FILLED and execution.slippage_bound_breached
