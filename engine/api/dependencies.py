"""What a route takes besides its own parameters: the service, the caller's key checked
against the route's roles, a JSON body, and a time window [start, end) from the query."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import AfterValidator, BeforeValidator

from engine.api.auth import ApiError, bearer, require, role_of
from engine.api.keys import ApiKey, Role
from engine.api.service import ApiService

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_END = datetime(9999, 1, 1, tzinfo=UTC)


def service_of(request: Request) -> ApiService:
    service: ApiService = request.app.state.service
    return service


async def _service_dependency(request: Request) -> ApiService:
    # async, though it awaits nothing: FastAPI runs a plain `def` dependency on a worker
    # thread, a round trip per request for a lookup.
    return service_of(request)


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


async def _trader_sending_json(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiService:
    """/execute's checks as one dependency, because FastAPI's cost is per dependency and per
    request: a trader's key (else 403), then a JSON body (else 415); the service."""
    role_of(request, (Role.TRADER,))
    await _json_body(request)
    return service_of(request)


Service = Annotated[ApiService, Depends(_service_dependency)]
TradingService = Annotated[ApiService, Depends(_trader_sending_json)]
Reader = Annotated[ApiKey, Depends(require(Role.AUDITOR, Role.ADMIN))]
Admin = Annotated[ApiKey, Depends(require(Role.ADMIN))]
JsonBody = Annotated[None, Depends(_json_body)]
# ISO 8601's extended format as RFC 3339 (OpenAPI's date-time) writes it: a calendar date,
# then optionally a time and a zone. Pydantic alone would also read a number ("0.5",
# "20240109") as Unix seconds, which the documented contract does not promise.
_ISO_8601 = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2})?)?"
)


def _iso_8601_text(value: object) -> object:
    """Let only ISO 8601 text through to pydantic's datetime parsing, which checks the
    values (a 13th month, a 25th hour)."""
    if value is None or (isinstance(value, str) and _ISO_8601.fullmatch(value)):
        return value
    raise ValueError(f"expected an ISO 8601 date-time such as 2024-01-09T08:00:00Z, not {value!r}")


def _utc(moment: datetime | None) -> datetime | None:
    """A query time without a zone is UTC, as documented."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


_QueryTime = Annotated[datetime | None, BeforeValidator(_iso_8601_text), AfterValidator(_utc)]
Start = Annotated[
    _QueryTime,
    Query(description="ISO 8601, inclusive; without a zone it is UTC. Default: the beginning"),
]
End = Annotated[
    _QueryTime,
    Query(description="ISO 8601, exclusive; without a zone it is UTC. Default: no end"),
]


def window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[start, end) from the query's Start and End, each defaulting to no bound (422 unless
    start comes before end)."""
    lo, hi = start or _EPOCH, end or _NO_END
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
