"""POST /execute: an RPM decision in, the engine's confirmation out."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from engine.api.dependencies import TradingService
from engine.api.errors import GUARDED, error_responses
from engine.schemas import NUL_REFUSED, ExecutionConfirmation, RPMOutput, nul_location

_IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,128}$"  # visible ASCII: what survives every proxy

router = APIRouter()


@router.post(
    "/execute",
    response_model=ExecutionConfirmation,
    responses=error_responses(*GUARDED, 409, 415),
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
    # For the access log's line of this request.
    request.state.execution_id = confirmation.execution_id
    # Serialized here, once: returned as a model, FastAPI would validate it against
    # response_model again first (which still documents it).
    return Response(confirmation.model_dump_json(), media_type="application/json")
