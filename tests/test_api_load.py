"""A thousand concurrent executions over HTTP against the paper-trading simulator.

The server is a real uvicorn listening on 127.0.0.1, run in a thread of this process so
that the simulated venue's own ledger can be read afterwards: every execution answered,
none sent twice. Throughput and latency are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import numpy as np
import pytest

from engine.api import Role
from tests.api_support import UNLIMITED, approved, paper_api

EXECUTIONS = 1_000
RETRIED = 100
# 100 connections in all, over 20 clients: one httpx client (httpcore 1.0) slows to about
# 100 requests/s with a large pool and a long queue, even in front of a bare endpoint,
# which would measure the client rather than the service.
CLIENTS, CONNECTIONS_EACH = 20, 5


async def _send_all(
    url: str, headers: dict[str, str], decisions: list[dict[str, Any]]
) -> list[tuple[httpx.Response, float]]:
    limits = httpx.Limits(
        max_connections=CONNECTIONS_EACH, max_keepalive_connections=CONNECTIONS_EACH
    )
    clients = [httpx.AsyncClient(base_url=url, limits=limits, timeout=300) for _ in range(CLIENTS)]

    async def one(index: int, rpm: dict[str, Any]) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        answer = await clients[index % CLIENTS].post("/execute", json=rpm, headers=headers)
        return answer, time.perf_counter() - started

    try:
        return await asyncio.gather(*(one(i, rpm) for i, rpm in enumerate(decisions)))
    finally:
        for client in clients:
            await client.aclose()


@pytest.mark.slow
def test_a_thousand_concurrent_executions_are_all_answered_and_none_is_sent_twice(tmp_path, capsys):
    # Alternate sides so the netting account's margin never runs out mid-test.
    decisions = [
        approved(f"load-{i}", direction=1 if i % 2 else -1, units=10_000) for i in range(EXECUTIONS)
    ]
    settings = UNLIMITED.model_copy(update={"max_concurrent_executions": 64})
    with paper_api(tmp_path, settings=settings, latency_ms=1.0) as paper:
        trader = paper.as_role(Role.TRADER)
        started = time.perf_counter()
        answered = asyncio.run(_send_all(paper.url, trader, decisions))
        elapsed = time.perf_counter() - started
        retried = asyncio.run(_send_all(paper.url, trader, decisions[:RETRIED]))
        logs = [
            paper.engine.database.get_execution_log(answer.json()["execution_id"])
            for answer, _ in answered
        ]
        ledger = paper.orders_at_the_broker()

    assert [answer.status_code for answer, _ in answered] == [200] * EXECUTIONS
    ids = [answer.json()["execution_id"] for answer, _ in answered]
    assert len(set(ids)) == EXECUTIONS
    assert [answer.json()["execution_id"] for answer, _ in retried] == ids[:RETRIED]
    assert all(count == 1 for count in ledger.values()), "an order reached the broker twice"
    sent = {log.client_order_id for log in logs if log is not None and log.broker_order_id}
    assert set(ledger) == sent
    statuses = [answer.json()["status"] for answer, _ in answered]
    latencies = np.array([seconds for _, seconds in answered])
    with capsys.disabled():
        print(
            f"\n{EXECUTIONS} concurrent executions over HTTP "
            f"({CLIENTS * CONNECTIONS_EACH} connections): "
            f"{EXECUTIONS / elapsed:,.0f} executions/s, "
            f"p50 {np.percentile(latencies, 50) * 1e3:.0f} ms, "
            f"p99 {np.percentile(latencies, 99) * 1e3:.0f} ms; "
            f"{statuses.count('FILLED')} filled, {len(ledger)} broker orders"
        )
