"""Who may call what, and what never leaks: keys, roles, rate limits, body limits, secrets."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from engine.api import ApiSettings, KeyStore, KeyStoreError, Role
from engine.api.keys import CHANGES_CHECKED_EVERY
from engine.api.ratelimit import TokenBucketLimiter
from scenarios.cli.api import api_app
from tests.api_support import UNLIMITED, PaperApi, approved, bearer, cli_api, paper_api

READERS = {Role.AUDITOR, Role.ADMIN}
# Every route but /health, with the roles that may call it.
ENDPOINTS: list[tuple[str, str, set[Role]]] = [
    ("POST", "/execute", {Role.TRADER}),
    ("GET", "/executions/ex-anything", READERS),
    ("GET", "/history", READERS),
    ("GET", "/metrics", READERS),
    ("GET", "/metrics/json", READERS),
    ("GET", "/audit_trail", READERS),
    ("POST", "/halt", {Role.ADMIN}),
    ("POST", "/resume", {Role.ADMIN}),
    ("GET", "/openapi.json", set(Role)),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _ in ENDPOINTS]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperApi]:
    with paper_api(tmp_path_factory.mktemp("security")) as paper:
        yield paper


def call(api: PaperApi, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = approved("security-probe") if path == "/execute" else None
    return api.client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "_roles"), ENDPOINTS, ids=ENDPOINT_IDS)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer axk_0123456789abcdef_not-a-real-secret",
        "Bearer not-even-shaped-like-a-key",
        "Basic YWRtaW46YWRtaW4=",
    ],
    ids=["missing", "empty", "unknown", "malformed", "wrong-scheme"],
)
def test_every_protected_endpoint_refuses_a_missing_or_invalid_key_with_401_bearer(
    api, method, path, _roles, authorization
):
    headers = {"Authorization": authorization} if authorization else {}

    answer = call(api, method, path, headers)

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        (method, path, role)
        for method, path, allowed in ENDPOINTS
        for role in sorted(set(Role) - allowed)
    ],
    ids=lambda value: str(value),
)
def test_every_protected_endpoint_refuses_a_valid_key_of_the_wrong_role_with_403(
    api, method, path, role
):
    answer = call(api, method, path, api.as_role(role))

    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden" and role.value in answer.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [(method, path, role) for method, path, allowed in ENDPOINTS for role in sorted(allowed)],
    ids=lambda value: str(value),
)
def test_every_endpoint_serves_a_key_of_a_role_it_allows(api, method, path, role):
    answer = call(api, method, path, api.as_role(role))

    assert answer.status_code not in (401, 403)
    assert answer.status_code < 500


def test_health_answers_without_a_key(api):
    assert httpx.get(f"{api.url}/health").status_code == 200


def test_a_revoked_key_is_refused_from_its_next_request_on(api):
    _, token = api.keys.create(Role.AUDITOR, "short-lived")
    before = api.client.get("/metrics", headers=bearer(token))
    api.keys.revoke("short-lived")
    after = api.client.get("/metrics", headers=bearer(token))

    assert before.status_code == 200
    assert after.status_code == 401 and 'error="invalid_token"' in after.headers["www-authenticate"]


def test_a_key_revoked_by_another_process_is_refused_once_the_store_checks_again(tmp_path):
    server_side = KeyStore(tmp_path / "keys.db")
    _, token = server_side.create(Role.TRADER, "elsewhere")
    assert server_side.authenticate(token) is not None

    KeyStore(tmp_path / "keys.db").revoke("elsewhere")  # `arbitrex keys revoke`, in effect
    time.sleep(CHANGES_CHECKED_EVERY)

    assert server_side.authenticate(token) is None


def test_a_key_with_a_tampered_secret_is_refused(api):
    token = api.tokens[Role.AUDITOR]
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")

    assert api.client.get("/metrics", headers=bearer(forged)).status_code == 401


# -- rate limits and size limits ---------------------------------------------------------


def test_a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_are_unaffected(tmp_path):
    # One request per 1,000 s after a burst of 3: the fourth waits, whatever the clock does.
    settings = UNLIMITED.model_copy(update={"rate_per_second": 0.001, "burst": 3})
    with paper_api(tmp_path, settings=settings) as paper:
        auditor, admin = paper.as_role(Role.AUDITOR), paper.as_role(Role.ADMIN)
        answers = [paper.client.get("/metrics", headers=auditor) for _ in range(4)]
        other = paper.client.get("/metrics", headers=admin)
        health = [paper.client.get("/health") for _ in range(5)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"] == "rate_limited"
    assert int(answers[-1].headers["retry-after"]) == 1000
    assert other.status_code == 200
    assert {h.status_code for h in health} == {200}


def test_the_token_bucket_refills_at_its_rate_up_to_its_burst():
    now = [0.0]
    bucket = TokenBucketLimiter(rate=2.0, burst=2, clock=lambda: now[0])

    assert [bucket.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] = 0.25  # half a token back: a quarter of a second to the next
    assert bucket.acquire("k") == 0.25
    now[0] = 0.5
    assert bucket.acquire("k") == 0.0 and bucket.acquire("k") == 0.5
    now[0] = 100.0
    assert [bucket.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.5]
    assert bucket.acquire("another key") == 0.0


def test_a_body_larger_than_the_limit_is_a_413_whether_declared_or_streamed(api):
    headers = api.as_role(Role.TRADER) | {"Content-Type": "application/json"}
    big = b'{"decision": "' + b"x" * 70_000 + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    declared = api.client.post("/execute", content=big, headers=headers)
    streamed = api.client.post("/execute", content=chunks(), headers=headers)

    assert declared.status_code == streamed.status_code == 413
    assert "transfer-encoding" not in declared.request.headers
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    assert streamed.json()["error"] == "payload_too_large"


def test_the_body_limit_is_configurable(tmp_path):
    settings = UNLIMITED.model_copy(update={"max_body_bytes": 64})
    with paper_api(tmp_path, settings=settings) as paper:
        answer = paper.execute(approved("a-decision-longer-than-sixty-four-bytes"))

    assert answer.status_code == 413 and "64 bytes" in answer.json()["detail"]


# -- secrets: stored hashed, never logged, never answered --------------------------------


def secret_of(token: str) -> str:
    """The secret of axk_<id>_<secret>: everything after the id, since it may hold '_' too."""
    return token.split("_", 2)[2]


def test_keys_are_stored_only_as_salted_hashes(tmp_path):
    store = KeyStore(tmp_path / "keys.db")
    tokens = [store.create(Role.TRADER, f"desk{i}")[1] for i in range(2)]
    files = sorted(tmp_path.glob("keys.db*"))  # the database and, while open, its WAL
    raw = b"".join(path.read_bytes() for path in files)
    modes = {path.name: path.stat().st_mode & 0o077 for path in files}
    store.close()
    with sqlite3.connect(tmp_path / "keys.db") as conn:
        salts, digests = zip(*conn.execute("SELECT salt, digest FROM api_keys"), strict=True)

    for token in tokens:
        assert token.encode() not in raw and secret_of(token).encode() not in raw
    assert len(set(salts)) == 2 and len(set(digests)) == 2
    assert modes == dict.fromkeys(modes, 0) and "keys.db" in modes


def test_the_keys_cli_prints_a_key_once_and_lists_names_and_roles_but_never_keys(tmp_path):
    keys = str(tmp_path / "keys.db")
    created = cli_api("keys", "create", "--role", "trader", "--name", "desk1", "--keys", keys)
    token = created.stdout.strip()
    listed = cli_api("keys", "list", "--keys", keys)
    with sqlite3.connect(keys) as conn:
        salt, digest = conn.execute("SELECT salt, digest FROM api_keys").fetchone()

    assert created.returncode == listed.returncode == 0
    assert token.startswith("axk_") and token not in created.stderr
    assert "desk1" in listed.stdout and "trader" in listed.stdout and "active" in listed.stdout
    for secret in (token, secret_of(token), salt.hex(), digest.hex()):
        assert secret not in listed.stdout + listed.stderr


def test_a_key_name_is_unique_among_active_keys_and_free_again_once_revoked(tmp_path):
    store = KeyStore(tmp_path / "keys.db")
    store.create(Role.ADMIN, "ops")
    with pytest.raises(KeyStoreError, match="already named 'ops'"):
        store.create(Role.ADMIN, "ops")
    store.revoke("ops")
    store.create(Role.AUDITOR, "ops")
    with pytest.raises(KeyStoreError, match="no active key named 'nobody'"):
        store.revoke("nobody")
    with pytest.raises(KeyStoreError, match="key name"):
        store.create(Role.ADMIN, "has spaces")

    records = store.records()
    store.close()
    assert [(r.name, r.role, r.revoked_at is None) for r in records] == [
        ("ops", Role.ADMIN, False),
        ("ops", Role.AUDITOR, True),
    ]


def _secrets_of(paper: PaperApi) -> list[str]:
    with sqlite3.connect(paper.keys.path) as conn:
        rows = conn.execute("SELECT salt, digest FROM api_keys").fetchall()
    stored = [value.hex() for row in rows for value in row]
    return [*paper.tokens.values(), *map(secret_of, paper.tokens.values()), *stored]


def test_no_key_appears_in_any_log_record_or_any_response(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    answers: list[httpx.Response] = []
    with paper_api(tmp_path) as paper:
        secrets = _secrets_of(paper)
        for role in Role:
            for method, path, _ in ENDPOINTS:
                answers.append(call(paper, method, path, paper.as_role(role)))
        wrong = paper.tokens[Role.ADMIN][:-2] + "zz"
        answers.append(paper.client.get("/metrics", headers=bearer(wrong)))
        answers.append(paper.client.get("/health"))
        answers.append(paper.client.get("/audit_trail", headers=paper.as_role(Role.AUDITOR)))

    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.__dict__!r}" for record in caplog.records
    )
    assert "POST /execute" in logged  # the server's records were captured
    for answer in answers:
        seen = answer.text + repr(dict(answer.headers))
        assert not [secret for secret in secrets if secret in seen], answer.request.url
    assert not [secret for secret in secrets if secret in logged]
    assert not [s for s in (wrong, secret_of(wrong)) if s in logged]


def test_health_tells_nothing_about_where_the_store_is_or_how_to_reach_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'secret-place' / 'audit.db'}"
    (tmp_path / "secret-place").mkdir()
    with paper_api(tmp_path, url) as paper:
        health = paper.client.get("/health")

    assert set(health.json()) == {
        "status",
        "broker_connected",
        "database_reachable",
        "trading_halted",
    }
    assert "secret-place" not in health.text and "sqlite" not in health.text


def test_an_mt5_login_refusal_is_reported_without_the_password(tmp_path, monkeypatch):
    from brokers import mt5

    password = "correct-horse-battery-staple"
    monkeypatch.setenv("MT5_LOGIN", "4242")
    monkeypatch.setenv("MT5_PASSWORD", password)
    monkeypatch.setenv("MT5_SERVER", "Broker-Live")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise mt5.TerminalStartError(f"the terminal refused the login: bad password {password}")

    monkeypatch.setattr(mt5.MT5Broker, "connect", classmethod(refuse))
    result = CliRunner().invoke(
        api_app,
        ["serve", "--broker", "mt5", "--db", "memory://", "--keys", str(tmp_path / "k.db")],
    )

    assert result.exit_code == 1
    assert "refused the login" in result.output and "***" in result.output
    assert password not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_settings_refuse_limits_that_would_lock_everyone_out():
    with pytest.raises(ValueError, match="rate_per_second"):
        ApiSettings(rate_per_second=0)
    with pytest.raises(ValueError, match="burst"):
        ApiSettings(burst=0)


def test_a_key_store_file_that_is_not_a_key_store_is_refused_clearly(tmp_path):
    path = Path(tmp_path / "not-keys.db")
    path.write_bytes(b"this is not a database" * 100)

    with pytest.raises(KeyStoreError, match="cannot open the key store"):
        KeyStore(path)
