"""Who may call what: API keys and rate limits at the door, roles at each route.

Authentication runs as ASGI middleware, before routing and before any body is read, so a
request without a valid key learns nothing — not whether its body would parse, not whether
a path exists. Only /health and the /docs page (with its Swagger UI files) are open. Keys
never appear in a log line or a response.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api.keys import ApiKey, KeyStore, Role
from engine.api.ratelimit import TokenBucketLimiter
from engine.api.schemas import Problem

PUBLIC_PATHS = frozenset({"/health", "/docs"})
# Swagger UI's own files, the same for everyone (engine.api.docs): no key to load them.
PUBLIC_PREFIX = "/docs/assets/"
REALM = 'Bearer realm="arbitrex"'

# Documents the scheme in OpenAPI; the check itself is the middleware's.
bearer = HTTPBearer(auto_error=False, description="An API key: Authorization: Bearer <key>")


class ApiError(HTTPException):
    """An error answer with the API's Problem body. An HTTPException, so that FastAPI lets
    it through when it is raised while the body is being read (413)."""

    def __init__(
        self,
        status_code: int,
        error: str,
        detail: str,
        headers: dict[str, str] | None = None,
        execution_id: str | None = None,
    ) -> None:
        super().__init__(status_code, detail, headers)
        self.error = error
        self.execution_id = execution_id

    def problem(self) -> Problem:
        return Problem(error=self.error, detail=self.detail, execution_id=self.execution_id)


def problem_response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        error.problem().model_dump(mode="json"),
        status_code=error.status_code,
        headers=error.headers,
    )


class KeyGate:
    """Refuses every request but /health and /docs without a valid, active key (401), and a key over
    its rate (429); otherwise hands the key to the routes as `request.state.api_key`."""

    def __init__(self, app: ASGIApp, keys: KeyStore, limiter: TokenBucketLimiter) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIX):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await problem_response(refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> ApiError | None:
        scheme, _, token = (Headers(scope=scope).get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return ApiError(
                401,
                "unauthorized",
                "an API key is required: send Authorization: Bearer <key>",
                {"WWW-Authenticate": REALM},
            )
        key = self.keys.authenticate(token.strip())
        if key is None:
            return ApiError(
                401,
                "unauthorized",
                "the API key is not valid: unknown, revoked or malformed",
                {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        wait = self.limiter.acquire(key.key_id)
        if wait > 0:
            return ApiError(
                429,
                "rate_limited",
                f"key {key.name!r} is over its rate limit of {self.limiter.rate:g} requests/s "
                f"(bursts of {self.limiter.burst}); retry after the Retry-After seconds",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        scope.setdefault("state", {})["api_key"] = key
        return None


class BodyLimit:
    """413 for a request body over `max_bytes`: at once when Content-Length says so, or as
    soon as a streamed body goes past it (it is never read whole)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> ApiError:
        return ApiError(
            413, "payload_too_large", f"the request body exceeds {self.max_bytes} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await problem_response(self._too_large())(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited, send)


def role_of(request: Request, roles: tuple[Role, ...]) -> ApiKey:
    """The caller's key, if its role is one of `roles` (else 403)."""
    key: ApiKey = request.state.api_key
    if key.role not in roles:
        allowed = ", ".join(role.value for role in roles)
        raise ApiError(
            403,
            "forbidden",
            f"key {key.name!r} has the role {key.role.value}; this needs: {allowed}",
        )
    return key


def require(*roles: Role) -> Callable[..., Awaitable[ApiKey]]:
    """A route dependency: the caller's key, if its role is one of `roles` (else 403)."""

    async def check(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKey:
        return role_of(request, roles)

    return check
