"""The REST API over one ExecutionEngine: execute, read, export, and the kill switch.

`create_app(engine, keys)` builds the FastAPI application; whoever builds the engine (the
simulator for paper trading, MT5 for live) runs it with uvicorn. The engine's `execute`
blocks on the broker, so it runs on worker threads behind a limiter of its own: many
executions wait on the broker at once without blocking the event loop, and reads keep their
own threads. Every error is a `Problem` body and is declared in the OpenAPI document.

This module assembles the application; the routes are in `engine.api.routes`, one module
per resource, the errors in `engine.api.errors`, the service they share in
`engine.api.service`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from engine.api.auth import BodyLimit, KeyGate
from engine.api.docs import add_docs
from engine.api.errors import add_error_handlers
from engine.api.keys import KeyStore
from engine.api.logs import AccessLog
from engine.api.metrics import RequestObserver, ServiceMetrics, TimedDatabase
from engine.api.ratelimit import TokenBucketLimiter
from engine.api.routes import ROUTERS
from engine.api.service import (
    ApiService,
    ApiSettings,
    execution_pool,
    probe_forever,
    watch_exits_forever,
)
from engine.core.config import ENGINE_VERSION
from engine.engine import ExecutionEngine
from engine.store.base import ControlKind
from engine.tape import QuoteTape, TapeSettings


def create_app(
    engine: ExecutionEngine,
    keys: KeyStore,
    settings: ApiSettings | None = None,
    *,
    clock: Callable[[], float] | None = None,
    symbols: Iterable[str] = (),
) -> FastAPI:
    """The API over `engine`, with `keys` deciding who may call it.

    The engine's store is wrapped to time its calls (`engine.database` becomes a
    TimedDatabase over the same store). If the audit trail's last control event is a halt,
    the engine starts halted: a kill switch survives a restart. `clock` stamps control
    events; by default it is the engine's own driver clock, as for execution events.
    `symbols`: those the metrics count at zero from the start (with the config's own).
    """
    settings = settings or ApiSettings()
    metrics = ServiceMetrics(engine, symbols)
    inner = engine.database.inner if isinstance(engine.database, TimedDatabase) else engine.database
    engine.database = TimedDatabase(inner, metrics)
    controls = engine.database.control_events()
    if controls and controls[-1].kind is ControlKind.TRADING_HALTED:
        engine.halt()
    service = ApiService(
        engine=engine,
        settings=settings,
        clock=clock or engine.clock.now,
        executions=execution_pool(settings),
        metrics=metrics,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tape = None
        if settings.quote_tape_seconds > 0:
            tape = QuoteTape(engine, TapeSettings(interval_seconds=settings.quote_tape_seconds))
            tape.start()
        async with anyio.create_task_group() as tasks:
            if settings.broker_probe_seconds > 0:
                tasks.start_soon(probe_forever, service)
            if settings.exits_watch_seconds > 0:
                tasks.start_soon(watch_exits_forever, service)
            yield
            tasks.cancel_scope.cancel()
        # Executions still running finish (and are recorded) before the store is closed;
        # the app, if started again, gets a fresh pool.
        pool, service.executions = service.executions, execution_pool(settings)
        await anyio.to_thread.run_sync(pool.shutdown)
        if tape is not None:  # after the executions: the tape holds their last quotes
            await anyio.to_thread.run_sync(tape.close)

    app = FastAPI(
        title="Arbitrex execution API",
        version=ENGINE_VERSION,
        description="Execute RPM decisions, read executions and metrics, export the audit "
        "trail, halt and resume trading. Every route but /health needs an API key "
        "(Authorization: Bearer <key>); /openapi.json too. /docs shows this document: "
        "the page is open, and asks for a key to load it.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    for router in ROUTERS:
        app.include_router(router)
    # The routers' own routes: FastAPI may hold an included router as one opaque entry.
    metrics.known_routes([*app.routes, *(route for router in ROUTERS for route in router.routes)])
    add_docs(app)
    add_error_handlers(app)
    # Added innermost first: a request meets AccessLog, RequestObserver, KeyGate, BodyLimit.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        KeyGate, keys=keys, limiter=TokenBucketLimiter(settings.rate_per_second, settings.burst)
    )
    app.add_middleware(RequestObserver, metrics=metrics)
    app.add_middleware(AccessLog)
    return app
