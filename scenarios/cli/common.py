"""What the `arbitrex` commands share: where their output goes, and how a store URL given on
the command line is opened."""

from __future__ import annotations

import typer
from rich.console import Console

from engine.store import ExecutionDatabase, StoreUnavailable, open_database

console = Console()
err = Console(stderr=True, soft_wrap=True)  # error messages stay whole, never wrapped


def open_store(url: str) -> ExecutionDatabase:
    """The audit store `--db` names; a malformed URL is a usage error (exit 2), an
    unreachable store exit 1."""
    try:
        return open_database(url)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--db") from error
    except StoreUnavailable as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error
