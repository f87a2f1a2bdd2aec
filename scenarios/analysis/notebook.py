"""What the notebooks share: which runs or databases to analyse, library scenarios run small
enough to render in a minute when none are named, and figures shown as the report shows them.

`ARBITREX_RUN_DIRS` names the sources: run folders, sweep outputs or audit database URLs,
separated by `;` (plain paths may also be separated by `:`, as before). A relative path is
resolved, in order: against `ARBITREX_BASE_DIR` if it is set; else against the repository
root if the path exists there; else against the notebooks' folder. (A kernel cannot know
the shell it was launched from: `jupyter nbconvert` starts it in notebooks/.)
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import tempfile
from pathlib import Path

import plotly.graph_objects as go
from IPython.display import HTML, display

import scenarios
from engine.core.costing import CostEstimator
from scenarios.analysis.figures import figure_html, plotly_script
from scenarios.runner import run_scenario
from scenarios.spec import load_scenario

LIBRARY = Path(scenarios.__file__).resolve().parent
REPOSITORY = LIBRARY.parent
NOTEBOOKS = REPOSITORY / "notebooks"
SOURCES_VARIABLE = "ARBITREX_RUN_DIRS"
BASE_VARIABLE = "ARBITREX_BASE_DIR"
ORDERS_VARIABLE = "ARBITREX_NOTEBOOK_ORDERS"
DEFAULT_ORDERS = 400
URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# Figures shown in this kernel: each gets its own element id on the notebook's page.
_shown = itertools.count(1)


def named_sources(value: str | None = None) -> list[str | Path]:
    """The sources `ARBITREX_RUN_DIRS` (or `value`) names, resolved; [] when it is unset."""
    value = os.environ.get(SOURCES_VARIABLE, "") if value is None else value
    entries = []
    for part in value.split(";"):
        # A database URL keeps its colons ("postgresql://host:5432/db"); paths split on them.
        entries += [part] if URL.match(part.strip()) else part.split(":")
    return [resolve(entry.strip()) for entry in entries if entry.strip()]


def resolve(entry: str) -> str | Path:
    """A database URL as it is; a path made absolute by the module's stated rule."""
    if URL.match(entry):
        return entry
    path = Path(entry).expanduser()
    if path.is_absolute():
        return path
    base = os.environ.get(BASE_VARIABLE)
    if base:
        return Path(base).expanduser().resolve() / path
    for folder in (REPOSITORY, NOTEBOOKS):
        if (folder / path).exists():
            return folder / path
    raise FileNotFoundError(
        f"{entry}: found neither under {REPOSITORY} nor under {NOTEBOOKS}; give an absolute "
        f"path or set {BASE_VARIABLE} to the folder it is relative to"
    )


def orders() -> int:
    text = os.environ.get(ORDERS_VARIABLE, str(DEFAULT_ORDERS))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{ORDERS_VARIABLE}={text!r}: expected a whole number of orders ≥ 1")
    return int(text)


@functools.cache
def _scratch() -> tempfile.TemporaryDirectory[str]:
    """One folder for the kernel's library runs, removed when the kernel exits (the object
    lives as long as the cache: its finaliser runs at interpreter exit)."""
    return tempfile.TemporaryDirectory(prefix="arbitrex-notebook-")


def library_run(
    name: str, seed: int | None = None, cost_estimator: CostEstimator | None = None
) -> Path:
    """Run a library scenario into a temporary folder, scaled down to `orders()` over the
    same span of time, so its outages, halts and closes still land; with a cost model
    attached, the engine records its estimates."""
    scenario = load_scenario(LIBRARY / f"{name}.toml")
    wanted = orders()
    if scenario.orders.orders > wanted:
        rate = scenario.orders.rate_per_second * wanted / scenario.orders.orders
        scenario = scenario.with_overrides(
            {"orders.orders": wanted, "orders.rate_per_second": rate}
        )
    out = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_scratch().name))
    run_scenario(scenario, LIBRARY, seed=seed, out_dir=out, cost_estimator=cost_estimator)
    return out


def load_plotly() -> None:
    """Put plotly.js in the notebook once, inlined: the figures `show` draws then need no
    network, in the notebook and in `jupyter nbconvert --to html` alike."""
    display(HTML(plotly_script()))


def show(figure: go.Figure) -> None:
    """Display a figure: JupyterLab draws its plotly JSON; the classic notebook and
    nbconvert's HTML draw the same HTML as the report, without plotly's MathJax from a CDN."""
    bundle = {
        "application/vnd.plotly.v1+json": json.loads(figure.to_json()),
        "text/html": figure_html(figure, f"notebook-figure-{next(_shown)}"),
    }
    display(bundle, raw=True)
