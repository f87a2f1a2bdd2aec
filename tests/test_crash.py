"""Crash chaos: SIGKILL in the middle of an order's round trip, restart on the same store and
broker — nothing lost, nothing twice; and two live engines on one PostgreSQL never double an
order."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from engine.core.events import ExecutionAbandoned, OrderAcknowledged
from engine.store import open_database
from scenarios.crash import (
    KillPhase,
    KillPoint,
    crash_run,
    free_port,
    kill_phases,
    kill_plan,
    ledger_orders,
    wait_for_broker,
)
from scenarios.spec import load_scenario
from tests.store_backends import store_target

SMALL = """
name = "crash_small"
description = "A short flow for crash chaos in the test suite."
seed = 3
start = 2024-01-10T10:00:00Z

[orders]
orders = {orders}
symbols = ["EURUSD", "USDJPY"]
not_approved_share = 0.05
"""


# Every entry asks for stops in pips, set after its fill, on positions of their own.
WITH_STOPS = """
stop_loss_pips = 20.0
take_profit_pips = 30.0

[account]
margin_mode = "hedging"
"""


def scenario_file(tmp_path: Path, orders: int, stops: bool = False) -> Path:
    path = tmp_path / "crash_small.toml"
    path.write_text(SMALL.format(orders=orders) + (WITH_STOPS if stops else ""))
    return path


@pytest.mark.slow
def test_an_engine_killed_mid_order_loses_nothing_sends_nothing_twice_leaves_nothing_bare(
    tmp_path,
):
    outcome = crash_run(scenario_file(tmp_path, 150, stops=True), tmp_path / "run", kills=3)

    assert len(outcome.kills) == 3, "every engine run must reach its kill point"
    assert outcome.executions == 150  # every decision recorded exactly once
    assert "no_position_left_unprotected" in outcome.invariants_checked
    assert outcome.violations == ()
    # Each kill left exactly one execution unfinished, and recovery settled it as its phase
    # says: adopted the order, abandoned the request, or set the stops of the fill.
    phases = Counter(point.phase for point in outcome.kills)
    assert outcome.recovery.adopted == phases[KillPhase.AT_BROKER] > 0
    assert outcome.recovery.abandoned == phases[KillPhase.IN_TRANSIT] > 0
    assert outcome.recovery.protected == phases[KillPhase.BEFORE_STOPS] > 0
    # ... as the audit trail, the evidence, records it.
    with open_database(f"sqlite:///{tmp_path / 'run' / 'audit.db'}") as database:
        trails = [database.events(e) for e in database.execution_ids()]
    found = sum(
        any(isinstance(e, OrderAcknowledged) and e.via_reconciliation for e in trail)
        for trail in trails
    )
    ended = sum(any(isinstance(e, ExecutionAbandoned) for e in trail) for trail in trails)
    assert (found, ended) == (outcome.recovery.adopted, outcome.recovery.abandoned)


@pytest.mark.slow
def test_the_command_line_reports_what_recovery_adopted_abandoned_and_protected(tmp_path):
    scenario = str(scenario_file(tmp_path, 40, stops=True))
    command = [sys.executable, "-m", "scenarios.cli", "run", scenario, "--crash", "--kills", "3"]
    answer = subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert answer.returncode == 0, answer.stderr
    summary = " ".join(answer.stdout.split())  # rich wraps lines at the terminal's width
    assert (
        "3 engine processes killed mid-order (1 with the request on its way, 1 with the order "
        "at the broker, 1 with the fill on record and its stops on their way)" in summary
    )
    assert (
        "recovery: 1 executions adopted (found at the broker and followed), 1 abandoned "
        "(never reached the broker), 1 given their stops (filled before the kill)" in summary
    )
    assert "invariants: all 8 hold" in summary


def test_the_kill_plan_is_the_seed_s_in_flight_points_alternating_and_within_reach():
    plan = kill_plan(seed=7, kills=9, decisions=200)

    assert plan == kill_plan(seed=7, kills=9, decisions=200)
    assert plan != kill_plan(seed=8, kills=9, decisions=200)
    assert all(a.phase != b.phase for a, b in pairwise(plan))
    # 9 runs of at most 10 orders each leave the last run 110 decisions of its own.
    assert all(1 <= point.order <= 10 for point in plan)
    assert [point.order for point in kill_plan(seed=7, kills=3, decisions=5)] == [1, 1, 1]
    assert KillPoint.parse(str(plan[0])) == plan[0]


def test_the_kill_plan_catches_fills_before_their_stops_only_where_the_decisions_ask_for_stops(
    tmp_path,
):
    with_stops = kill_phases(load_scenario(scenario_file(tmp_path, 10, stops=True)))
    without = kill_phases(load_scenario(scenario_file(tmp_path, 10)))

    assert KillPhase.BEFORE_STOPS in with_stops and KillPhase.BEFORE_STOPS not in without
    plan = kill_plan(seed=7, kills=6, decisions=200, phases=with_stops)
    assert Counter(point.phase for point in plan) == dict.fromkeys(KillPhase, 2)


@pytest.mark.slow
def test_two_engine_processes_sharing_postgresql_place_each_decision_exactly_once(tmp_path):
    orders = 60
    path = scenario_file(tmp_path, orders).resolve()
    port = free_port()
    broker = subprocess.Popen(
        [sys.executable, "-m", "scenarios.paper_venue", "--port", str(port),
         "--scenario", str(path), "--seed", "3"]
    )  # fmt: skip
    try:
        wait_for_broker(port, broker)
        with store_target("postgresql", tmp_path) as target:
            target.open().close()  # create the schema once, before the race
            command = [
                sys.executable, "-m", "scenarios.crash", "--scenario", str(path),
                "--db", target.url, "--port", str(port), "--origin", str(time.time()),
                "--seed", "3",
            ]  # fmt: skip
            engines = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in "ab"]
            for process in engines:
                output, _ = process.communicate(timeout=300)
                assert process.returncode == 0 and "done" in output
            database = target.open()
            executions = [database.get_execution(e) for e in database.execution_ids()]
        ledger = ledger_orders(port)
    finally:
        broker.kill()
        broker.wait()
    assert len(executions) == orders and all(e.is_terminal for e in executions)
    per_client = Counter(order.client_order_id for order in ledger)
    approved = [e for e in executions if e.request.decision["decision"]["status"] == "APPROVED"]
    assert len(per_client) == len(approved) and max(per_client.values()) == 1
