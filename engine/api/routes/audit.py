"""GET /audit_trail: the audit trail exported as a file, the one `arbitrex audit export`
writes."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from engine.api.dependencies import End, Reader, Service, Start, window
from engine.api.errors import GUARDED, error_responses
from engine.api.service import ApiService
from engine.store.export import ExportFormat, export_audit_trail_to

EXPORT_MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}

router = APIRouter()


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
        **error_responses(*GUARDED),
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
    lo, hi = window(start, end)
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


def _export(service: ApiService, path: str, fmt: ExportFormat, lo: datetime, hi: datetime) -> None:
    export_audit_trail_to(service.engine.database, path, fmt, lo, hi)
