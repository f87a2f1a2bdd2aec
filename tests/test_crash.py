"""SIGKILL at random points, restart on the same store and broker: nothing lost, nothing twice."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from multiprocessing.connection import Client

import numpy as np
import pytest

from engine.store import open_database, verify_audit_chain
from sim.broker_process import AUTHKEY
from sim.world import DEFAULT_START
from tests.store_backends import store_target

ORDERS = 150


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker_port():
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim.broker_process",
            "--port",
            str(port),
            "--start",
            str(DEFAULT_START),
        ]
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            Client(("127.0.0.1", port), authkey=AUTHKEY).close()
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("the broker process did not start")
            time.sleep(0.05)
    yield port
    process.kill()
    process.wait()


def engine_command(db_url: str, port: int, orders: int) -> list[str]:
    return [
        sys.executable, "-m", "scenarios.crash", "--db", db_url, "--port", str(port),
        "--start", str(DEFAULT_START), "--origin", str(time.time()), "--orders", str(orders),
    ]  # fmt: skip


def ledger(port: int) -> list[tuple]:
    connection = Client(("127.0.0.1", port), authkey=AUTHKEY)
    connection.send(("ledger_rows", ()))
    ok, rows = connection.recv()
    connection.close()
    assert ok
    return rows


@pytest.mark.slow
def test_an_engine_killed_at_random_points_loses_nothing_and_sends_nothing_twice(
    tmp_path, broker_port
):
    db_url = f"sqlite:///{tmp_path / 'audit.db'}"
    origin = time.time()
    command = [
        sys.executable, "-m", "scenarios.crash", "--db", db_url, "--port", str(broker_port),
        "--start", str(DEFAULT_START), "--origin", str(origin), "--orders", str(ORDERS),
    ]  # fmt: skip
    rng = np.random.default_rng(20261125)
    kills = 0
    for _ in range(6):
        worker = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        time.sleep(float(rng.uniform(1.0, 2.5)))
        worker.kill()  # SIGKILL: no cleanup, no flush, mid-whatever-it-was-doing
        output, _ = worker.communicate()
        kills += "done" not in output
    final = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert "done" in final.stdout
    assert kills >= 3, "the test must actually kill engines in the middle of their run"

    database = open_database(db_url)
    executions = [database.get_execution(e) for e in database.execution_ids()]
    assert len(executions) == ORDERS  # every decision recorded exactly once
    assert all(e.is_terminal for e in executions)
    rows = ledger(broker_port)
    orders_per_client = Counter(row[1] for row in {(r[0], r[1]) for r in rows})
    assert max(orders_per_client.values()) == 1  # no duplicate order at the broker
    ours = {e.request.client_order_id for e in executions}
    assert set(orders_per_client) <= ours  # every broker order belongs to an execution
    filled = {e.request.client_order_id for e in executions if e.executed_units}
    assert filled == set(orders_per_client)  # and every fill the broker made is on our record
    assert verify_audit_chain(database).ok
    database.close()


@pytest.mark.slow
def test_two_engine_processes_sharing_postgresql_place_each_decision_exactly_once(
    tmp_path, broker_port
):
    orders = 60
    with store_target("postgresql", tmp_path) as target:
        target.open().close()  # create the schema once, before the race
        command = engine_command(target.url, broker_port, orders)
        engines = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        for process in engines:
            output, _ = process.communicate(timeout=300)
            assert process.returncode == 0 and "done" in output
        database = target.open()
        executions = [database.get_execution(e) for e in database.execution_ids()]
    assert len(executions) == orders and all(e.is_terminal for e in executions)
    per_client = Counter(row[1] for row in {(r[0], r[1]) for r in ledger(broker_port)})
    assert len(per_client) == orders and max(per_client.values()) == 1
