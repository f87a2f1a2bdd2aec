"""Crash recovery: every execution a stop left open is settled with the broker, never resent."""

from __future__ import annotations

import pytest

from brokers.mt5 import MT5Broker
from engine.core.effects import Record
from engine.core.events import ReconciliationAttempted
from engine.schemas import ExecutionRejectionReason, ExecutionStatus
from engine.store import InMemoryExecutionDatabase
from sim.latency import LatencyConfig
from sim.network import FaultKind, FaultWindow, NetworkConfig
from sim.venue import VenueConfig
from sim.world import DEFAULT_START, SimulatedWorld
from tests.builders import decision
from tests.store_backends import store_target

S = ExecutionStatus
R = ExecutionRejectionReason
T0 = DEFAULT_START
WIRE = NetworkConfig(latency=LatencyConfig.constant(10.0))  # arrives at +10 ms, reply at +20


def crash_at(seconds: float, trade: dict | None = None, **options) -> tuple[SimulatedWorld, str]:
    world = SimulatedWorld.build(
        seed=1, network=WIRE, database=InMemoryExecutionDatabase(), **options
    )
    process = world.engine.submit(decision(**(trade or {})))
    world.env.run(until=T0 + seconds)
    assert not process.triggered, "the execution must still be in flight when the engine dies"
    [execution_id] = world.engine.database.execution_ids()
    return world, execution_id


def recover(world: SimulatedWorld):
    restarted = world.restarted()
    processes = restarted.engine.recover()
    restarted.env.run()
    return restarted, [p.value for p in processes]


def test_an_order_executed_while_the_engine_was_down_is_adopted_not_resent():
    world, execution_id = crash_at(0.015)  # executed at the broker, reply not yet back
    assert world.engine.database.get_execution(execution_id).status is S.SUBMITTING
    restarted, [execution] = recover(world)
    assert execution.status is S.FILLED and execution.slippage_pips is not None
    assert len(world.venue.orders) == 1
    kinds = [type(e) for e in restarted.engine.database.events(execution_id)]
    assert ReconciliationAttempted in kinds  # the reconciliation itself is on the record


@pytest.mark.parametrize("broker_kind", ["sim", "mt5-emulated"])
def test_a_fill_the_engine_never_heard_of_gets_its_stops_when_the_order_is_adopted(broker_kind):
    stops = {"stop_loss_pips": 20, "take_profit_pips": 30}
    world, execution_id = crash_at(0.015, stops, broker_kind=broker_kind)
    restarted, [execution] = recover(world)

    assert execution.status is S.FILLED and execution.executed_units == 100_000
    [position] = world.venue.positions(restarted.env.now)
    assert position.stop_loss is not None and position.take_profit is not None
    log = restarted.engine.database.get_execution_log(execution_id)
    assert log.unprotected_positions == () and len(log.protection) == 1
    assert log.protection_gap_seconds is not None and log.protection_gap_seconds > 0


def test_a_restart_of_an_mt5_world_reconnects_mt5broker_to_the_terminal_and_adopts_the_order():
    world, execution_id = crash_at(0.015, broker_kind="mt5-emulated")
    restarted, [execution] = recover(world)
    assert isinstance(restarted.broker, MT5Broker) and restarted.broker is not world.broker
    assert restarted.terminal is world.terminal  # the terminal outlived the engine
    assert execution.status is S.FILLED and len(world.venue.orders) == 1
    kinds = [type(e) for e in restarted.engine.database.events(execution_id)]
    assert ReconciliationAttempted in kinds


def test_an_order_that_never_reached_the_broker_is_abandoned_not_sent_late():
    world, _ = crash_at(0.005)  # the request dies with the engine
    _, [execution] = recover(world)
    assert execution.status is S.FAILED and execution.outcome_reason is R.INTERRUPTED
    assert world.venue.orders == {}


def test_a_working_order_is_followed_to_its_fill_after_a_restart():
    world, execution_id = crash_at(1.0, venue=VenueConfig(fill_delay_seconds=3.0))
    assert world.engine.database.get_execution(execution_id).status is S.SUBMITTED
    _, [execution] = recover(world)
    assert execution.status is S.FILLED and len(world.venue.orders) == 1


def test_an_execution_stopped_while_validating_is_closed_as_interrupted():
    world = SimulatedWorld.build(seed=1, database=InMemoryExecutionDatabase())
    flow = world.engine.open(decision(), None, world.env.now)
    first = next(flow)  # the request is recorded, then the engine dies
    assert isinstance(first, Record)
    world.engine.database.append(first.event)
    _, [execution] = recover(world)
    assert execution.status is S.FAILED and execution.outcome_reason is R.INTERRUPTED
    assert world.venue.orders == {}


def test_an_unresolved_execution_is_settled_once_the_broker_answers_again():
    blackout = FaultWindow(start=T0, end=T0 + 120, kind=FaultKind.DROP_REPLIES)
    world = SimulatedWorld.build(seed=1, network=NetworkConfig(faults=(blackout,)))
    process = world.engine.submit(decision())
    world.env.run()
    assert process.value.status is S.UNRESOLVED
    world.env.run(until=T0 + 130)
    _, [execution] = recover(world)
    assert execution.status is S.FILLED and len(world.venue.orders) == 1
    assert world.engine.database.non_terminal() == []


def test_recovery_with_nothing_open_does_nothing():
    world = SimulatedWorld.build(seed=1)
    world.engine.submit(decision())
    world.env.run()
    _, settled = recover(world)
    assert settled == []


@pytest.mark.parametrize("kind", ["sqlite-file", "postgresql"])
def test_an_engine_lease_is_seen_from_another_connection_until_its_holder_closes(kind, tmp_path):
    with store_target(kind, tmp_path) as target:
        holder, observer = target.open(), target.open()
        assert not observer.lease_alive("engine-a")
        holder.hold_lease("engine-a")
        assert observer.lease_alive("engine-a")
        holder.close()  # what the OS or the server does when the holding process dies
        assert not observer.lease_alive("engine-a")


def test_recovery_leaves_the_executions_of_a_live_engine_alone():
    world, execution_id = crash_at(0.015)
    other = world.restarted()
    world.engine.database.hold_lease(world.engine.instance_id)  # the first engine lives on
    assert other.engine.orphans() == []
    world.engine.database.release_lease(world.engine.instance_id)
    assert other.engine.orphans() == [execution_id]


def test_a_repeated_decision_leaves_nothing_marked_in_flight():
    world = SimulatedWorld.build(seed=1)
    first = world.engine.submit(decision(), "same")
    concurrent = world.engine.submit(decision(), "same")
    world.env.run()
    later = world.engine.submit(decision(), "same")  # a client retry after it finished
    world.env.run()
    ids = {p.value.execution_id for p in (first, concurrent, later)}
    assert len(ids) == 1
    assert world.engine.orphans() == []
    assert not world.engine._in_flight  # nothing left that recovery would wrongly skip


def test_a_slippage_bound_beyond_reason_is_refused_at_the_door():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_slippage_pips"):
        SimulatedWorld.build(seed=1).engine.submit(decision(max_slippage_pips=1e308))
