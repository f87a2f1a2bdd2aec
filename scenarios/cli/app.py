"""The whole `arbitrex` application: the scenario commands (demo, run, sweep), reports,
the cost model, calibration, and the audit and API sub-commands, each from its own module."""

from __future__ import annotations

import typer

from scenarios.cli.api import api_app
from scenarios.cli.audit import audit_app
from scenarios.cli.calibrate import calibrate
from scenarios.cli.common import OneLineErrors
from scenarios.cli.model import model_app
from scenarios.cli.report import report
from scenarios.cli.runs import runs_app

app = typer.Typer(
    cls=OneLineErrors,
    help="Arbitrex execution kit: simulate, run and audit FX executions.",
    no_args_is_help=True,
)
app.add_typer(runs_app)  # demo, run, sweep
app.add_typer(audit_app, name="audit")
app.add_typer(api_app)  # serve, keys
app.add_typer(model_app, name="model")
app.command()(calibrate)
app.command()(report)


@app.callback()
def _root() -> None:
    """Arbitrex execution kit."""
