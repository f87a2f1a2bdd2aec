"""Logs as JSON lines: one per request (the access log) and the application's own, alike.

Every line is one JSON object with `time` (ISO 8601 UTC), `level`, `logger` and `message`;
a line written while a request is served also has its `request_id`, and the access line has
`method`, `route` (the template, e.g. /executions/{execution_id}; the path, cut short, of a
request refused before any route ran), `status`, `duration_ms` and `execution_id` when there is one.

The request id is the client's `X-Request-ID` when it is a plausible one (1-128 visible
ASCII characters), otherwise one made here; either way it is returned in the response's
`X-Request-ID`, so a client can quote it and an operator can find its line.

No secret reaches a log: nothing here logs a header but the request id, and the formatter
masks, in whatever it writes, API keys (axk_...), bearer tokens, passwords in URLs and
`password=` pairs, in case a message or an exception ever carries one.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import re
import sys
import time
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.clock import iso_utc

ACCESS_LOGGER = "arbitrex.access"
REQUEST_ID_HEADER = "X-Request-ID"

# The request being served, for every log line written while it is (threads included:
# Starlette's thread pool runs with a copy of the context).
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "arbitrex_request_id", default=None
)

_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")
# What a secret looks like in text: an API key, a bearer token, a URL's password, and a
# password=... or "password": "..." pair.
_SECRETS = re.compile(
    r"axk_[0-9A-Za-z_\-]*"
    r"|(?P<bearer>Bearer )\S+"
    r"|(?P<user>://[^/\s:@]*:)[^/\s@]*(?=@)"
    r"|(?P<password>(?i:password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"
)
# The fields of a record, besides the standard ones, that the formatter writes.
_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "execution_id")


def _masked(match: re.Match[str]) -> str:
    return (match["bearer"] or match["user"] or match["password"] or "") + "***"


def _mask(text: str) -> str:
    return _SECRETS.sub(_masked, text)


class JsonFormatter(logging.Formatter):
    """A record as one JSON line, secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for field in _FIELDS[1:]:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _mask(json.dumps(entry, separators=(",", ":"), default=str))


def configure_logging(access_log: bool = True, stream: TextIO | None = None) -> None:
    """Every log line of this process as JSON on `stream` (stderr): the application's, the
    access log (unless `access_log` is False), uvicorn's own. uvicorn's plain access lines
    are not wanted; run it with `access_log=False` and `log_config=None`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger(ACCESS_LOGGER).disabled = not access_log


class AccessLog:
    """ASGI middleware, outermost: gives each request its id and writes its access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger(ACCESS_LOGGER)
        # Made here: a per-process prefix and a counter, unique without a random draw (a
        # system call) per request.
        self._prefix = f"{os.getpid():x}{int(time.time()):x}"
        self._counter = itertools.count(1)

    def _request_id(self, scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _REQUEST_ID.fullmatch(value):
                    return value.decode("ascii")
                break
        return f"{self._prefix}-{next(self._counter):x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self._request_id(scope)
        header = (b"x-request-id", request_id.encode("ascii"))
        status = 500
        token = request_id_var.set(request_id)

        async def with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, with_id)
        finally:
            request_id_var.reset(token)
            if self.log.isEnabledFor(logging.INFO):
                self._write(scope, request_id, status, time.perf_counter() - started)

    def _write(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        # The template when a route ran; a request refused before routing (no key, too
        # large) has its path instead, cut short: a log line is no place for a long one.
        route = getattr(scope.get("route"), "path", None) or scope["path"][:128]
        state = scope.get("state") or {}
        execution_id = state.get("execution_id") or (scope.get("path_params") or {}).get(
            "execution_id"
        )
        self.log.info(
            "%s %s %d",
            scope["method"],
            route,
            status,
            extra={
                "request_id": request_id,
                "method": scope["method"],
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000.0, 3),
                "execution_id": execution_id,
            },
        )
