"""`arbitrex serve` and `arbitrex keys`: the REST API on the simulator or on MT5, and its keys.

`serve --broker sim` is paper trading: the live driver against the simulated market in
wall-clock time. `serve --broker mt5` trades live through the MT5 terminal. Either way the
engine (built by `scenarios.assembly`) settles what a previous process left open before the
first request is served.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated

import typer
import uvicorn

from engine.api import ApiSettings, KeyStore, KeyStoreError, Role, create_app
from engine.api.logs import configure_logging
from engine.engine import ExecutionEngine
from engine.store import ExecutionDatabase, StoreUnavailable, open_database
from scenarios.assembly import (
    BrokerNotAvailable,
    BrokerUnreachable,
    connect_mt5,
    paper_trading_engine,
)
from scenarios.cli.common import cost_estimator, fail
from scenarios.cli.settings import (
    CONFIG_ENV,
    BrokerKind,
    ConfigError,
    ServeSettings,
    load_mt5_config,
)
from scenarios.cli.settings import load as load_settings

if TYPE_CHECKING:  # imported on use: the MT5 extra may not be installed
    from brokers.mt5 import MT5Broker, MT5Config

api_app = typer.Typer(
    help="The REST API service: serve it, and manage its API keys.", no_args_is_help=True
)
keys_app = typer.Typer(
    help="Create, list and revoke API keys (stored hashed).", no_args_is_help=True
)
api_app.add_typer(keys_app, name="keys")

DEFAULT_KEYS: Path = ServeSettings.model_fields["keys"].default
KeysOption = Annotated[
    Path,
    typer.Option(
        "--keys", envvar="ARBITREX_KEYS", help="Key store file (SQLite; created owner-only)"
    ),
]


# The flags show the settings' own defaults, so --help cannot drift from what applies.
_DEFAULT = SimpleNamespace(**{n: f.default for n, f in ServeSettings.model_fields.items()})


@api_app.command()
def serve(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            help="Audit store URL: sqlite:///file.db, postgresql://... "
            "(required: here, in ARBITREX_DB or in the config file)",
            show_default=False,
        ),
    ] = None,
    broker: Annotated[
        BrokerKind, typer.Option(help="sim: paper trading on the simulator; mt5: live")
    ] = _DEFAULT.broker,
    host: Annotated[str, typer.Option(help="Address to listen on")] = _DEFAULT.host,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = _DEFAULT.port,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the simulated market (sim)")
    ] = _DEFAULT.seed,
    keys: Annotated[
        Path, typer.Option(help="Key store file (SQLite; created owner-only)")
    ] = _DEFAULT.keys,
    rate_limit: Annotated[
        float, typer.Option(min=0.001, help="Requests per second per key, on average")
    ] = _DEFAULT.rate_limit,
    burst: Annotated[int, typer.Option(min=1, help="Requests per key at once")] = _DEFAULT.burst,
    max_concurrent: Annotated[
        int, typer.Option(min=1, help="Executions waiting on the broker at once")
    ] = _DEFAULT.max_concurrent,
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
    ] = _DEFAULT.access_log,
    quote_tape_seconds: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds between samples of each traded symbol's quote (the markouts of live "
            "trades); 0: no quote tape",
        ),
    ] = _DEFAULT.quote_tape_seconds,
    cost_model: Annotated[
        Path | None,
        typer.Option(
            help="A model file (arbitrex model fit; a model file is code: only your own): the "
            "engine records its slippage estimate for each order, as evidence only"
        ),
    ] = None,
    paper_venue: Annotated[
        str | None,
        typer.Option(
            help="sim: the venue in a process of its own, which outlives the server (a Unix "
            "socket path, or HOST:PORT on loopback); started there if none runs"
        ),
    ] = None,
    paper_start: Annotated[
        str | None,
        typer.Option(
            help="sim: the instant (ISO 8601 with its zone) the paper clock reads at start-up; "
            "default now",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            envvar=CONFIG_ENV,
            help="TOML file whose serve table holds these settings (flags and ARBITREX_* "
            "variables, ARBITREX_PORT ..., take precedence over it), and whose mt5 table "
            "configures the live broker (magic, symbols, server_time_zone ...)",
            show_envvar=True,
        ),
    ] = None,
) -> None:
    """Serve the REST API until interrupted (Ctrl-C).

    Every setting can also come from an ARBITREX_* environment variable or the config file;
    exit codes: 0 stopped, 1 the store, keys or broker failed, 2 bad configuration,
    3 the port is in use."""
    # Only what the command line gave overrides the environment and the file: a flag left
    # at its default must not mask ARBITREX_PORT.
    given = {
        name: value
        for name, value in ctx.params.items()
        if name != "config"
        # By name: typer may parse with its own copy of click, whose enum is not click's.
        and getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
    }
    try:
        settings = load_settings(given, config)
        mt5 = load_mt5_config(config)  # checked whichever the broker: a typo waits for no one
    except ConfigError as error:
        fail(2, error)
    _serve(settings, mt5)


def _serve(settings: ServeSettings, mt5: MT5Config) -> None:
    db, broker, keys = settings.db, settings.broker, settings.keys
    # A bad model file is refused before the store or the broker is touched.
    estimator = cost_estimator(settings.cost_model) if settings.cost_model else None
    try:
        database = open_database(db)
    except ValueError as error:
        fail(2, f"db {db!r}: {error}")
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
            venue = None
            start = settings.paper_start.timestamp() if settings.paper_start else None
            if settings.paper_venue is not None:
                from scenarios.paper_venue import PaperVenueError, open_paper_venue

                try:
                    venue, line = open_paper_venue(settings.paper_venue, settings.seed, start)
                except PaperVenueError as error:
                    fail(1, str(error))
                typer.echo(line, err=True)
                close_broker = venue.close  # the connection only: the venue lives on
            engine, _ = paper_trading_engine(settings.seed, database, settings.latency_ms, venue)
        else:
            engine, close_broker = _live_mt5(
                database, settings.mt5_credentials, settings.mt5_bridge, mt5
            )
        engine.attach_cost_estimator(estimator)
        settled = engine.recover()
        if settled:
            typer.echo(f"recovery settled {len(settled)} open executions", err=True)
        api_settings = ApiSettings(
            rate_per_second=settings.rate_limit,
            burst=settings.burst,
            max_concurrent_executions=settings.max_concurrent,
            quote_tape_seconds=settings.quote_tape_seconds,
        )
        app = create_app(engine, key_store, api_settings)
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
        configure_logging(settings.access_log)
        uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
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
    database: ExecutionDatabase,
    credentials_file: Path | None,
    bridge: str | None,
    config: MT5Config,
) -> tuple[ExecutionEngine, Callable[[], None]]:
    """The live engine on MT5, or a one-line error (see `connected_mt5`)."""
    broker = connected_mt5(credentials_file, bridge, config)
    return ExecutionEngine(broker, database), broker.close


def connected_mt5(
    credentials_file: Path | None, bridge: str | None, config: MT5Config | None = None
) -> MT5Broker:
    """The MT5 broker, logged in, or a one-line error: 2 when the broker is not available or
    not configured, 1 when it cannot be reached. `bridge`: HOST:PORT of the mt5linux bridge;
    `config`: the broker's (the [mt5] table of the config file)."""
    address = None
    if bridge is not None:
        host, _, port = bridge.rpartition(":")
        if not host or not port.isdigit():
            fail(2, f"--mt5-bridge {bridge!r}: use HOST:PORT")
        address = (host, int(port))
    try:
        return connect_mt5(credentials_file, address, config)
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


@api_app.command("paper-venue")
def paper_venue_command(
    address: Annotated[str, typer.Argument(help="A Unix socket path, or HOST:PORT on loopback")],
    seed: Annotated[int, typer.Option(min=0, help="Seed of the simulated market")] = 7,
    stop: Annotated[bool, typer.Option(help="Stop the venue running at ADDRESS")] = False,
) -> None:
    """Run the paper venue of `serve --broker sim --paper-venue ADDRESS` in the foreground
    (its ledger lives as long as it does), or stop the one running there."""
    from scenarios import paper_venue

    try:
        if stop:
            if not paper_venue.stop(address):
                fail(1, f"no paper venue at {address}")
            return
        paper_venue.run(address, seed)
    except paper_venue.PaperVenueError as error:
        fail(1, str(error))
