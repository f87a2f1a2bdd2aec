"""`arbitrex audit`: prove the audit trail untouched, export it for compliance review, and
fetch the quote tape of a past period from the MT5 terminal (for the markouts of live trades)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from engine.store import VerificationResult, export_audit_trail_to, verify_audit_store
from scenarios.cli.common import console, err, fail, open_store
from scenarios.cli.settings import CONFIG_ENV, ConfigError, load_mt5_config

audit_app = typer.Typer(help="Verify and export the audit trail.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    db: Annotated[str, typer.Option(help="Audit store URL")],
) -> None:
    """Walk the hash chain and check the executions table against the records: name the
    first bad record and every disagreeing row, or say how much verified."""
    with open_store(db) as database:
        try:
            result = verify_audit_store(database)
        except TypeError as error:
            raise typer.BadParameter(str(error), param_hint="--db") from error
    chain, table = result.chain, result.executions
    if result.ok:
        console.print(
            f"OK: {chain.records_verified} records verified ({chain.grouped_records} of them "
            f"the events of one append); head {chain.head_hash}; "
            f"{table.executions_verified} executions agree with their records",
            soft_wrap=True,
        )
        return
    if not chain.ok:
        _tampered(
            f"record {chain.first_bad_seq} ({_record(chain)}): {chain.problem}; "
            f"{chain.records_verified} records before it verified"
        )
    for disagreement in table.disagreements:
        _tampered(disagreement.problem)
    unshown = table.executions_disagreeing - len({d.execution_id for d in table.disagreements})
    if unshown:
        _tampered(f"and {unshown} more executions whose row disagrees with their records")
    raise typer.Exit(1)


def _record(chain: VerificationResult) -> str:
    """What the first bad record is: an execution's, a control event (it belongs to no
    execution, and is no less present for that), or missing."""
    if chain.first_bad_kind is None:
        return "missing"
    if chain.first_bad_execution_id is None:
        return f"control event {chain.first_bad_kind}"
    return f"execution {chain.first_bad_execution_id}, {chain.first_bad_kind}"


def _tampered(problem: str) -> None:
    # One line per problem, never wrapped; the console reads no markup in the problem's text.
    console.print(Text.assemble(("TAMPERED", "red"), f": {problem}"), soft_wrap=True)


@audit_app.command("export")
def audit_export(
    db: Annotated[str, typer.Option(help="Audit store URL")],
    out_path: Annotated[Path, typer.Option("--out", help="File to write")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, jsonl or parquet (default: from --out)")
    ] = None,
    start: Annotated[str | None, typer.Option(help="ISO 8601; default: the beginning")] = None,
    end: Annotated[str | None, typer.Option(help="ISO 8601; default: no end")] = None,
) -> None:
    """Export the audit records stamped in [start, end) for compliance review."""
    chosen = fmt or out_path.suffix.lstrip(".")
    if chosen not in ("csv", "jsonl", "parquet"):
        raise typer.BadParameter(f"{chosen!r}: use csv, jsonl or parquet", param_hint="--format")
    lo = _moment(start, "--start") or datetime(1970, 1, 1, tzinfo=UTC)
    hi = _moment(end, "--end") or datetime(9999, 1, 1, tzinfo=UTC)
    with open_store(db) as database:
        written = export_audit_trail_to(database, out_path, chosen, lo, hi)  # type: ignore[arg-type]
    console.print(f"{written} records written to {out_path}")


@audit_app.command("fetch-tape")
def audit_fetch_tape(
    db: Annotated[str, typer.Option(help="Audit store URL")],
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols: EURUSD,USDJPY")],
    start: Annotated[str, typer.Option("--from", help="ISO 8601 (UTC if no zone given)")],
    end: Annotated[str, typer.Option("--to", help="ISO 8601 (UTC if no zone given)")],
    mt5_credentials: Annotated[
        Path | None,
        typer.Option(help="TOML with login, password, server (default: MT5_* variables)"),
    ] = None,
    mt5_bridge: Annotated[
        str | None, typer.Option(help="HOST:PORT of the mt5linux bridge (Linux)")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            envvar=CONFIG_ENV,
            help="TOML file whose mt5 table configures the broker (symbols, magic, the "
            "server's clock: server_time_zone ...), as for serve",
            show_envvar=True,
        ),
    ] = None,
) -> None:
    """Fetch the quote tape of [from, to) from the MT5 terminal's tick history, the last tick
    of each second, into the audit store: markouts for live trades the engine did not sample."""
    wanted = _symbols(symbols)
    try:
        mt5 = load_mt5_config(config)
    except ConfigError as error:
        fail(2, error)
    lo, hi = _moment(start, "--from"), _moment(end, "--to")
    assert lo is not None and hi is not None  # both are required options
    if lo >= hi:
        raise typer.BadParameter(f"{end!r} is not after --from {start!r}", param_hint="--to")
    # Imported on use: the commands' help must not load the broker (nor uvicorn, with api).
    from brokers.mt5.ticks import fetch_quote_tape
    from engine.core.ports import BrokerError
    from engine.store import StoreUnavailable
    from engine.store.quotes import check_period
    from scenarios.cli.api import connected_mt5

    with open_store(db) as database:
        try:
            check_period(lo.timestamp(), hi.timestamp(), database.quote_retention_seconds)
        except ValueError as too_long:
            raise typer.BadParameter(str(too_long), param_hint="--from/--to") from None
        broker = connected_mt5(mt5_credentials, mt5_bridge, mt5)
        try:
            unlisted = [symbol for symbol in wanted if broker.symbol_spec(symbol) is None]
            if unlisted:
                fail(2, f"--symbols: the terminal does not list {', '.join(unlisted)}")
            if not broker.learn_server_offset(wanted):
                err.print(
                    "warning: no fresh tick showed the trade server's offset from UTC (is the "
                    f"market closed?): ticks are read at {broker.config.server_time_offset_seconds}"
                    " s from UTC, as configured"
                )
            written = fetch_quote_tape(broker, database, wanted, lo.timestamp(), hi.timestamp())
        except (BrokerError, StoreUnavailable) as error:
            fail(1, error)
        finally:
            broker.close()
    for symbol, count in written.items():
        console.print(f"{symbol}: {count} samples")
    # Not the URL: a PostgreSQL one may carry a password.
    console.print(f"{sum(written.values())} samples written to the audit store's quote tape")


def _symbols(text: str) -> list[str]:
    """The symbols of `--symbols`, in order, each once; an empty one is refused."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise typer.BadParameter(f"an empty symbol in {text!r}", param_hint="--symbols")
    return list(dict.fromkeys(names))


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}", param_hint=name) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
