"""Reading executions: GET /executions/{execution_id} and GET /history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from engine.api.auth import ApiError
from engine.api.dependencies import End, Reader, Service, Start, window
from engine.api.errors import GUARDED, error_responses
from engine.api.schemas import HistoryPage
from engine.schemas import ExecutionLog, ExecutionStatus

HISTORY_MAX_LIMIT = 1000
_EXECUTION_ID = r"^[A-Za-z0-9_.:-]{1,128}$"

router = APIRouter()


@router.get(
    "/executions/{execution_id}",
    response_model=ExecutionLog,
    responses=error_responses(*GUARDED, 404),
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
    responses=error_responses(*GUARDED),
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
    lo, hi = window(start, end)
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
