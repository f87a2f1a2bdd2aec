"""The JSON view of the metrics, for people: read back from the Prometheus instruments.

No second bookkeeping: counts are the counters' values, means are a histogram's sum over
its count, and p50/p95/p99 are estimated from its buckets exactly as Prometheus'
`histogram_quantile` estimates them, so this page and a Grafana panel agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from prometheus_client import Counter, Histogram

from engine.api.metrics import ServiceMetrics
from engine.api.schemas import BrokerUptime, MetricsReport
from engine.engine import ExecutionEngine
from engine.metrics import Distribution
from engine.schemas import ExecutionRejectionReason, ExecutionStatus

_SUCCESS = (ExecutionStatus.FILLED.value, ExecutionStatus.PARTIALLY_FILLED.value)
_NETWORK_REASONS = (
    ExecutionRejectionReason.NETWORK_ERROR.value,
    ExecutionRejectionReason.OUTCOME_UNKNOWN.value,
)


def metrics_report(engine: ExecutionEngine, metrics: ServiceMetrics) -> MetricsReport:
    by_status: dict[str, int] = defaultdict(int)
    by_symbol: dict[str, int] = defaultdict(int)
    for labels, value in _counts(metrics.executions):
        by_status[labels["status"]] += value
        by_symbol[labels["symbol"]] += value
    total = sum(by_status.values())
    reasons = {labels["reason"]: value for labels, value in _counts(metrics.rejections)}
    network = sum(reasons.get(reason, 0) for reason in _NETWORK_REASONS)
    timeouts = reasons.get(ExecutionRejectionReason.ORDER_TIMEOUT.value, 0)
    slippage = _distributions(metrics.slippage, ())[()]
    if slippage.count:  # the histogram has no _sum (buckets below 0): the two counters do
        net = _sum(metrics.slippage_adverse) - _sum(metrics.slippage_favourable)
        slippage = slippage.model_copy(update={"mean": net / slippage.count})
    probes, connected = _total(metrics.broker_probes), _total(metrics.broker_probes_connected)
    return MetricsReport(
        executions=total,
        success_rate=sum(by_status.get(s, 0) for s in _SUCCESS) / total if total else None,
        partial_fill_rate=(
            by_status.get(ExecutionStatus.PARTIALLY_FILLED.value, 0) / total if total else None
        ),
        network_error_rate=network / total if total else None,
        order_timeout_rate=timeouts / total if total else None,
        slippage_pips=slippage,
        fill_time_seconds=_distributions(metrics.fill_time, ())[()],
        slippage_bound_breaches=_total(metrics.slippage_bound_breaches),
        unprotected_positions=_total(metrics.unprotected_positions),
        child_orders=_total(metrics.child_orders),
        # Zeros left out: the JSON view is for people; Prometheus has every series.
        rejections_by_reason=_nonzero(reasons),
        executions_by_status=_nonzero(by_status),
        executions_by_symbol=_nonzero(by_symbol),
        broker=BrokerUptime(
            probes=probes, connected=connected, uptime=connected / probes if probes else None
        ),
        trading_halted=engine.halted,
        api_requests_seconds={
            f"{method} {route}": dist
            for (method, route), dist in _distributions(
                metrics.http_duration, ("method", "route")
            ).items()
            if dist.count
        },
        api_responses_by_status=_nonzero(
            {labels["code"]: value for labels, value in _counts(metrics.http_responses)}
        ),
        db_operations_seconds={
            operation: dist
            for (operation,), dist in _distributions(metrics.store_duration, ("operation",)).items()
            if dist.count
        },
    )


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) pairs ending at
    +Inf: linear interpolation inside the bucket the rank falls in. None without data."""
    if len(buckets) < 2 or not buckets[-1][1]:
        return None
    rank = q * buckets[-1][1]
    b = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    if b == len(buckets) - 1:  # in the +Inf bucket: the highest finite bound is all we know
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return start + (end - start) * (rank / count)


def _counts(counter: Counter) -> list[tuple[dict[str, str], int]]:
    return [
        (sample.labels, int(sample.value))
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    ]


def _total(counter: Counter) -> int:
    return sum(value for _, value in _counts(counter))


def _sum(counter: Counter) -> float:
    """A counter's value, not rounded (a sum of pips)."""
    return sum(
        sample.value
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in sorted(counts.items()) if value}


def _distributions(
    histogram: Histogram, label_names: tuple[str, ...]
) -> dict[tuple[str, ...], Distribution]:
    """One Distribution per label set of `histogram`, from its exported samples."""
    buckets: dict[tuple[str, ...], list[tuple[float, float]]] = defaultdict(list)
    sums: dict[tuple[str, ...], float] = defaultdict(float)
    counts: dict[tuple[str, ...], int] = defaultdict(int)
    for family in histogram.collect():
        for sample in family.samples:
            key = tuple(sample.labels[name] for name in label_names)
            if sample.name.endswith("_bucket"):
                buckets[key].append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_sum"):
                sums[key] = sample.value
            elif sample.name.endswith("_count"):
                counts[key] = int(sample.value)
    if not label_names:
        buckets.setdefault((), [])
    answer = {}
    for key, series in buckets.items():
        series.sort(key=lambda pair: pair[0])
        count = counts.get(key, 0)
        p50, p95, p99 = (bucket_quantile(q, series) for q in (0.5, 0.95, 0.99))
        answer[key] = Distribution(
            count=count,
            mean=sums[key] / count if count and key in sums else None,
            p50=p50,
            p95=p95,
            p99=p99,
        )
    return answer
