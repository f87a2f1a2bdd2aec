"""The REST API over one ExecutionEngine: execute, read, export, and the kill switch.

`create_app(engine, keys)` builds the FastAPI application; whoever builds the engine (the
simulator for paper trading, MT5 for live) runs it with uvicorn. The engine's `execute`
blocks on the broker, so it runs on worker threads behind a limiter of its own: many
executions wait on the broker at once without blocking the event loop, and reads keep their
own threads. Every error is a `Problem` body and is declared in the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api.auth import (
    ApiError,
    BodyLimit,
    KeyGate,
    bearer,
    problem_response,
    require,
    role_of,
)
from engine.api.keys import ApiKey, KeyStore, Role
from engine.api.metrics import (
    BrokerProbes,
    TimedDatabase,
    Timings,
    metrics_report,
    prometheus_text,
)
from engine.api.ratelimit import TokenBucketLimiter
from engine.api.schemas import (
    ControlState,
    FieldProblem,
    HaltRequest,
    Health,
    MetricsReport,
    Problem,
)
from engine.core.config import ENGINE_VERSION
from engine.engine import ExecutionEngine
from engine.schemas import (
    NUL_REFUSED,
    ExecutionConfirmation,
    ExecutionLog,
    ExecutionStatus,
    RPMOutput,
    nul_location,
)
from engine.store.base import ControlEvent, ControlKind, IdempotencyConflict, StoreUnavailable
from engine.store.export import ExportFormat, export_audit_trail_to

log = logging.getLogger(__name__)

HISTORY_MAX_LIMIT = 1000
PROMETHEUS_MEDIA_TYPE = "text/plain; version=1.0.0; charset=utf-8"
EXPORT_MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_END = datetime(9999, 1, 1, tzinfo=UTC)
_EXECUTION_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
_IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,128}$"  # visible ASCII: what survives every proxy


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_second: Annotated[float, Field(gt=0.0)] = 50.0  # per key, on average
    burst: Annotated[int, Field(ge=1)] = 100  # per key, at once
    max_body_bytes: Annotated[int, Field(ge=1)] = 64 * 1024
    # Executions waiting on the broker at once; more wait for a thread, none is refused.
    max_concurrent_executions: Annotated[int, Field(ge=1)] = 64
    store_retry_after_seconds: Annotated[int, Field(ge=1)] = 5
    # Seconds between background broker probes (broker uptime); 0: only /health probes.
    broker_probe_seconds: Annotated[float, Field(ge=0.0)] = 5.0


class HistoryPage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    executions: list[ExecutionLog]
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page; null on the last")


@dataclass
class _Service:
    engine: ExecutionEngine
    settings: ApiSettings
    clock: Callable[[], float]
    # Executions block on the broker (MT5 is synchronous): each runs on a thread of its
    # own, at most max_concurrent_executions at once; the rest queue here, in order.
    executions: ThreadPoolExecutor
    probes: BrokerProbes
    requests: Timings
    responses: Counter[str]
    store: Timings

    def broker_connected(self) -> bool:
        try:
            connected = bool(self.engine.broker.is_connected())
        except Exception:  # a broker that cannot even say is not connected
            connected = False
        self.probes.record(connected)
        return connected

    def store_reachable(self) -> bool:
        try:
            self.engine.database.ping()
        except StoreUnavailable as down:
            log.warning("audit store unreachable: %s", down)
            return False
        return True

    def control_event(self, kind: ControlKind, key: ApiKey, reason: str | None) -> ControlEvent:
        return ControlEvent(
            kind=kind,
            at=self.clock(),
            payload={"by": key.name, "role": key.role.value, "reason": reason},
            engine_version=ENGINE_VERSION,
            config_version=self.engine.config.version,
        )


# -- OpenAPI: every error a route can answer, with its body and headers ------------------

_ERRORS: dict[int, str] = {
    401: "No valid API key: missing, unknown, revoked or malformed",
    403: "The key's role may not do this",
    404: "No such execution",
    409: "The idempotency key was used for a different decision",
    413: "The request body is too large",
    415: "The request body is not JSON",
    422: "Invalid input: `errors` names each field at fault",
    429: "The key is over its rate limit",
    503: "The audit store is unavailable (no execution starts while it is): retry later",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
}
_GUARDED = (401, 403, 413, 422, 429, 503)


# The HTTP server itself answers a malformed request (a bad header, a broken framing)
# before any route runs, in plain text: every operation can meet it.
_MALFORMED_HTTP: dict[str, Any] = {
    "description": "The HTTP request itself is malformed; answered by the server, in text",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        400: _MALFORMED_HTTP,
        **{
            code: {"model": Problem, "description": _ERRORS[code]}
            | ({"headers": _HEADERS[code]} if code in _HEADERS else {})
            for code in sorted(set(codes))
        },
    }


def _service(request: Request) -> _Service:
    service: _Service = request.app.state.service
    return service


async def _service_dependency(request: Request) -> _Service:
    # async, though it awaits nothing: FastAPI runs a plain `def` dependency on a worker
    # thread, a round trip per request for a lookup.
    return _service(request)


async def _json_body(request: Request) -> None:
    """415 for a body that is not JSON (before it is parsed, so the error says why)."""
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if has_body and not (media_type == "application/json" or media_type.endswith("+json")):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be JSON (Content-Type: application/json), not {media_type or 'none'}",
        )


def _utc(moment: datetime | None) -> datetime | None:
    """Query times: ISO 8601; one without a zone is taken as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    lo, hi = _utc(start) or _EPOCH, _utc(end) or _NO_END
    if lo >= hi:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "end"),
                    "msg": "end must be after start",
                    "type": "value_error",
                }
            ]
        )
    return lo, hi


async def _trader_sending_json(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> _Service:
    """/execute's checks as one dependency, because FastAPI's cost is per dependency and per
    request: a trader's key (else 403), then a JSON body (else 415); the service."""
    role_of(request, (Role.TRADER,))
    await _json_body(request)
    return _service(request)


Service = Annotated[_Service, Depends(_service_dependency)]
TradingService = Annotated[_Service, Depends(_trader_sending_json)]
Reader = Annotated[ApiKey, Depends(require(Role.AUDITOR, Role.ADMIN))]
Admin = Annotated[ApiKey, Depends(require(Role.ADMIN))]
JsonBody = Annotated[None, Depends(_json_body)]
Start = Annotated[
    datetime | None,
    Query(description="ISO 8601, inclusive; without a zone it is UTC. Default: the beginning"),
]
End = Annotated[
    datetime | None,
    Query(description="ISO 8601, exclusive; without a zone it is UTC. Default: no end"),
]

router = APIRouter()


@router.post(
    "/execute",
    response_model=ExecutionConfirmation,
    responses=_errors(*_GUARDED, 409, 415),
    summary="Execute an RPM decision (role: trader)",
)
async def execute(
    rpm: RPMOutput,
    request: Request,
    service: TradingService,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=_IDEMPOTENCY_KEY,
            description="Retries with the same key return the same execution. Default: "
            "derived from the decision (its decision_id, or a hash of it), as the engine does",
        ),
    ] = None,
) -> Response:
    """The engine's confirmation. A decision refused by validation, or sent while trading is
    halted, is still a 200: the confirmation says REJECTED and why."""
    # JSON can carry NUL only as the escape \\u0000: the body is searched for it first, and
    # only a body that has one is walked for where it is.
    if b"\\u0000" in await request.body():
        where = nul_location(rpm.model_dump(mode="json"), ("body",))
        if where is not None:
            # The API refuses NUL anywhere in a decision, not only where it would reach a
            # text column: one rule for callers, on every backend alike, by name.
            raise RequestValidationError(
                [{"loc": where, "msg": NUL_REFUSED, "type": "value_error"}]
            )
    # A plain executor, not anyio's thread runner: the hand-off is half the CPU under load.
    # A client that hangs up does not stop an execution that has started; it completes
    # and is recorded, and only its answer is lost.
    loop = asyncio.get_running_loop()
    confirmation: ExecutionConfirmation = await loop.run_in_executor(
        service.executions, service.engine.execute, rpm, idempotency_key
    )
    # Serialized here, once: returned as a model, FastAPI would validate it against
    # response_model again first (which still documents it).
    return Response(confirmation.model_dump_json(), media_type="application/json")


@router.get(
    "/executions/{execution_id}",
    response_model=ExecutionLog,
    responses=_errors(*_GUARDED, 404),
    summary="One execution's current state, from its audit records (roles: auditor, admin)",
)
async def get_execution(
    execution_id: Annotated[str, Path(pattern=_EXECUTION_ID)], service: Service, _key: Reader
) -> ExecutionLog:
    found = await run_in_threadpool(service.engine.database.get_execution_log, execution_id)
    if found is None:
        raise ApiError(
            404, "not_found", f"no execution {execution_id!r}", execution_id=execution_id
        )
    return found


@router.get(
    "/history",
    response_model=HistoryPage,
    responses=_errors(*_GUARDED),
    summary="Executions created in [start, end), oldest first (roles: auditor, admin)",
)
async def history(
    service: Service,
    _key: Reader,
    symbol: Annotated[str | None, Query(pattern=r"^[A-Za-z]{6}$")] = None,
    status: ExecutionStatus | None = None,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=HISTORY_MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> HistoryPage:
    lo, hi = _window(start, end)
    page = await run_in_threadpool(
        service.engine.database.history,
        symbol=symbol.upper() if symbol else None,
        status=status,
        start=lo,
        end=hi,
        limit=limit,
        offset=offset,
    )
    return HistoryPage(
        executions=page,
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(page) == limit else None,
    )


@router.get(
    "/metrics",
    response_model=MetricsReport,
    responses=_errors(*_GUARDED),
    summary="Execution quality and service metrics as JSON (roles: auditor, admin)",
)
async def metrics(service: Service, _key: Reader) -> MetricsReport:
    return _report(service)


@router.get(
    "/metrics/prometheus",
    response_class=Response,
    responses={
        200: {
            "description": "The same series as /metrics, in Prometheus' text format",
            "content": {PROMETHEUS_MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **_errors(*_GUARDED),
    },
    summary="The metrics in Prometheus' text format (roles: auditor, admin)",
)
async def metrics_prometheus(service: Service, _key: Reader) -> Response:
    return Response(prometheus_text(_report(service)), media_type=PROMETHEUS_MEDIA_TYPE)


def _report(service: _Service) -> MetricsReport:
    return metrics_report(
        service.engine, service.probes, service.requests, service.responses, service.store
    )


@router.get(
    "/audit_trail",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The audit records stamped in [start, end), as a file",
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in EXPORT_MEDIA_TYPES.values()
            },
        },
        **_errors(*_GUARDED),
    },
    summary="Export the audit trail: csv, jsonl or parquet (roles: auditor, admin)",
)
async def audit_trail(
    service: Service,
    _key: Reader,
    start: Start = None,
    end: End = None,
    fmt: Annotated[
        Literal["csv", "jsonl", "parquet"], Query(alias="format", description="File format")
    ] = "jsonl",
) -> FileResponse:
    """The same file `arbitrex audit export` writes; control events (halt, resume) have no
    execution_id."""
    lo, hi = _window(start, end)
    handle, path = tempfile.mkstemp(prefix="arbitrex-audit-", suffix=f".{fmt}")
    os.close(handle)
    try:
        await run_in_threadpool(_export, service, path, fmt, lo, hi)
    except BaseException:
        os.unlink(path)
        raise
    return FileResponse(
        path,
        media_type=EXPORT_MEDIA_TYPES[fmt],
        filename=f"audit_trail.{fmt}",
        background=BackgroundTask(os.unlink, path),
    )


def _export(service: _Service, path: str, fmt: ExportFormat, lo: datetime, hi: datetime) -> None:
    export_audit_trail_to(service.engine.database, path, fmt, lo, hi)


@router.get(
    "/health",
    response_model=Health,
    responses={
        503: {"model": Health, "description": "The broker or the audit store is not there"},
        **_errors(413),
    },
    summary="Broker connection, audit store, kill switch (no key needed)",
)
async def health(service: Service) -> JSONResponse:
    connected = await anyio.to_thread.run_sync(service.broker_connected)
    reachable = await run_in_threadpool(service.store_reachable)
    answer = Health(
        status="ok" if connected and reachable else "degraded",
        broker_connected=connected,
        database_reachable=reachable,
        trading_halted=service.engine.halted,
    )
    return JSONResponse(answer.model_dump(), status_code=200 if answer.status == "ok" else 503)


_ControlBody = Annotated[HaltRequest | None, Body(description="Why (kept in the audit trail)")]


@router.post(
    "/halt",
    response_model=ControlState,
    responses=_errors(*_GUARDED, 415),
    summary="Halt trading: the engine refuses every new execution (role: admin)",
)
async def halt(
    service: Service, key: Admin, _json: JsonBody, body: _ControlBody = None
) -> ControlState:
    """Halts at once, then records the halt in the audit trail. If the store refuses the
    record, trading stays halted and the answer is 503: call again to record it."""
    reason = body.reason if body else None
    service.engine.halt()
    event = service.control_event(ControlKind.TRADING_HALTED, key, reason)
    try:
        await run_in_threadpool(service.engine.database.append_control, event)
    except StoreUnavailable as down:
        log.warning("trading halted by %s, but the audit record failed: %s", key.name, down)
        raise ApiError(
            503,
            "store_unavailable",
            "trading IS halted, but the audit store refused the record of it; "
            "call /halt again to record it",
            {"Retry-After": str(service.settings.store_retry_after_seconds)},
        ) from down
    log.warning("trading halted by key %s: %s", key.name, reason or "no reason given")
    return ControlState(trading_halted=True, recorded_at=event.at, by=key.name, reason=reason)


@router.post(
    "/resume",
    response_model=ControlState,
    responses=_errors(*_GUARDED, 415),
    summary="Resume trading after a halt (role: admin)",
)
async def resume(
    service: Service, key: Admin, _json: JsonBody, body: _ControlBody = None
) -> ControlState:
    """Records the resumption first, and resumes only once it is recorded: trading never
    restarts without evidence of who restarted it."""
    reason = body.reason if body else None
    event = service.control_event(ControlKind.TRADING_RESUMED, key, reason)
    await run_in_threadpool(service.engine.database.append_control, event)
    service.engine.resume()
    log.warning("trading resumed by key %s: %s", key.name, reason or "no reason given")
    return ControlState(trading_halted=False, recorded_at=event.at, by=key.name, reason=reason)


# -- errors: one Problem shape, never a 500 for bad input ---------------------------------


def _field_problems(exc: RequestValidationError) -> list[FieldProblem]:
    return [
        FieldProblem(
            loc=[part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            msg=_message(error),
            type=str(error.get("type", "value_error")),
        )
        for error in exc.errors()
    ]


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "json_invalid" and "error" in error.get("ctx", {}):
        return f"{message}: {error['ctx']['error']}"  # what the parser expected, and where
    return message


async def _on_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _invalid(_field_problems(exc))


def _invalid(problems: list[FieldProblem]) -> JSONResponse:
    where = "; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in problems[:5])
    body = Problem(error="invalid_request", detail=f"invalid request: {where}", errors=problems)
    return JSONResponse(body.model_dump(mode="json"), status_code=422)


_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ApiError):
        return problem_response(exc)
    if exc.status_code == 400:  # FastAPI could not read the body (e.g. not UTF-8) as JSON
        problem = FieldProblem(loc=["body"], msg=str(exc.detail), type="json_invalid")
        return _invalid([problem])
    error = _HTTP_ERRORS.get(exc.status_code, "http_error")
    return problem_response(ApiError(exc.status_code, error, str(exc.detail), exc.headers))


async def _on_store_unavailable(request: Request, exc: Exception) -> Response:
    # The reason names the backend and its file or host: for the log, not for the caller.
    log.warning("audit store unavailable: %s", exc)
    service = _service(request)
    return problem_response(
        ApiError(
            503,
            "store_unavailable",
            "the audit store is unavailable, and no execution starts while it is: retry later",
            {"Retry-After": str(service.settings.store_retry_after_seconds)},
        )
    )


async def _on_conflict(request: Request, exc: Exception) -> Response:
    return problem_response(ApiError(409, "idempotency_conflict", str(exc)))


async def _on_crash(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(ApiError(500, "internal_error", "internal error; it was logged"))


class _Observe:
    """Times every request by route template and counts responses by status code."""

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


async def _probe_forever(service: _Service) -> None:
    while True:
        await anyio.to_thread.run_sync(service.broker_connected, abandon_on_cancel=True)
        await anyio.sleep(service.settings.broker_probe_seconds)


def _execution_pool(settings: ApiSettings) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(settings.max_concurrent_executions, thread_name_prefix="execution")


def create_app(
    engine: ExecutionEngine,
    keys: KeyStore,
    settings: ApiSettings | None = None,
    *,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """The API over `engine`, with `keys` deciding who may call it.

    The engine's store is wrapped to time its calls (`engine.database` becomes a
    TimedDatabase over the same store). If the audit trail's last control event is a halt,
    the engine starts halted: a kill switch survives a restart. `clock` stamps control
    events; by default it is the engine's own driver clock, as for execution events.
    """
    settings = settings or ApiSettings()
    store_timings = Timings()
    inner = engine.database.inner if isinstance(engine.database, TimedDatabase) else engine.database
    engine.database = TimedDatabase(inner, store_timings)
    controls = engine.database.control_events()
    if controls and controls[-1].kind is ControlKind.TRADING_HALTED:
        engine.halt()
    service = _Service(
        engine=engine,
        settings=settings,
        clock=clock or engine.clock,
        executions=_execution_pool(settings),
        probes=BrokerProbes(),
        requests=Timings(),
        responses=Counter(),
        store=store_timings,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            if settings.broker_probe_seconds > 0:
                tasks.start_soon(_probe_forever, service)
            yield
            tasks.cancel_scope.cancel()
        # Executions still running finish (and are recorded) before the store is closed;
        # the app, if started again, gets a fresh pool.
        pool, service.executions = service.executions, _execution_pool(settings)
        await anyio.to_thread.run_sync(pool.shutdown)

    app = FastAPI(
        title="Arbitrex execution API",
        version=ENGINE_VERSION,
        description="Execute RPM decisions, read executions and metrics, export the audit "
        "trail, halt and resume trading. Every route but /health needs an API key "
        "(Authorization: Bearer <key>); /openapi.json too.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _on_invalid)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(StoreUnavailable, _on_store_unavailable)
    app.add_exception_handler(IdempotencyConflict, _on_conflict)
    app.add_exception_handler(Exception, _on_crash)
    # Added innermost first: a request meets _Observe, then KeyGate, then BodyLimit.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        KeyGate, keys=keys, limiter=TokenBucketLimiter(settings.rate_per_second, settings.burst)
    )
    app.add_middleware(_Observe, timings=service.requests, responses=service.responses)
    return app
