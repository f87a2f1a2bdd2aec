"""What the `arbitrex` commands share: where their output goes, how they refuse, and how a
store URL given on the command line is opened."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

if TYPE_CHECKING:
    from pathlib import Path

    from engine.core.costing import CostEstimator
    from engine.store import ExecutionDatabase

# Text is printed as it is given: names and messages come from users' files and stores, and
# rich would read "[...]" in them as markup (failing on a "[/x]") and ":name:" as an emoji.
console = Console(markup=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)  # lines stay whole

T = TypeVar("T")
# The UsageError typer raises: click's, or (typer 0.2x) that of the copy of click it ships;
# in either case the base of BadParameter, which typer exports.
UsageError: Any = typer.BadParameter.__base__


def fail(code: int, problem: object) -> NoReturn:
    """Print `error: problem` as one line on stderr and exit: 2 when the input is at fault
    (nothing was created), 1 when something around the run failed."""
    lines = (line.strip() for line in str(problem).splitlines())
    err.print(Text.assemble(("error:", "red"), " ", "; ".join(line for line in lines if line)))
    raise typer.Exit(code)


class OneLineErrors(TyperGroup):
    """A bad option or an unknown command is refused as everything else is, on one line
    with exit 2, rather than in a panel; a command given no arguments still shows its help."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        return _in_one_line(lambda: super(OneLineErrors, self).make_context(*args, **kwargs))

    def invoke(self, ctx: Any) -> Any:
        return _in_one_line(lambda: super(OneLineErrors, self).invoke(ctx))


def _in_one_line(call: Callable[[], T]) -> T:
    try:
        return call()
    except UsageError as error:
        # Asking for help by giving no arguments is one too; typer tells it by name as well.
        if type(error).__name__ == "NoArgsIsHelpError":
            raise
        hint = f" (see {error.ctx.command_path} --help)" if error.ctx is not None else ""
        fail(error.exit_code, f"{error.format_message()}{hint}")


def open_store(url: str) -> ExecutionDatabase:
    """The audit store `--db` names; a malformed URL is a usage error (exit 2), an
    unreachable store exit 1."""
    # Imported here: `arbitrex --help` loads this module and must not load the engine.
    from engine.store import StoreUnavailable, open_database

    try:
        return open_database(url)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--db") from error
    except StoreUnavailable as error:
        fail(1, error)


def cost_estimator(path: Path) -> CostEstimator:
    """A fitted cost model's estimator (`arbitrex model fit`), for `run` and `serve` to
    attach to their engine; a file that is no model is refused in one line (exit 2)."""
    from scenarios.model import CostModelError, load_cost_model  # scikit-learn only if asked

    try:
        return load_cost_model(path).estimator
    except CostModelError as error:
        fail(2, error)
