"""The paper venue outlives the server: `arbitrex serve --broker sim --paper-venue SOCKET`
killed with SIGKILL mid-execution and restarted adopts every order the venue received, and
abandons, with that true reason, only the orders that never left.

Real processes throughout: the server and the venue are started as a user would, the server
is killed with SIGKILL, and readiness is read from the venue's ledger and the audit store,
never guessed from a timer.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from engine.core.lifecycle import Execution
from engine.core.vocabulary import ExecutionRejectionReason, ExecutionStatus
from engine.schemas import utc
from engine.store import open_database
from scenarios.paper_venue import PaperVenueError, answering, parse_address
from sim.world import DEFAULT_START
from tests.api_support import ROOT, approved, bearer, cli_api, free_port

T = TypeVar("T")
# Generous for a busy machine: every wait ends as soon as what it waits for is there.
PATIENCE_SECONDS = 180.0
# One-way latency of the simulated wire: the window in which the test sees an order in
# flight (at the venue with its reply on the way back, or on its way to the venue) and
# kills the server. A round trip stays under the engine's 5 s request timeout.
LATENCY_MS = "2000"


def eventually(what: str, probe: Callable[[], T | None]) -> T:
    """Poll `probe` until it answers something; fail, naming `what`, after PATIENCE."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while (answer := probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return answer


@pytest.fixture
def socket_path() -> Iterator[str]:
    """A socket path short enough for AF_UNIX (tmp_path may not be); the venue found there
    afterwards, whoever started it, is stopped, and killed if it does not go."""
    home = tempfile.mkdtemp(prefix="arbitrex-pv-")
    path = os.path.join(home, "venue.sock")
    try:
        yield path
    finally:
        venue = answering(path)
        if venue is not None:
            pid = venue.about()["pid"]
            venue.shutdown()
            gone = _wait_gone(pid)
            if not gone:
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)


def _wait_gone(pid: int, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def _start_server(log: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "scenarios.cli", "serve", "--port", str(port), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            # A fixed Monday morning for the server and the venue it starts: an open market
            # whatever day the test runs on.
            env={**os.environ, "ARBITREX_PAPER_START": utc(DEFAULT_START).isoformat()},
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool | None:
        if process.poll() is not None:
            raise AssertionError(f"the server exited:\n{log.read_text()}")
        try:
            httpx.get(f"{url}/health", timeout=5)
            return True
        except httpx.TransportError:
            return None

    eventually("the server to answer /health", healthy)
    return process, url


def _post_in_background(url: str, token: str, decision_id: str) -> threading.Thread:
    """POST /execute on a thread: the server dies before it answers, which is the point."""

    def post() -> None:
        with suppress(httpx.TransportError):
            httpx.post(
                f"{url}/execute",
                json=approved(decision_id),
                headers=bearer(token),
                timeout=PATIENCE_SECONDS,
            )

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def _executions(db_url: str) -> dict[str, Execution]:
    """The store's executions by decision id, read as an auditor would, from outside."""
    database = open_database(db_url)
    try:
        return {
            e.request.decision["decision"]["decision_id"]: e
            for e in database.executions()
            if e.request is not None
        }
    finally:
        database.close()


@pytest.mark.slow
def test_a_server_killed_mid_execution_and_restarted_adopts_every_order_the_venue_received(
    tmp_path: Path, socket_path: str
) -> None:
    keys = tmp_path / "keys.db"
    created = cli_api("keys", "create", "--role", "trader", "--keys", str(keys))
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    db_url = f"sqlite:///{tmp_path / 'audit.db'}"
    args = ("--db", db_url, "--keys", str(keys), "--broker", "sim", "--latency-ms", LATENCY_MS)
    args += ("--paper-venue", socket_path)
    log = tmp_path / "server.log"

    server, url = _start_server(log, *args)
    try:
        assert "(started;" in log.read_text()  # none ran there: serve started one
        venue = eventually("the paper venue", lambda: answering(socket_path))
        venue_pid = venue.about()["pid"]

        # A reaches the venue; its reply is on the way back when the server dies.
        _post_in_background(url, token, "at-the-venue")
        reached = eventually("A at the venue", lambda: venue.ledger_orders() or None)
        # B is sent (its attempt durable in the store) but still on its way to the venue.
        _post_in_background(url, token, "in-transit")

        def b_sent() -> bool | None:
            b = _executions(db_url).get("in-transit")
            return True if b is not None and b.last_attempt_at is not None else None

        eventually("B's submission attempt in the store", b_sent)
        server.kill()  # SIGKILL: no cleanup, mid-round-trip
        server.wait()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    before = _executions(db_url)
    assert not before["at-the-venue"].is_terminal, "A's reply beat the kill: a too slow machine"
    ledger = venue.ledger_orders()
    assert [order.client_order_id for order in ledger] == [
        order.client_order_id for order in reached
    ], "B reached the venue before the kill: a too slow machine"
    assert _wait_gone(venue_pid, 0.0) is False  # the venue outlived the server

    restarted, _ = _start_server(log, *args)  # recovery settles before /health answers
    try:
        assert "(running: its ledger carries over)" in log.read_text()
        after = _executions(db_url)
    finally:
        restarted.send_signal(signal.SIGINT)
        restarted.wait(timeout=PATIENCE_SECONDS)

    adopted, abandoned = after["at-the-venue"], after["in-transit"]
    assert adopted.status is ExecutionStatus.FILLED
    assert adopted.broker_order_id == str(ledger[0].ticket)
    assert adopted.executed_units == 100_000 and adopted.fills
    assert adopted.outcome_reason is not ExecutionRejectionReason.INTERRUPTED
    assert abandoned.outcome_reason is ExecutionRejectionReason.INTERRUPTED
    assert abandoned.outcome_detail == "stopped before the order reached the broker"
    assert abandoned.broker_order_id is None
    # Every order the venue received belongs to an adopted execution, none abandoned.
    by_client = {e.client_order_id: e for e in after.values()}
    for order in venue.ledger_orders():
        assert by_client[order.client_order_id].outcome_reason is not (
            ExecutionRejectionReason.INTERRUPTED
        )


def test_the_venue_started_alone_stops_when_asked_and_removes_its_socket(
    socket_path: str,
) -> None:
    venue = subprocess.Popen(
        [sys.executable, "-m", "scenarios.cli", "paper-venue", socket_path, "--seed", "3"],
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        proxy = eventually("the paper venue", lambda: answering(socket_path))
        assert proxy.about()["seed"] == 3 and proxy.about()["pid"] == venue.pid
        proxy.close()
        assert os.stat(socket_path).st_mode & 0o077 == 0  # owner-only
        stopped = cli_api("paper-venue", socket_path, "--stop")
        assert stopped.returncode == 0, stopped.stderr
        assert venue.wait(timeout=PATIENCE_SECONDS) == 0
        assert not os.path.exists(socket_path)
        again = cli_api("paper-venue", socket_path, "--stop")
        assert again.returncode == 1 and "no paper venue" in again.stderr
    finally:
        if venue.poll() is None:
            venue.kill()
            venue.wait()


def test_sigterm_ends_the_venue_and_a_second_one_on_a_live_socket_is_refused(
    socket_path: str,
) -> None:
    command = [sys.executable, "-m", "scenarios.paper_venue", "--address", socket_path]
    venue = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=ROOT)
    try:
        eventually("the paper venue", lambda: answering(socket_path)).close()
        second = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert second.returncode == 1 and "already running" in second.stderr
        venue.terminate()
        assert venue.wait(timeout=PATIENCE_SECONDS) == 0
        assert not os.path.exists(socket_path)
    finally:
        if venue.poll() is None:
            venue.kill()
            venue.wait()


def test_a_venue_address_off_loopback_is_refused_for_its_wire_carries_pickles() -> None:
    assert parse_address("127.0.0.1:7001") == ("127.0.0.1", 7001)
    assert parse_address("/run/arbitrex/venue.sock") == "/run/arbitrex/venue.sock"
    with pytest.raises(PaperVenueError, match="loopback"):
        parse_address("0.0.0.0:7001")
