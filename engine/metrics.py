"""Stage 8: running execution-quality metrics, in bounded memory.

Counters are exact over the engine's life; distributions (slippage, fill time) keep the
most recent `window` samples so that memory stays flat however long the engine runs.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict

from engine.core.lifecycle import Execution
from engine.schemas import ExecutionStatus

_SUCCESS = (ExecutionStatus.FILLED, ExecutionStatus.PARTIALLY_FILLED)


class Distribution(BaseModel):
    model_config = ConfigDict(frozen=True)

    count: int
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, samples: deque[float] | list[float]) -> Distribution:
        if not samples:
            return cls(count=0, mean=None, p50=None, p95=None, p99=None)
        values = np.fromiter(samples, dtype=float, count=len(samples))
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return cls(
            count=len(values),
            mean=float(values.mean()),
            p50=float(p50),
            p95=float(p95),
            p99=float(p99),
        )


class MetricsSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    executions: int
    success_rate: float | None
    partial_fill_rate: float | None
    by_status: dict[str, int]
    by_symbol: dict[str, int]
    rejections_by_reason: dict[str, int]
    slippage_pips: Distribution
    fill_time_seconds: Distribution
    slippage_bound_breaches: int = 0
    # Positions left without the stops upstream asked for (the broker refused or could not
    # be asked): each one is a risk an operator must look at.
    unprotected_positions: int = 0
    child_orders: int = 0  # orders sent for the remainders of partial fills


class ExecutionMetrics:
    def __init__(self, window: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._by_status: Counter[str] = Counter()
        self._by_symbol: Counter[str] = Counter()
        self._by_reason: Counter[str] = Counter()
        self._slippage: deque[float] = deque(maxlen=window)
        self._fill_time: deque[float] = deque(maxlen=window)
        self._breaches = 0
        self._unprotected = 0
        self._children = 0
        # One more reader of every closed execution (the API's Prometheus instruments): a
        # single slot, so an engine served by a new app stops feeding the old one.
        self.listener: Callable[[Execution], None] | None = None

    def observe(self, execution: Execution) -> None:
        status = execution.status
        assert status is not None
        with self._lock:
            self._by_status[status.value] += 1
            if execution.request is not None and execution.request.symbol is not None:
                self._by_symbol[execution.request.symbol] += 1
            if execution.outcome_reason is not None:
                self._by_reason[execution.outcome_reason.value] += 1
            if execution.slippage_pips is not None:
                self._slippage.append(execution.slippage_pips)
            if (fill_time := execution.fill_time_seconds) is not None:
                self._fill_time.append(fill_time)
            self._breaches += execution.slippage_bound_breached
            self._unprotected += len(execution.unprotected)
            self._children += execution.child_orders
        if self.listener is not None:
            self.listener(execution)

    def summary(self) -> MetricsSummary:
        with self._lock:
            total = sum(self._by_status.values())
            success = sum(self._by_status[s.value] for s in _SUCCESS)
            partial = self._by_status[ExecutionStatus.PARTIALLY_FILLED.value]
            return MetricsSummary(
                executions=total,
                success_rate=success / total if total else None,
                partial_fill_rate=partial / total if total else None,
                by_status=dict(self._by_status),
                by_symbol=dict(self._by_symbol),
                rejections_by_reason=dict(self._by_reason),
                slippage_pips=Distribution.of(self._slippage),
                fill_time_seconds=Distribution.of(self._fill_time),
                slippage_bound_breaches=self._breaches,
                unprotected_positions=self._unprotected,
                child_orders=self._children,
            )
