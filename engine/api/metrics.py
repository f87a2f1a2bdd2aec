"""The service's metrics: one report, served as JSON and in Prometheus' text format.

Both formats are rendered from the same `MetricsReport`, so they never disagree. Execution
quality comes from the engine's running metrics (since this engine started); the service
adds request timings, audit-store timings and broker probes, all in bounded memory.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine.api.schemas import BrokerUptime, MetricsReport
from engine.core.events import ExecutionEvent
from engine.core.lifecycle import Execution
from engine.engine import ExecutionEngine
from engine.metrics import Distribution, MetricsSummary
from engine.schemas import ExecutionLog, ExecutionRejectionReason, ExecutionStatus
from engine.store.base import ControlEvent, ExecutionDatabase

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

    def append_batch(self, events: Sequence[ExecutionEvent]) -> None:
        with self._timings.timing("append"):
            self.inner.append_batch(events)

    def events(self, execution_id: str) -> Sequence[ExecutionEvent]:
        with self._timings.timing("events"):
            return self.inner.events(execution_id)

    def execution_ids(self) -> Iterable[str]:
        with self._timings.timing("execution_ids"):
            return self.inner.execution_ids()

    def append_control(self, event: ControlEvent) -> None:
        with self._timings.timing("append_control"):
            self.inner.append_control(event)

    def control_events(self) -> Sequence[ControlEvent]:
        with self._timings.timing("control_events"):
            return self.inner.control_events()

    def ping(self) -> None:
        with self._timings.timing("ping"):
            self.inner.ping()

    def get_execution(self, execution_id: str) -> Execution | None:
        with self._timings.timing("get_execution"):
            return self.inner.get_execution(execution_id)

    def get_execution_log(self, execution_id: str) -> ExecutionLog | None:
        with self._timings.timing("get_execution_log"):
            return self.inner.get_execution_log(execution_id)

    def history(
        self,
        symbol: str | None = None,
        status: ExecutionStatus | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExecutionLog]:
        with self._timings.timing("history"):
            return self.inner.history(symbol, status, start, end, limit, offset)

    def non_terminal(self) -> list[str]:
        with self._timings.timing("non_terminal"):
            return self.inner.non_terminal()

    def export_audit_trail(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        with self._timings.timing("export_audit_trail"):
            return self.inner.export_audit_trail(start, end)

    def metrics(self, start: datetime | None = None, end: datetime | None = None) -> MetricsSummary:
        with self._timings.timing("metrics"):
            return self.inner.metrics(start, end)

    def hold_lease(self, instance_id: str) -> None:
        self.inner.hold_lease(instance_id)

    def release_lease(self, instance_id: str) -> None:
        self.inner.release_lease(instance_id)

    def lease_alive(self, instance_id: str) -> bool:
        return self.inner.lease_alive(instance_id)

    def flush(self) -> None:
        with self._timings.timing("flush"):
            self.inner.flush()

    def close(self) -> None:
        self.inner.close()


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
