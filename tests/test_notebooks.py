"""The notebooks run from a clean checkout and draw their figures, and name their sources
as a user would: relative paths from where the user stands, database URLs whole."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from scenarios.analysis.notebook import NOTEBOOKS, REPOSITORY, named_sources

ROOT = Path(__file__).resolve().parents[1]


def test_sources_split_on_semicolons_and_colons_but_a_database_url_stays_whole(monkeypatch):
    monkeypatch.setenv("ARBITREX_BASE_DIR", "/srv/runs")
    named = named_sources("calm:calm_s2; postgresql://desk@db:5432/audit;sqlite:///a.db")
    assert named == [
        Path("/srv/runs/calm"),
        Path("/srv/runs/calm_s2"),
        "postgresql://desk@db:5432/audit",
        "sqlite:///a.db",
    ]


def test_a_relative_path_is_found_at_the_repository_root_before_the_notebooks_folder(
    monkeypatch,
):
    monkeypatch.delenv("ARBITREX_BASE_DIR", raising=False)
    monkeypatch.chdir(NOTEBOOKS)  # where `jupyter nbconvert` starts the kernel
    assert named_sources("scenarios:chaos_report.ipynb") == [
        REPOSITORY / "scenarios",
        NOTEBOOKS / "chaos_report.ipynb",
    ]


def test_a_relative_path_found_nowhere_is_refused_with_the_folders_searched(monkeypatch):
    monkeypatch.delenv("ARBITREX_BASE_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="no_such_run: found neither under"):
        named_sources("no_such_run")


def test_the_library_runs_a_notebook_makes_are_removed_when_its_kernel_exits(tmp_path):
    script = "from scenarios.analysis.notebook import library_run; print(library_run('calm', 1))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ARBITREX_NOTEBOOK_ORDERS": "40", "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    run = Path(result.stdout.strip().splitlines()[-1])
    assert run.is_relative_to(tmp_path)  # it was written there
    assert list(tmp_path.iterdir()) == []  # and is gone with the process


def test_no_sources_named_means_the_notebooks_run_library_scenarios(monkeypatch):
    monkeypatch.delenv("ARBITREX_RUN_DIRS", raising=False)
    assert named_sources() == []


def plotly_figures(outputs: list) -> list:
    return [
        output
        for output in outputs
        if "application/vnd.plotly.v1+json" in output.get("data", {})
        or "Plotly.newPlot" in output.get("data", {}).get("text/html", "")
    ]


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ["slippage_analysis.ipynb", "chaos_report.ipynb"])
def test_the_notebooks_execute_from_a_clean_checkout_and_produce_figures(notebook, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    assert all(not cell.get("outputs") for cell in source.cells if cell.cell_type == "code")
    monkeypatch.setenv("ARBITREX_NOTEBOOK_ORDERS", "150")
    monkeypatch.delenv("ARBITREX_RUN_DIRS", raising=False)
    client = nbclient.NotebookClient(
        source, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    outputs = [o for cell in source.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert errors == [] and len(plotly_figures(outputs)) >= 3
    pages = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert pages.count(get_plotlyjs()) == 1  # inlined once, for nbconvert's HTML
    assert not re.search(r"(?:https?|wss?)://", pages.replace(get_plotlyjs(), ""))
