"""The `arbitrex` entry point: `--help` and `--version` answer without loading the commands.

The commands live in `scenarios.cli.app` and the modules it registers, which import the
engine, FastAPI, pandas and the simulator: seconds of start-up that listing them or printing
the version does not need. This group lists them from the table below and loads the real
command only when one is run (or its own help asked for): for demo, run and sweep, only
their own module (`scenarios.cli.runs`). tests/test_cli.py checks the table against the
commands, that `arbitrex --help` imports none of the heavy packages and that a scenario
command imports no other command's.
"""

from __future__ import annotations

from importlib import metadata
from typing import Annotated, Any

import click
import typer

from scenarios.cli.common import OneLineErrors

DISTRIBUTION = "arbitrex-execution"
HELP = "Arbitrex execution kit: simulate, run and audit FX executions."

# name -> the first sentence of its help, in the order `--help` lists them.
COMMANDS: dict[str, str] = {
    "demo": "Execute N approved trades against the simulated market and summarise the run.",
    "run": "Run a scenario and check its invariants; exit 1 if any is violated.",
    "sweep": "Run a scenario over parameter grids and seeds, in parallel; gather one table.",
    "report": "A self-contained HTML report of execution quality for one or more runs.",
    "model": "Fit and evaluate the pre-trade cost model: quantiles of slippage.",
    "calibrate": "Fit the synthetic market to quotes and write it as a scenario's market section.",
    "audit": "Verify and export the audit trail.",
    "serve": "Serve the REST API until interrupted (Ctrl-C).",
    "paper-venue": "Run the paper venue of `serve --broker sim --paper-venue ADDRESS` in the "
    "foreground (its ledger lives as long as it does), or stop the one running there.",
    "keys": "Create, list and revoke API keys (stored hashed).",
}


def version() -> str:
    """The installed distribution's version."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "(not installed: pip install .)"


class LazyCommands(OneLineErrors):
    """Lists COMMANDS by name and help; builds the full application on the first lookup of
    a command to run."""

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:
            return click.Command(cmd_name, help=COMMANDS[cmd_name])
        return application_of(cmd_name).get_command(ctx, cmd_name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


# Commands whose module imports no other command's: running one loads that module only.
SCENARIO_COMMANDS = ("demo", "run", "sweep")


def application_of(name: str) -> Any:
    """The click group that runs `name`: the scenario commands' own module for demo, run
    and sweep (the API's and calibration's imports are 0.4 s of every sweep's serial
    start-up), the whole application for the rest."""
    if name in SCENARIO_COMMANDS:
        from scenarios.cli.runs import runs_app

        return typer.main.get_command(runs_app)
    return full_application()


def full_application() -> Any:
    """The click group of every command, with all their imports."""
    from scenarios.cli.app import app  # the point of this module

    return typer.main.get_command(app)


root = typer.Typer(cls=LazyCommands, help=HELP, no_args_is_help=True)


def _print_version(given: bool) -> None:
    if given:
        typer.echo(f"arbitrex {version()}")
        raise typer.Exit(0)


@root.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Arbitrex execution kit."""


def main() -> None:
    root()
