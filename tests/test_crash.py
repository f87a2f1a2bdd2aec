"""Crash chaos: SIGKILL at random points, restart on the same store and broker — nothing
lost, nothing twice; and two live engines on one PostgreSQL never double an order."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from scenarios.crash import crash_run, free_port, ledger_orders, wait_for_broker
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


def scenario_file(tmp_path: Path, orders: int) -> Path:
    path = tmp_path / "crash_small.toml"
    path.write_text(SMALL.format(orders=orders))
    return path


@pytest.mark.slow
def test_an_engine_killed_at_random_points_loses_nothing_and_sends_nothing_twice(tmp_path):
    outcome = crash_run(scenario_file(tmp_path, 150), tmp_path / "run", kills=5)
    assert outcome.kills >= 3, "the engine must actually be killed in the middle of its run"
    assert outcome.executions == 150  # every decision recorded exactly once
    assert outcome.violations == ()


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
