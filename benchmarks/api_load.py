"""The REST API under N concurrent clients: executions/s and latency, next to bare FastAPI.

Starts two servers on 127.0.0.1, each in a process of its own: `arbitrex serve` on the
paper-trading simulator (`python -m scenarios.cli serve`), and a bare FastAPI endpoint
that does nothing but parse the same JSON and answer. Then N clients, each on its own
keep-alive connection, send R executions each, all at once; every request is timed. The
result is one JSON document on stdout. Run from the repository root:

    python benchmarks/api_load.py                     # 1,000 clients, 2 executions each
    python benchmarks/api_load.py --clients 100 --client httpx

The default client is a minimal HTTP/1.1 writer/reader on asyncio streams, because a load
generator must be cheaper than what it measures: httpx's AsyncClient (httpcore 1.0) slows
to a few hundred requests/s at this concurrency even against the bare endpoint. `--client
httpx` measures with one httpx.AsyncClient per simulated client instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
Send = Callable[[bytes], Awaitable[tuple[int, bytes]]]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_bare(port: int) -> None:
    """The baseline: FastAPI and uvicorn, a JSON body parsed and a JSON answer, no work."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/execute")
    async def execute(body: dict[str, Any]) -> dict[str, Any]:
        return {"status": "FILLED", "decision_id": body["decision"]["decision_id"]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measured(pid: int, load: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """A load's figures and the server's CPU time per request: what the server spent, apart
    from the time it waited or was kept off the CPU (other tenants still move it, through
    caches and clock speed: here by up to a third within minutes)."""
    before = _cpu_seconds(pid)
    result = asyncio.run(load)
    after = _cpu_seconds(pid)
    if before is not None and after is not None:
        result["server_cpu_us_per_request"] = round((after - before) / result["requests"] * 1e6)
    return result


@contextmanager
def _server(command: list[str], port: int, log: Path) -> Iterator[tuple[str, int]]:
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(f"server exited early:\n{log.read_text()}")
            try:
                httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _decision(run: str, client: int, index: int) -> bytes:
    trade = {
        "symbol": "EURUSD",
        "direction": 1 if (client + index) % 2 else -1,  # netting keeps margin free
        "position_units": 10_000,
    }
    decision = {
        "status": "APPROVED",
        "decision_id": f"{run}-{client}-{index}",
        "approved_trade": trade,
    }
    return json.dumps({"decision": decision}).encode()


async def _raw_connection(url: str, token: str) -> tuple[Send, Callable[[], None]]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""

    async def send(body: bytes) -> tuple[int, bytes]:
        writer.write(
            b"POST /execute HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            + auth
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.partition(b":")[2])
            for line in lines
            if line.lower().startswith(b"content-length")
        )
        return status, await reader.readexactly(length)

    return send, writer.close


async def _httpx_connection(url: str, token: str) -> tuple[Send, Callable[[], None]]:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    client = httpx.AsyncClient(base_url=url, limits=limits, timeout=600)
    headers = {"Content-Type": "application/json"} | (
        {"Authorization": f"Bearer {token}"} if token else {}
    )

    async def send(body: bytes) -> tuple[int, bytes]:
        answer = await client.post("/execute", content=body, headers=headers)
        return answer.status_code, answer.content

    def close() -> None:
        asyncio.get_running_loop().create_task(client.aclose())

    return send, close


async def _load(
    url: str, token: str, clients: int, per_client: int, kind: str, rate: float | None = None
) -> dict[str, Any]:
    """Closed loop (rate None): every client sends its next request as soon as the last is
    answered, all at once — the service's capacity, and by Little's law a latency of about
    clients / throughput. Open loop: the clients together offer `rate` requests/s, each at
    its scheduled instant, and latency counts from that instant (a request that waits for
    its client's previous answer is late, and that lateness is the service's)."""
    connect = _raw_connection if kind == "raw" else _httpx_connection
    run = f"bench{time.time_ns()}"
    warm_send, warm_close = await connect(url, token)
    for index in range(20):
        await warm_send(_decision(f"{run}-warm", 0, index))
    warm_close()
    connections = await asyncio.gather(*(connect(url, token) for _ in range(clients)))
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    statuses: Counter[str] = Counter()
    start = asyncio.Event()

    async def client(number: int, send: Send) -> None:
        await start.wait()
        for index in range(per_client):
            began = time.perf_counter()
            if rate is not None:
                began = opened + (index * clients + number) / rate
                await asyncio.sleep(max(0.0, began - time.perf_counter()))
            code, body = await send(_decision(run, number, index))
            latencies.append(time.perf_counter() - began)
            codes[code] += 1
            if code == 200:
                statuses[json.loads(body)["status"]] += 1

    tasks = [asyncio.create_task(client(n, send)) for n, (send, _) in enumerate(connections)]
    began = opened = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    for _, close in connections:
        close()
    p50, p95, p99 = np.percentile(np.array(latencies) * 1e3, [50, 95, 99])
    return {
        "offered_per_second": rate,
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(p50), 1),
        "p95_ms": round(float(p95), 1),
        "p99_ms": round(float(p99), 1),
        "http_status": {str(code): count for code, count in sorted(codes.items())},
        "execution_status": dict(sorted(statuses.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1_000, help="concurrent clients")
    parser.add_argument("--per-client", type=int, default=2, help="executions per client")
    parser.add_argument("--latency-ms", type=float, default=1.0, help="simulator one-way")
    parser.add_argument("--db", default="memory://", help="audit store URL for the server")
    parser.add_argument("--max-concurrent", type=int, default=64, help="executions at once")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument(
        "--rate",
        type=float,
        default=1_000.0,
        help="also measure open loop: the clients together offer this many requests/s",
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return

    from engine.api.keys import KeyStore, Role

    home = Path(tempfile.mkdtemp(prefix="arbitrex-api-load-"))
    keys = KeyStore(home / "keys.db")
    _, token = keys.create(Role.TRADER, "bench")
    keys.close()
    engine_port, bare_port = _free_port(), _free_port()
    serve = [
        sys.executable, "-m", "scenarios.cli", "serve", "--broker", "sim",
        "--db", args.db, "--keys", str(home / "keys.db"), "--port", str(engine_port),
        "--latency-ms", str(args.latency_ms), "--max-concurrent", str(args.max_concurrent),
        "--rate-limit", "1000000000", "--burst", "1000000000",
        "--no-access-log",  # as the bare endpoint: a log line per request is not the engine
    ]  # fmt: skip
    bare = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(bare_port)]
    results: dict[str, Any] = {
        "clients": args.clients,
        "executions_per_client": args.per_client,
        "client": args.client,
        "simulator_one_way_latency_ms": args.latency_ms,
        "db": args.db,
        "max_concurrent_executions": args.max_concurrent,
        "cpus": os.cpu_count(),
    }
    for name, command, port, key in (
        ("engine", serve, engine_port, token),
        ("bare_fastapi", bare, bare_port, ""),
    ):
        with _server(command, port, home / f"{name}.log") as (url, pid):
            load = (url, key, args.clients, args.per_client, args.client)
            results[name] = _measured(pid, _load(*load))
            results[f"{name}_open_loop"] = _measured(pid, _load(*load, rate=args.rate))
    results["bare_over_engine_throughput"] = round(
        results["bare_fastapi"]["requests_per_second"] / results["engine"]["requests_per_second"],
        2,
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
