"""Errors as the API answers them: one Problem shape, never a 500 for bad input.

`error_responses` declares in the OpenAPI document every error a route can answer, with
its body and headers; `add_error_handlers` turns every exception into that answer.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from engine.api.auth import ApiError, problem_response
from engine.api.dependencies import service_of
from engine.api.schemas import FieldProblem, Problem
from engine.store.base import IdempotencyConflict, StoreUnavailable

log = logging.getLogger(__name__)

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
# What every route behind a key can answer, whatever it does.
GUARDED = (401, 403, 413, 422, 429, 503)


# The HTTP server itself answers a malformed request (a bad header, a broken framing)
# before any route runs, in plain text: every operation can meet it.
_MALFORMED_HTTP: dict[str, Any] = {
    "description": "The HTTP request itself is malformed; answered by the server, in text",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses`: a malformed request (400), and each of `codes` as a Problem."""
    return {
        400: _MALFORMED_HTTP,
        **{
            code: {"model": Problem, "description": _ERRORS[code]}
            | ({"headers": _HEADERS[code]} if code in _HEADERS else {})
            for code in sorted(set(codes))
        },
    }


# -- handlers: each exception as its Problem ----------------------------------------------


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_invalid)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(StoreUnavailable, _on_store_unavailable)
    app.add_exception_handler(IdempotencyConflict, _on_conflict)
    app.add_exception_handler(Exception, _on_crash)


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
    service = service_of(request)
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
