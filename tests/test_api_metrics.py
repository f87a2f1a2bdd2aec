"""The metrics Prometheus scrapes: counters that only grow, histograms it can aggregate, every
series there from the start. The app runs in process (httpx's ASGI transport): thousands of
requests in seconds."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from engine.api import KeyStore, Role, create_app
from engine.core.config import ENGINE_VERSION
from engine.schemas import ExecutionRejectionReason, ExecutionStatus
from engine.store import open_database
from engine.store.base import StoreUnavailable
from scenarios.assembly import paper_trading_engine
from tests.api_support import UNLIMITED, approved, bearer, one_key_per_role

SYMBOLS = ("EURUSD", "USDJPY")


@dataclass
class InProcess:
    app: Any
    tokens: dict[Role, str]

    def run(self, *requests: tuple[str, str, dict[str, Any]], times: int = 1) -> list[Any]:
        """Send `requests` `times` over, in order, on one client; the last round's answers."""

        async def go() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                answers: list[httpx.Response] = []
                for _ in range(times):
                    answers = [await client.request(m, p, **kw) for m, p, kw in requests]
                return answers

        return asyncio.run(go())

    def repeat(self, method: str, path: str, times: int) -> None:
        """Send one request `times` times, one after the other, each answered 200."""

        async def go() -> None:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                for _ in range(times):
                    assert (await client.request(method, path)).status_code == 200

        asyncio.run(go())

    def scrape(self, **headers: str) -> httpx.Response:
        auditor = bearer(self.tokens[Role.AUDITOR]) | headers
        return self.run(("GET", "/metrics", {"headers": auditor}))[0]

    def samples(self) -> list[Sample]:
        text = self.scrape().text
        return [s for family in text_string_to_metric_families(text) for s in family.samples]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[InProcess]:
    engine, _venue = paper_trading_engine(3, open_database("memory://"), 0.2)
    keys = KeyStore(tmp_path / "keys.db")
    tokens = one_key_per_role(keys)
    yield InProcess(create_app(engine, keys, UNLIMITED, symbols=SYMBOLS), tokens)
    engine.database.close()


def value(samples: list[Sample], name: str, **labels: str) -> float:
    [found] = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return found


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile (promql/quantile.go) over cumulative (le, count)
    pairs: find the bucket the rank falls in and interpolate linearly inside it."""
    buckets = sorted(buckets)
    assert buckets[-1][0] == math.inf
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    lower, below = (0.0, 0.0) if b == 0 else buckets[b - 1]
    upper, count = buckets[b]
    return lower + (upper - lower) * (rank - below) / (count - below)


def test_after_10100_health_checks_500_more_grow_the_request_counter_by_exactly_500(served):
    served.repeat("GET", "/health", 10_100)
    before = served.samples()
    served.repeat("GET", "/health", 500)
    after = served.samples()

    for name in ("arbitrex_http_requests_total", "arbitrex_http_request_duration_seconds_count"):
        assert value(before, name, route="/health") == 10_100
        assert value(after, name, route="/health") - value(before, name, route="/health") == 500
    assert value(after, "arbitrex_broker_probes_total") == 10_600


def test_histogram_quantile_over_the_exported_fill_time_buckets_answers_as_the_json_view_does(
    served,
):
    trader = {"headers": bearer(served.tokens[Role.TRADER])}
    executions = [("POST", "/execute", trader | {"json": approved(f"q-{i}")}) for i in range(20)]
    assert all(answer.status_code == 200 for answer in served.run(*executions))

    samples = served.samples()
    buckets = [
        (float(s.labels["le"]), s.value)
        for s in samples
        if s.name == "arbitrex_fill_time_seconds_bucket"
    ]
    p95 = histogram_quantile(0.95, buckets)
    report = served.run(("GET", "/metrics/json", {"headers": bearer(served.tokens[Role.AUDITOR])}))[
        0
    ].json()

    assert value(samples, "arbitrex_fill_time_seconds_count") == 20
    assert 0 < p95 <= 60 and not math.isnan(p95)
    assert report["fill_time_seconds"]["p95"] == pytest.approx(p95)
    assert value(samples, "arbitrex_executions_total", status="FILLED", symbol="EURUSD") == 20
    net_pips = value(samples, "arbitrex_slippage_adverse_pips_total") - value(
        samples, "arbitrex_slippage_favourable_pips_total"
    )
    assert report["slippage_pips"]["mean"] == pytest.approx(net_pips / 20)


def test_every_counter_exists_at_zero_before_the_first_event(served):
    response = served.scrape()
    families = list(text_string_to_metric_families(response.text))
    counters = {f.name: f for f in families if f.type == "counter" and f.name.startswith("arb")}
    samples = [s for f in families for s in f.samples]
    routes = {s.labels["route"] for s in counters["arbitrex_http_requests"].samples}

    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert set(counters) >= {
        "arbitrex_executions",
        "arbitrex_rejections",
        "arbitrex_http_requests",
        "arbitrex_http_responses",
        "arbitrex_broker_probes",
        "arbitrex_broker_probes_connected",
        "arbitrex_slippage_bound_breaches",
        "arbitrex_unprotected_positions",
        "arbitrex_child_orders",
    }
    for family in counters.values():
        totals = [s for s in family.samples if s.name.endswith("_total")]
        assert totals and all(s.value == 0 for s in totals), family.name
    assert {
        (s.labels["status"], s.labels["symbol"])
        for s in counters["arbitrex_executions"].samples
        if s.name.endswith("_total")
    } == {(status.value, symbol) for status in ExecutionStatus for symbol in SYMBOLS}
    assert {s.labels["reason"] for s in counters["arbitrex_rejections"].samples} == {
        reason.value for reason in ExecutionRejectionReason
    }
    assert routes >= {"/health", "/execute", "/metrics", "/metrics/json", "/history"}
    assert value(samples, "arbitrex_db_operation_duration_seconds_count", operation="append") == 0
    assert value(samples, "arbitrex_slippage_pips_count") == 0


def test_the_text_carries_build_info_process_metrics_and_the_state_gauges(served):
    samples = served.samples()
    build = next(s for s in samples if s.name == "arbitrex_build_info")

    assert build.value == 1 and build.labels["version"] == ENGINE_VERSION
    assert build.labels["python"].count(".") == 2
    assert any(s.name == "process_cpu_seconds_total" for s in samples)
    assert any(s.name == "python_info" for s in samples)
    assert value(samples, "arbitrex_trading_halted") == 0
    assert value(samples, "arbitrex_audit_store_up") == 1
    assert value(samples, "arbitrex_unresolved_executions") == 0


def test_the_halted_and_broker_gauges_follow_the_kill_switch_and_the_health_checks(served):
    admin = {"headers": bearer(served.tokens[Role.ADMIN])}
    served.run(("POST", "/halt", admin | {"json": {"reason": "drill"}}), ("GET", "/health", {}))

    samples = served.samples()

    assert value(samples, "arbitrex_trading_halted") == 1
    assert value(samples, "arbitrex_broker_connected") == 1


def test_the_audit_store_gauge_falls_to_zero_when_the_store_is_unreachable_and_comes_back(
    served, monkeypatch
):
    store = served.app.state.service.engine.database.inner

    def unreachable() -> None:
        raise StoreUnavailable("down for the test")

    monkeypatch.setattr(store, "ping", unreachable)
    [down] = served.run(("GET", "/health", {}))
    during = value(served.samples(), "arbitrex_audit_store_up")
    monkeypatch.undo()
    served.run(("GET", "/health", {}))

    assert down.status_code == 503 and during == 0
    assert value(served.samples(), "arbitrex_audit_store_up") == 1


def test_metrics_asked_for_as_json_answer_the_json_view_of_the_same_instruments(served):
    served.run(("GET", "/health", {}), times=3)

    as_json = served.scrape(Accept="application/json")
    as_prometheus = served.scrape(Accept="text/plain;version=0.0.4;q=0.9,*/*;q=0.1")

    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json()["api_requests_seconds"]["GET /health"]["count"] == 3
    assert as_prometheus.headers["content-type"] == CONTENT_TYPE_LATEST
