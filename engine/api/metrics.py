"""The service's metrics: prometheus_client instruments on a registry of the app's own.

Counters only grow, and every label value known in advance (statuses x symbols, rejection
reasons, routes, store operations) exists at zero from the start, so `rate()` and
`increase()` see the first event. Durations and slippage are histograms with buckets chosen
for each quantity, so Prometheus can aggregate them and answer `histogram_quantile`. The
JSON view (`engine.api.metrics_json`) is read back from these same instruments.

Each app has its own CollectorRegistry rather than prometheus_client's global one: several
apps (tests, a paper and a live server) may live in one process.
"""

from __future__ import annotations

import platform
import time
from abc import update_abstractmethods
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.core.config import ENGINE_VERSION
from engine.core.lifecycle import Execution
from engine.engine import ExecutionEngine
from engine.schemas import ExecutionRejectionReason, ExecutionStatus
from engine.store.base import ExecutionDatabase, StoreUnavailable

# Signed pips, + adverse: fine steps near 0 where most fills land, coarse out to +-5 where
# the alert (mean over 2 pips) and the slippage bands live.
SLIPPAGE_PIPS_BUCKETS = (
    -5.0, -3.0, -2.0, -1.0, -0.5, -0.25, -0.1, 0.0,
    0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0,
)  # fmt: skip
# First submission to last fill: milliseconds on an ECN, seconds on a slow dealing desk,
# up to the order timeout (60 s by default); 1 s is the p95 target, so buckets surround it.
FILL_TIME_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
# API requests: a read answers in a millisecond, an execution waits on the broker.
HTTP_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
# Audit-store calls: tens of microseconds in memory, milliseconds on PostgreSQL's fsync.
STORE_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5,
)  # fmt: skip

UNMATCHED_ROUTE = "(unmatched)"
# Response codes the API declares; others get their series on first use.
KNOWN_CODES = ("200", "201", "400", "401", "403", "404", "409", "413", "422", "429", "500", "503")


class ServiceMetrics:
    """Every instrument the service exports, on `registry`."""

    def __init__(self, engine: ExecutionEngine, symbols: Iterable[str] = ()) -> None:
        self.registry = registry = CollectorRegistry()
        self.executions = Counter(
            "arbitrex_executions",
            "Executions closed, by final status and symbol",
            ["status", "symbol"],
            registry=registry,
        )
        self.rejections = Counter(
            "arbitrex_rejections",
            "Executions not filled, by reason",
            ["reason"],
            registry=registry,
        )
        self.slippage_bound_breaches = Counter(
            "arbitrex_slippage_bound_breaches",
            "Fills worse than the decision's max_slippage_pips",
            registry=registry,
        )
        self.unprotected_positions = Counter(
            "arbitrex_unprotected_positions",
            "Positions left without the stop-loss or take-profit upstream asked for",
            registry=registry,
        )
        self.child_orders = Counter(
            "arbitrex_child_orders",
            "Orders sent for the remainders of partial fills",
            registry=registry,
        )
        self.slippage = Histogram(
            "arbitrex_slippage_pips",
            "Signed slippage of filled executions, pips, + adverse",
            buckets=SLIPPAGE_PIPS_BUCKETS,
            registry=registry,
        )
        # A histogram with buckets below 0 exports no _sum (it could fall, and rate() would
        # read a fall as a reset): the signed sum is kept as two counters that only grow.
        self.slippage_adverse = Counter(
            "arbitrex_slippage_adverse_pips",
            "Sum of adverse (positive) slippage, pips",
            registry=registry,
        )
        self.slippage_favourable = Counter(
            "arbitrex_slippage_favourable_pips",
            "Sum of favourable (negative) slippage, pips, as a positive number",
            registry=registry,
        )
        self.fill_time = Histogram(
            "arbitrex_fill_time_seconds",
            "First submission to last fill",
            buckets=FILL_TIME_BUCKETS,
            registry=registry,
        )
        self.http_requests = Counter(
            "arbitrex_http_requests",
            "API requests answered, by method and route template",
            ["method", "route"],
            registry=registry,
        )
        self.http_responses = Counter(
            "arbitrex_http_responses",
            "API responses by status code",
            ["code"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "arbitrex_http_request_duration_seconds",
            "API request durations, by method and route template",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.store_duration = Histogram(
            "arbitrex_db_operation_duration_seconds",
            "Audit-store call durations, by operation",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.broker_probes = Counter(
            "arbitrex_broker_probes",
            "Broker connection checks (health calls and periodic probes)",
            registry=registry,
        )
        self.broker_probes_connected = Counter(
            "arbitrex_broker_probes_connected",
            "Broker connection checks that found it connected",
            registry=registry,
        )
        self.broker_connected = Gauge(
            "arbitrex_broker_connected",
            "1 if the last check found the broker connected",
            registry=registry,
        )
        self.store_up = Gauge(
            "arbitrex_audit_store_up",
            "1 if the last audit-store call reached the store",
            registry=registry,
        )
        self.trading_halted = Gauge(
            "arbitrex_trading_halted", "1 while the kill switch is on", registry=registry
        )
        self.trading_halted.set_function(lambda: float(engine.halted))
        self.unresolved = Gauge(
            "arbitrex_unresolved_executions",
            "Executions this server closed UNRESOLVED (reply lost) and has not settled since",
            registry=registry,
        )
        Info("arbitrex_build", "The engine's version and Python's", registry=registry).info(
            {"version": ENGINE_VERSION, "python": platform.python_version()}
        )
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)

        self._unresolved_ids: set[str] = set()
        # Label children resolved once per label set: the request path skips labels()'s
        # validation and lock for every call after the first.
        self._routes: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._codes: dict[int, Any] = {}
        self._executions: dict[tuple[str, str], Any] = {}
        self._rejections: dict[str, Any] = {}
        self._store_up: bool | None = None
        self._operations: dict[str, Any] = {}
        for reason in ExecutionRejectionReason:
            self._rejection(reason.value)
        for symbol in sorted(set(symbols) | set(engine.config.max_spread_pips)):
            self.known_symbol(symbol)
        for code in KNOWN_CODES:
            self._code(int(code))
        for operation in STORE_OPERATIONS:
            self.operation(operation)
        engine.metrics.listener = self.observe_execution

    # Known label values, at zero ------------------------------------------------------

    def known_symbol(self, symbol: str) -> None:
        for status in ExecutionStatus:
            self._execution(status.value, symbol)

    def known_routes(self, routes: Iterable[BaseRoute]) -> None:
        """Series at zero for each method and route template the app serves (HEAD, which
        Starlette adds to GET routes, is left to its first use)."""
        for route in routes:
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    self._route(method, getattr(route, "path", UNMATCHED_ROUTE))
        self._route("GET", UNMATCHED_ROUTE)

    def _route(self, method: str, route: str) -> tuple[Any, Any]:
        children = self._routes.get((method, route))
        if children is None:
            children = self._routes[(method, route)] = (
                self.http_requests.labels(method, route),
                self.http_duration.labels(method, route),
            )
        return children

    def _execution(self, status: str, symbol: str) -> Any:
        child = self._executions.get((status, symbol))
        if child is None:
            child = self._executions[(status, symbol)] = self.executions.labels(status, symbol)
        return child

    def _rejection(self, reason: str) -> Any:
        child = self._rejections.get(reason)
        if child is None:
            child = self._rejections[reason] = self.rejections.labels(reason)
        return child

    def _code(self, code: int) -> Any:
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = self.http_responses.labels(str(code))
        return child

    def operation(self, name: str) -> Any:
        child = self._operations.get(name)
        if child is None:
            child = self._operations[name] = self.store_duration.labels(name)
        return child

    # Events ----------------------------------------------------------------------------

    def observe_request(self, method: str, route: str, code: int, seconds: float) -> None:
        requests, duration = self._route(method, route)
        requests.inc()
        duration.observe(seconds)
        self._code(code).inc()

    def observe_execution(self, execution: Execution) -> None:
        status = execution.status
        assert status is not None
        symbol = execution.request.symbol if execution.request is not None else None
        self._execution(status.value, symbol or "").inc()
        if execution.outcome_reason is not None:
            self._rejection(execution.outcome_reason.value).inc()
        if (slippage := execution.slippage_pips) is not None:
            self.slippage.observe(slippage)
            if slippage > 0:
                self.slippage_adverse.inc(slippage)
            elif slippage < 0:
                self.slippage_favourable.inc(-slippage)
        if (fill_time := execution.fill_time_seconds) is not None:
            self.fill_time.observe(fill_time)
        if execution.slippage_bound_breached:
            self.slippage_bound_breaches.inc()
        if execution.unprotected:
            self.unprotected_positions.inc(len(execution.unprotected))
        if execution.child_orders:
            self.child_orders.inc(execution.child_orders)
        # Recovery closes an execution again when it settles it: the last close wins.
        if status is ExecutionStatus.UNRESOLVED:
            self._unresolved_ids.add(execution.execution_id)
        else:
            self._unresolved_ids.discard(execution.execution_id)
        self.unresolved.set(len(self._unresolved_ids))

    def store_reached(self, reached: bool) -> None:
        # Every store call says; the gauge's lock is taken only when the answer changes.
        if reached is not self._store_up:
            self._store_up = reached
            self.store_up.set(float(reached))

    def observe_broker(self, connected: bool) -> None:
        self.broker_probes.inc()
        if connected:
            self.broker_probes_connected.inc()
        self.broker_connected.set(float(connected))


class RequestObserver:
    """ASGI middleware: counts and times every request by route template, and counts
    responses by status code."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

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
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            self.metrics.observe_request(
                scope["method"], route, status, time.perf_counter() - started
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


def _timed_operations() -> dict[str, str | None]:
    """Each public method of ExecutionDatabase TimedDatabase forwards -> its operation."""
    return {
        name: None if name in _UNTIMED else _OPERATION_NAMES.get(name, name)
        for name, member in vars(ExecutionDatabase).items()
        if not name.startswith("_") and callable(member) and name not in _COMPOSED
    }


STORE_OPERATIONS = tuple(sorted({op for op in _timed_operations().values() if op}))


def _forward_every_operation(cls: type[TimedDatabase]) -> type[TimedDatabase]:
    """Give `cls` a forwarding method for each public method of ExecutionDatabase."""
    for name, operation in _timed_operations().items():
        setattr(cls, name, _forwarding(name, operation, vars(ExecutionDatabase)[name]))
    update_abstractmethods(cls)
    return cls


def _forwarding(name: str, operation: str | None, member: Any) -> Callable[..., Any]:
    """The method `name` of the wrapped store; timed as `operation` unless that is None."""

    def forward(self: TimedDatabase, /, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.inner, name)
        if operation is None:
            return method(*args, **kwargs)
        with self._timing(operation):
            return method(*args, **kwargs)

    forward.__name__, forward.__qualname__ = name, f"TimedDatabase.{name}"
    forward.__doc__ = member.__doc__
    return forward


@_forward_every_operation
class TimedDatabase(ExecutionDatabase):
    """The engine's audit store, with every call timed; otherwise the very same store.

    Methods a particular store adds (a SQL store's `chain_records`, its `durability`) are
    passed through untimed, so the audit verifier and exports see the store they expect.
    Every timed call also says whether the store was reached (arbitrex_audit_store_up).
    """

    def __init__(self, inner: ExecutionDatabase, metrics: ServiceMetrics) -> None:
        self.inner = inner
        self._metrics = metrics

    @contextmanager
    def _timing(self, operation: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except StoreUnavailable:
            self._metrics.store_reached(False)
            raise
        else:
            self._metrics.store_reached(True)
        finally:
            self._metrics.operation(operation).observe(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (copying, unpickling): no store to ask
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"TimedDatabase({self.inner!r})"
