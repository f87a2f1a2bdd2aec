"""`arbitrex serve` and `arbitrex keys`: the REST API on the simulator or on MT5, and its keys.

`serve --broker sim` is paper trading: the live driver against the simulated market in
wall-clock time. `serve --broker mt5` trades live through the MT5 terminal. Either way the
engine (built by `scenarios.assembly`) settles what a previous process left open before the
first request is served.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from engine.api import ApiSettings, KeyStore, KeyStoreError, Role, create_app
from engine.api.logs import configure_logging
from engine.engine import ExecutionEngine
from engine.store import ExecutionDatabase, StoreUnavailable, open_database
from scenarios.assembly import (
    BrokerNotAvailable,
    BrokerUnreachable,
    live_mt5_engine,
    paper_trading_engine,
)
from scenarios.cli.common import fail

api_app = typer.Typer(
    help="The REST API service: serve it, and manage its API keys.", no_args_is_help=True
)
keys_app = typer.Typer(
    help="Create, list and revoke API keys (stored hashed).", no_args_is_help=True
)
api_app.add_typer(keys_app, name="keys")

DEFAULT_KEYS = Path("arbitrex-keys.db")
KeysOption = Annotated[
    Path,
    typer.Option(
        "--keys", envvar="ARBITREX_KEYS", help="Key store file (SQLite; created owner-only)"
    ),
]


class BrokerKind(StrEnum):
    SIM = "sim"
    MT5 = "mt5"


@api_app.command()
def serve(
    db: Annotated[str, typer.Option(help="Audit store URL: sqlite:///file.db, postgresql://...")],
    broker: Annotated[
        BrokerKind, typer.Option(help="sim: paper trading on the simulator; mt5: live")
    ] = BrokerKind.SIM,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the simulated market (sim)")] = 7,
    keys: KeysOption = DEFAULT_KEYS,
    rate_limit: Annotated[
        float, typer.Option(min=0.001, help="Requests per second per key, on average")
    ] = 50.0,
    burst: Annotated[int, typer.Option(min=1, help="Requests per key at once")] = 100,
    max_concurrent: Annotated[
        int, typer.Option(min=1, help="Executions waiting on the broker at once")
    ] = 64,
    latency_ms: Annotated[
        float | None,
        typer.Option(min=0.001, help="sim: constant one-way latency (default: the model's)"),
    ] = None,
    mt5_credentials: Annotated[
        Path | None,
        typer.Option(help="mt5: TOML with login, password, server (default: MT5_* variables)"),
    ] = None,
    mt5_bridge: Annotated[
        str | None, typer.Option(help="mt5: HOST:PORT of the mt5linux bridge (Linux)")
    ] = None,
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log a line per HTTP request (the audit trail records every execution anyway)"
        ),
    ] = True,
) -> None:
    """Serve the REST API until interrupted (Ctrl-C)."""
    try:
        database = open_database(db)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--db") from error
    except StoreUnavailable as error:
        fail(1, str(error))
    try:
        key_store = KeyStore(keys)
    except KeyStoreError as error:
        database.close()
        fail(1, str(error))
    close_broker: Callable[[], None] = _nothing_to_close
    try:
        if broker is BrokerKind.SIM:
            engine, _ = paper_trading_engine(seed, database, latency_ms)
        else:
            engine, close_broker = _live_mt5(database, mt5_credentials, mt5_bridge)
        settled = engine.recover()
        if settled:
            typer.echo(f"recovery settled {len(settled)} open executions", err=True)
        settings = ApiSettings(
            rate_per_second=rate_limit, burst=burst, max_concurrent_executions=max_concurrent
        )
        app = create_app(engine, key_store, settings)
        # What start-up built (modules, schemas, the app) lives as long as the server: out
        # of the collector's way, a full collection no longer walks it while every request
        # waits. At 800 requests/s offered by 1,000 clients: p99 0.16-0.19 s instead of
        # 1-1.9 s, the server no longer falling behind (benchmarks/api_load.py).
        gc.freeze()
        if not any(key.revoked_at is None for key in key_store.records()):
            typer.echo(
                f"warning: no API keys in {keys}; only /health will answer. "
                f"Create one: arbitrex keys create --role trader --keys {keys}",
                err=True,
            )
        if engine.halted:
            typer.echo("trading is HALTED (the audit trail's last control event)", err=True)
        configure_logging(access_log)
        uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="info",
                # JSON lines, from engine.api.logs: the app writes the access log itself.
                log_config=None,
                access_log=False,
                server_header=False,
            )
        ).run()
    except StoreUnavailable as error:
        fail(1, str(error))
    finally:
        close_broker()
        key_store.close()
        database.close()


def _live_mt5(
    database: ExecutionDatabase, credentials_file: Path | None, bridge: str | None
) -> tuple[ExecutionEngine, Callable[[], None]]:
    """The live engine on MT5, or a one-line error: 2 when the broker is not available or
    not configured, 1 when it cannot be reached."""
    address = None
    if bridge is not None:
        host, _, port = bridge.rpartition(":")
        if not host or not port.isdigit():
            fail(2, f"--mt5-bridge {bridge!r}: use HOST:PORT")
        address = (host, int(port))
    try:
        return live_mt5_engine(database, credentials_file, address)
    except BrokerNotAvailable as missing:
        fail(2, str(missing))
    except BrokerUnreachable as refused:
        fail(1, str(refused))


def _nothing_to_close() -> None:
    """The simulator holds no connection."""


def _open_keys(path: Path) -> KeyStore:
    try:
        return KeyStore(path)
    except KeyStoreError as error:
        fail(1, str(error))


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="trader: execute; auditor: read; admin: halt")],
    name: Annotated[str | None, typer.Option(help="A name to list and revoke it by")] = None,
    keys: KeysOption = DEFAULT_KEYS,
) -> None:
    """Create a key and print it, this once, on stdout: it is stored only hashed."""
    store = _open_keys(keys)
    try:
        record, token = store.create(role, name)
    except KeyStoreError as error:
        raise typer.BadParameter(str(error), param_hint="--name") from error
    finally:
        store.close()
    typer.echo(
        f"created key {record.name!r} ({record.role.value}); it is shown this once, store it now:",
        err=True,
    )
    typer.echo(token)


@keys_app.command("list")
def keys_list(keys: KeysOption = DEFAULT_KEYS) -> None:
    """Names, roles, creation and revocation times: never a key or its hash."""
    store = _open_keys(keys)
    try:
        records = store.records()
    finally:
        store.close()
    if not records:
        typer.echo(f"no keys in {keys}")
        return
    typer.echo(f"{'name':<24} {'role':<8} {'created (UTC)':<20} status")
    for record in records:
        status = (
            "active"
            if record.revoked_at is None
            else f"revoked {record.revoked_at:%Y-%m-%d %H:%M:%S}"
        )
        typer.echo(
            f"{record.name:<24} {record.role.value:<8} "
            f"{record.created_at:%Y-%m-%d %H:%M:%S}  {status}"
        )


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="The key's name")],
    keys: KeysOption = DEFAULT_KEYS,
) -> None:
    """Revoke a key: the server refuses it from its next request on."""
    store = _open_keys(keys)
    try:
        record = store.revoke(name)
    except KeyStoreError as error:
        fail(1, str(error))
    finally:
        store.close()
    typer.echo(f"revoked key {record.name!r} ({record.role.value})")
