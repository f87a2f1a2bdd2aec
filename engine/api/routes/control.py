"""The kill switch: POST /halt and POST /resume, each kept in the audit trail."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body
from starlette.concurrency import run_in_threadpool

from engine.api.auth import ApiError
from engine.api.dependencies import Admin, JsonBody, Service
from engine.api.errors import GUARDED, error_responses
from engine.api.schemas import ControlState, HaltRequest
from engine.store.base import ControlKind, StoreUnavailable

log = logging.getLogger(__name__)

_ControlBody = Annotated[HaltRequest | None, Body(description="Why (kept in the audit trail)")]

router = APIRouter()


@router.post(
    "/halt",
    response_model=ControlState,
    responses=error_responses(*GUARDED, 415),
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
    return ControlState(
        trading_halted=True,
        recorded_at=datetime.fromtimestamp(event.at, UTC),
        by=key.name,
        reason=reason,
    )


@router.post(
    "/resume",
    response_model=ControlState,
    responses=error_responses(*GUARDED, 415),
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
    return ControlState(
        trading_halted=False,
        recorded_at=datetime.fromtimestamp(event.at, UTC),
        by=key.name,
        reason=reason,
    )
