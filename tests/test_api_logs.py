"""Logs as an operator reads them: a JSON line per request, with the request id the client
sent, and never a secret, whatever path it came in by."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.api import Role
from engine.api.logs import JsonFormatter, configure_logging
from tests.api_support import PaperApi, approved, bearer, cli_api, paper_api


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log line of the process, as `arbitrex serve` writes them, while the test runs."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    access = logging.getLogger("arbitrex.access")
    lines = io.StringIO()
    configure_logging(stream=lines)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        access.disabled = False


@pytest.fixture
def api(tmp_path: Path) -> Iterator[PaperApi]:
    with paper_api(tmp_path) as paper:
        yield paper


def _lines(captured: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in captured.getvalue().splitlines()]


def _access(captured: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in _lines(captured) if line["logger"] == "arbitrex.access"]


def test_each_request_writes_one_json_access_line_with_the_request_id_the_client_sent(
    api, captured
):
    headers = api.as_role(Role.TRADER) | {"X-Request-ID": "upstream-42"}
    executed = api.client.post("/execute", json=approved("logged-1"), headers=headers)
    health = api.client.get("/health", headers={"X-Request-ID": "probe-1"})

    lines = _access(captured)
    assert executed.headers["X-Request-ID"] == "upstream-42"
    assert health.headers["X-Request-ID"] == "probe-1"
    assert [(line["request_id"], line["route"], line["status"]) for line in lines] == [
        ("upstream-42", "/execute", 200),
        ("probe-1", "/health", 200),
    ]
    first = lines[0]
    assert first["execution_id"] == executed.json()["execution_id"]
    assert first["method"] == "POST" and first["level"] == "INFO"
    assert first["time"].endswith("Z") and first["time"][:2] == "20"
    assert first["duration_ms"] >= 0.0


@pytest.mark.parametrize(
    "sent",
    ["", "x" * 129, "has space", "caf\u00e9", "tab\there"],
    ids=["empty", "too-long", "space", "non-ascii", "control"],
)
def test_an_implausible_request_id_is_replaced_by_one_made_by_the_server(api, captured, sent):
    answer = api.client.get("/health", headers={"X-Request-ID": sent.encode("utf-8")})

    made = answer.headers["X-Request-ID"]
    assert made != sent and 0 < len(made) <= 128 and made.isascii()
    assert _access(captured)[0]["request_id"] == made


def test_requests_without_an_id_each_get_a_different_one(api, captured):
    ids = {api.client.get("/health").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


def test_a_read_of_one_execution_logs_its_execution_id_and_refusals_are_logged_too(api, captured):
    executed = api.execute(approved("logged-2")).json()["execution_id"]
    api.read(f"/executions/{executed}")
    api.client.get("/history")  # no key: 401

    lines = _access(captured)
    assert [(line["route"], line["status"], line.get("execution_id")) for line in lines] == [
        ("/execute", 200, executed),
        ("/executions/{execution_id}", 200, executed),
        ("/history", 401, None),
    ]


def test_application_lines_carry_the_request_id_of_the_request_that_wrote_them(api, captured):
    api.client.post(
        "/halt",
        json={"reason": "drill"},
        headers=api.as_role(Role.ADMIN) | {"X-Request-ID": "halt-1"},
    )

    halted = [line for line in _lines(captured) if "trading halted" in line["message"]]
    assert [(line["level"], line["request_id"]) for line in halted] == [("WARNING", "halt-1")]


def test_no_secret_reaches_a_log_line_by_any_path(api, captured):
    tokens = list(api.tokens.values())
    forged = tokens[0][:-3] + "zzz"
    password = "hunter2-pw-Zq9"
    trader, admin = api.as_role(Role.TRADER), api.as_role(Role.ADMIN)
    # Keys where they belong, where they do not, and where a careless client puts them.
    api.execute(approved("with-key"))
    api.client.get("/history", headers=bearer(forged))
    api.client.get("/history", params={"api_key": tokens[1]}, headers=api.as_role(Role.AUDITOR))
    api.client.get("/health", headers={"X-Request-ID": tokens[2]})
    api.client.get(f"/executions/{tokens[1]}", headers=api.as_role(Role.AUDITOR))
    api.client.post("/execute", content=f'{{"token": "{tokens[0]}"', headers=trader)
    api.client.post("/halt", json={"reason": f"key {tokens[0]} password={password}"}, headers=admin)
    api.client.post("/resume", headers=admin)
    # An exception's text, through the formatter: a database URL with its password.
    try:
        raise RuntimeError(f"cannot reach postgresql://arb:{password}@db:5432/audit")
    except RuntimeError:
        logging.getLogger("engine").exception("store down, Bearer %s", tokens[0])

    text = captured.getvalue()
    assert "POST /halt 200" in text and "store down" in text  # the lines were captured
    leaked = [s for s in (*tokens, forged, password) if s in text]
    assert not leaked
    # axk_<key id>_<secret>: the secret may hold "_" itself, so it is all after the id.
    secret_parts = [token.split("_", 2)[2] for token in (*tokens, forged)]
    assert not [part for part in secret_parts if part in text]


def test_the_formatter_masks_an_mt5_password_in_a_settings_dump():
    record = logging.LogRecord(
        "brokers.mt5", logging.ERROR, __file__, 1, "%s", ({"password": "s3cret!"},), None
    )
    line = json.loads(JsonFormatter().format(record))
    assert "s3cret!" not in line["message"] and line["level"] == "ERROR"


def test_a_failed_mt5_start_prints_no_password(tmp_path):
    password = "mt5-Pw-4471"
    credentials = tmp_path / "mt5.toml"
    credentials.write_text(f'login = 1234\npassword = "{password}"\nserver = "Demo-1"\n')
    failed = cli_api(
        "serve",
        "--broker",
        "mt5",
        "--db",
        "memory://",
        "--keys",
        str(tmp_path / "keys.db"),
        "--mt5-credentials",
        str(credentials),
        env={"MT5_PASSWORD": password},
    )

    assert failed.returncode != 0
    assert password not in failed.stdout + failed.stderr
