"""GET /health: broker connection, audit store, kill switch; the one route without a key."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from engine.api.dependencies import Service
from engine.api.errors import error_responses
from engine.api.schemas import Health

router = APIRouter()


@router.get(
    "/health",
    response_model=Health,
    responses={
        503: {"model": Health, "description": "The broker or the audit store is not there"},
        **error_responses(413),
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
