"""The service's metrics: one report, served as JSON and in Prometheus' text format.

Both formats are rendered from the same `MetricsReport`, so they never disagree. Execution
quality comes from the engine's running metrics (since this engine started); the service
adds request timings, audit-store timings and broker probes, all in bounded memory.
"""

from __future__ import annotations

import threading
import time
from abc import update_abstractmethods
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api.schemas import BrokerUptime, MetricsReport
from engine.engine import ExecutionEngine
from engine.metrics import Distribution
from engine.schemas import ExecutionRejectionReason
from engine.store.base import ExecutionDatabase

_NETWORK_REASONS = (
    ExecutionRejectionReason.NETWORK_ERROR.value,
    ExecutionRejectionReason.OUTCOME_UNKNOWN.value,
)
_QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))


class Timings:
    """Durations by name (a route, a store operation): the most recent `window` of each."""

    def __init__(self, window: int = 10_000) -> None:
        self._window = window
        self._samples: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def observe(self, name: str, seconds: float) -> None:
        with self._lock:
            samples = self._samples.get(name)
            if samples is None:
                samples = self._samples[name] = deque(maxlen=self._window)
            samples.append(seconds)

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(name, time.perf_counter() - started)

    def summary(self) -> dict[str, Distribution]:
        with self._lock:
            copies = {name: list(samples) for name, samples in self._samples.items()}
        return {name: Distribution.of(samples) for name, samples in sorted(copies.items())}


class RequestObserver:
    """ASGI middleware: times every request by route template and counts responses by
    status code."""

    def __init__(self, app: ASGIApp, timings: Timings, responses: Counter[str]) -> None:
        self.app = app
        self.timings = timings
        self.responses = responses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(unmatched)"
            self.timings.observe(f"{scope['method']} {route}", time.perf_counter() - started)
            self.responses[str(status)] += 1


class BrokerProbes:
    """How often the broker was found connected: by health calls and the periodic probe."""

    def __init__(self) -> None:
        self._probes = 0
        self._connected = 0
        self._lock = threading.Lock()

    def record(self, connected: bool) -> None:
        with self._lock:
            self._probes += 1
            self._connected += connected

    def uptime(self) -> BrokerUptime:
        with self._lock:
            probes, connected = self._probes, self._connected
        return BrokerUptime(
            probes=probes, connected=connected, uptime=connected / probes if probes else None
        )


# How TimedDatabase treats each public method of the store interface; every other one is
# forwarded to the wrapped store and timed under its own name.
# One operation, "append", whether of one event or of a batch.
_OPERATION_NAMES = {"append_batch": "append"}
# Bookkeeping around the store rather than its operations: forwarded, not timed.
_UNTIMED = frozenset({"hold_lease", "release_lease", "lease_alive", "close"})
# Built by ExecutionDatabase itself from the timed methods, so each call is timed once, as
# the operations it makes: `request` as "events", `iter_audit_trail` as "export_audit_trail".
_COMPOSED = frozenset({"append", "request", "executions", "iter_audit_trail"})


def _forward_every_operation(cls: type[TimedDatabase]) -> type[TimedDatabase]:
    """Give `cls` a forwarding method for each public method of ExecutionDatabase."""
    for name, member in vars(ExecutionDatabase).items():
        if name.startswith("_") or not callable(member) or name in _COMPOSED:
            continue
        operation = None if name in _UNTIMED else _OPERATION_NAMES.get(name, name)
        setattr(cls, name, _forwarding(name, operation, member))
    update_abstractmethods(cls)
    return cls


def _forwarding(name: str, operation: str | None, member: Any) -> Callable[..., Any]:
    """The method `name` of the wrapped store; timed as `operation` unless that is None."""

    def forward(self: TimedDatabase, /, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.inner, name)
        if operation is None:
            return method(*args, **kwargs)
        with self._timings.timing(operation):
            return method(*args, **kwargs)

    forward.__name__, forward.__qualname__ = name, f"TimedDatabase.{name}"
    forward.__doc__ = member.__doc__
    return forward


@_forward_every_operation
class TimedDatabase(ExecutionDatabase):
    """The engine's audit store, with every call timed; otherwise the very same store.

    Methods a particular store adds (a SQL store's `chain_records`, its `durability`) are
    passed through untimed, so the audit verifier and exports see the store they expect.
    """

    def __init__(self, inner: ExecutionDatabase, timings: Timings) -> None:
        self.inner = inner
        self._timings = timings

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (copying, unpickling): no store to ask
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"TimedDatabase({self.inner!r})"


def metrics_report(
    engine: ExecutionEngine,
    probes: BrokerProbes,
    requests: Timings,
    responses: Counter[str],
    store: Timings,
) -> MetricsReport:
    summary = engine.metrics.summary()
    total = summary.executions
    reasons = summary.rejections_by_reason
    network = sum(reasons.get(reason, 0) for reason in _NETWORK_REASONS)
    timeouts = reasons.get(ExecutionRejectionReason.ORDER_TIMEOUT.value, 0)
    return MetricsReport(
        executions=total,
        success_rate=summary.success_rate,
        partial_fill_rate=summary.partial_fill_rate,
        network_error_rate=network / total if total else None,
        order_timeout_rate=timeouts / total if total else None,
        slippage_pips=summary.slippage_pips,
        fill_time_seconds=summary.fill_time_seconds,
        slippage_bound_breaches=summary.slippage_bound_breaches,
        unprotected_positions=summary.unprotected_positions,
        child_orders=summary.child_orders,
        rejections_by_reason=dict(sorted(reasons.items())),
        executions_by_status=dict(sorted(summary.by_status.items())),
        executions_by_symbol=dict(sorted(summary.by_symbol.items())),
        broker=probes.uptime(),
        trading_halted=engine.halted,
        api_requests_seconds=requests.summary(),
        api_responses_by_status=dict(sorted(responses.items())),
        db_operations_seconds=store.summary(),
    )


def prometheus_text(report: MetricsReport) -> bytes:
    """The report in Prometheus' text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReportCollector(report))
    return generate_latest(registry)


class _ReportCollector:
    def __init__(self, report: MetricsReport) -> None:
        self._report = report

    def collect(self) -> Iterator[Metric]:
        report = self._report
        yield _counter(
            "executions", "Executions by final status", "status", report.executions_by_status
        )
        yield _counter(
            "executions_by_symbol", "Executions by symbol", "symbol", report.executions_by_symbol
        )
        yield _counter(
            "rejections", "Executions not filled, by reason", "reason", report.rejections_by_reason
        )
        for name, value in (
            ("success_rate", report.success_rate),
            ("partial_fill_rate", report.partial_fill_rate),
            ("network_error_rate", report.network_error_rate),
            ("order_timeout_rate", report.order_timeout_rate),
            ("broker_uptime_ratio", report.broker.uptime),
            ("trading_halted", float(report.trading_halted)),
        ):
            yield GaugeMetricFamily(
                f"arbitrex_{name}", name.replace("_", " "), value=_number(value)
            )
        yield CounterMetricFamily(
            "arbitrex_broker_probes", "Broker connection checks", value=report.broker.probes
        )
        yield CounterMetricFamily(
            "arbitrex_slippage_bound_breaches",
            "Fills worse than the decision's max_slippage_pips",
            value=report.slippage_bound_breaches,
        )
        yield CounterMetricFamily(
            "arbitrex_unprotected_positions",
            "Positions left without the stop-loss or take-profit upstream asked for",
            value=report.unprotected_positions,
        )
        yield CounterMetricFamily(
            "arbitrex_child_orders",
            "Orders sent for the remainders of partial fills",
            value=report.child_orders,
        )
        yield CounterMetricFamily(
            "arbitrex_broker_probes_connected",
            "Broker connection checks that found it connected",
            value=report.broker.connected,
        )
        yield _summary(
            "slippage_pips", "Signed slippage, pips, + adverse", {(): report.slippage_pips}
        )
        yield _summary(
            "fill_time_seconds", "First submission to last fill", {(): report.fill_time_seconds}
        )
        yield _summary(
            "http_request_duration_seconds",
            "API request durations",
            {
                (("method", route.partition(" ")[0]), ("route", route.partition(" ")[2])): dist
                for route, dist in report.api_requests_seconds.items()
            },
        )
        yield _counter(
            "http_responses", "API responses by status code", "code", report.api_responses_by_status
        )
        yield _summary(
            "db_operation_duration_seconds",
            "Audit-store call durations",
            {(("operation", op),): dist for op, dist in report.db_operations_seconds.items()},
        )


def _counter(name: str, doc: str, label: str, counts: dict[str, int]) -> Metric:
    family = CounterMetricFamily(f"arbitrex_{name}", doc, labels=[label])
    for value, count in counts.items():
        family.add_metric([value], count)
    return family


def _summary(
    name: str, doc: str, series: dict[tuple[tuple[str, str], ...], Distribution]
) -> Metric:
    """Pre-computed quantiles, exposed the way a Prometheus summary exposes them."""
    full = f"arbitrex_{name}"
    metric = Metric(full, doc, "summary")
    for labels, dist in series.items():
        base = dict(labels)
        for quantile, field in _QUANTILES:
            value = getattr(dist, field)
            if value is not None:
                metric.add_sample(full, base | {"quantile": quantile}, value)
        metric.add_sample(f"{full}_count", base, dist.count)
        metric.add_sample(f"{full}_sum", base, (dist.mean or 0.0) * dist.count)
    return metric


def _number(value: float | None) -> float:
    return float("nan") if value is None else value
