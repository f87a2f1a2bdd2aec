"""Serving the REST API in tests: always a real uvicorn server listening on 127.0.0.1.

`paper_api` runs the server in a thread of the test process, so a test can read the
simulated venue's ledger; `serve_process` runs `python -m scenarios.cli serve` as a
user would, in its own process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from engine.api import ApiSettings, KeyStore, Role, create_app
from engine.engine import ExecutionEngine
from engine.schemas import utc
from engine.store import open_database
from scenarios.assembly import paper_trading_engine
from sim.venue import Venue
from sim.world import DEFAULT_START

ROOT = Path(__file__).resolve().parents[1]
# Generous enough that only the rate-limit tests ever meet the limiter.
UNLIMITED = ApiSettings(rate_per_second=1e6, burst=1_000_000, broker_probe_seconds=0)


def approved(
    decision_id: str | None, symbol: str = "EURUSD", direction: int = 1, units: int = 100_000
) -> dict[str, Any]:
    """An approved RPM decision, as upstream sends it."""
    decision: dict[str, Any] = {
        "status": "APPROVED",
        "approved_trade": {"symbol": symbol, "direction": direction, "position_units": units},
    }
    if decision_id is not None:
        decision["decision_id"] = decision_id
    return {"decision": decision, "portfolio_state": {"trading_halted": False}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def one_key_per_role(store: KeyStore) -> dict[Role, str]:
    return {role: store.create(role, f"{role.value}-key")[1] for role in Role}


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free port of 127.0.0.1; yields the base URL."""
    # IPPROTO_TCP, as getaddrinfo would give: asyncio sets TCP_NODELAY on the connections
    # of such a socket only, and without it every response waits out a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config None: uvicorn's records reach the root logger, where caplog sees them.
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="info"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(2000):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.005)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@dataclass
class PaperApi:
    url: str
    engine: ExecutionEngine
    venue: Venue
    keys: KeyStore
    tokens: dict[Role, str]
    client: httpx.Client

    def as_role(self, role: Role) -> dict[str, str]:
        return bearer(self.tokens[role])

    def execute(self, rpm: dict[str, Any], key: str | None = None) -> httpx.Response:
        headers = self.as_role(Role.TRADER) | ({"Idempotency-Key": key} if key else {})
        return self.client.post("/execute", json=rpm, headers=headers)

    def read(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers=self.as_role(Role.AUDITOR))

    def orders_at_the_broker(self) -> dict[str, int]:
        """Client order id -> how many orders the venue's own ledger holds for it."""
        return {cid: len(orders) for cid, orders in self.venue.orders_by_client_id().items()}


@contextmanager
def paper_api(
    tmp_path: Path,
    db_url: str = "memory://",
    settings: ApiSettings = UNLIMITED,
    latency_ms: float = 0.2,
    seed: int = 3,
) -> Iterator[PaperApi]:
    """The API on a fresh paper-trading engine, with one key per role."""
    database = open_database(db_url)
    # A fixed Monday morning: the same open market whatever day the tests run on.
    engine, venue = paper_trading_engine(seed, database, latency_ms, start=DEFAULT_START)
    keys = KeyStore(tmp_path / f"keys-{seed}.db")
    tokens = one_key_per_role(keys)
    app = create_app(engine, keys, settings)
    try:
        with served(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            yield PaperApi(url, engine, venue, keys, tokens, client)
    finally:
        keys.close()
        with suppress(Exception):
            database.close()


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_api(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scenarios.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serve_process(log: Path, *args: str) -> Iterator[ServerProcess]:
    """`python -m scenarios.cli serve ... --port P`, until /health answers; stopped as
    Ctrl-C stops it. Output goes to `log` (a pipe could fill up and stall the server)."""
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "scenarios.cli", "serve", "--port", str(port), *args],
            # A fixed Monday morning: the same open market whatever day the tests run on.
            env={**os.environ, "ARBITREX_PAPER_START": utc(DEFAULT_START).isoformat()},
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(600):
                if process.poll() is not None:
                    raise AssertionError(f"the server exited early:\n{server.output()}")
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            else:
                raise AssertionError(f"the server never answered:\n{server.output()}")
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
