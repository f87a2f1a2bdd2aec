"""`arbitrex report` as a quant uses it: any mix of runs, sweep points and audit databases,
each labelled, compared with intervals in the terminal and on the page."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from scenarios.analysis import SourceError, load_sources
from scenarios.analysis.sources import enriched
from scenarios.cli.app import app
from scenarios.model import fit_cost_model, load_cost_model, save_cost_model
from scenarios.runner import run_scenario
from scenarios.sweep import sweep
from tests import store_backends as sb
from tests.test_scenarios import LIBRARY, reduced

ORDERS = 80


def small(name: str):
    return reduced(LIBRARY / f"{name}.toml").with_overrides({"orders.orders": ORDERS})


def report(*args: str) -> Result:
    return CliRunner().invoke(app, ["report", *args])


def row_of(output: str, label: str) -> list[str]:
    """The cells of the terminal table's row for `label`."""
    [line] = [line for line in output.splitlines() if line.startswith(f"│ {label} ")]
    return [cell.strip() for cell in line.strip("│").split("│")]


@pytest.fixture(scope="module")
def calm_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two seeds of one scenario, each in its own run folder."""
    folders = []
    for seed in (1, 2):
        out = tmp_path_factory.mktemp(f"calm{seed}")
        run_scenario(small("calm"), LIBRARY, seed=seed, out_dir=out)
        folders.append(out)
    return folders


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One sweep (2 parameter values x 2 seeds) run by one worker, then by two."""
    folder = tmp_path_factory.mktemp("sweep")
    scenario = folder / "chaos.toml"
    scenario.write_text(
        (LIBRARY / "chaos_monkey.toml").read_text().replace("orders = 1500", f"orders = {ORDERS}")
    )
    grid = {"faults.reply_loss": [0.0, 0.05]}
    one, two = folder / "one", folder / "two"
    sweep(scenario, grid, [1, 2], workers=1, out_dir=one)
    sweep(scenario, grid, [1, 2], workers=2, out_dir=two)
    return one, two


def test_two_seeds_of_one_scenario_are_two_labelled_rows_with_their_difference_and_interval(
    calm_runs, tmp_path
):
    page = tmp_path / "report.html"
    result = report(*map(str, calm_runs), "--out", str(page))
    assert result.exit_code == 0, result.output
    first, second = row_of(result.output, "calm s1"), row_of(result.output, "calm s2")
    assert first[1] == second[1] == f"{ORDERS}"  # executions, each run its own
    assert first[-3:] == ["baseline"] * 3
    # The difference from the baseline with its interval: "+0.04 [+0.02, +0.05]".
    interval = re.compile(r"^[+-]?[\d,]+(\.\d+)? \[[+-]?[\d,.]+, [+-]?[\d,.]+\]$")
    assert all(interval.match(cell) for cell in second[-3:]), second
    html = page.read_text()
    for cell in (*first, *second):  # the page shows the same table, cell for cell
        assert f"<td>{cell}</td>" in html
    shown = re.sub(r"<script.*?</script>", "", html, flags=re.DOTALL)  # text, not plotly.js
    assert "Δ slippage (pips)" in shown
    assert not re.search(r"\de[+-]\d", shown)  # no scientific notation


def test_the_page_opens_with_each_sources_tear_sheet_header(calm_runs, tmp_path):
    page = tmp_path / "report.html"
    assert report(str(calm_runs[0]), "--label", "calm", "--out", str(page)).exit_code == 0
    html = page.read_text()
    summary = json.loads((calm_runs[0] / "summary.json").read_text())
    for field, value in (
        ("Results hash", summary["results_hash"]),
        ("Invariants", "passed"),
        ("Config version", summary["config_version"]),
        ("Engine version", summary["engine_version"]),
        ("Description", summary["description"]),
        ("Broker", "sim"),
    ):
        assert f"<th>{field}</th><td>{value}</td>" in html
    assert "<h3>calm</h3>" in html  # the label given
    assert not re.search(r"""<(link|img|script)[^>]+(href|src)=""", html)  # nothing fetched


def test_a_run_folder_from_before_the_header_fields_still_loads_as_unknown(calm_runs, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(calm_runs[0], old)
    summary = json.loads((old / "summary.json").read_text())
    for field in ("description", "engine_version", "config_version", "broker", "counts"):
        summary.pop(field)
    (old / "summary.json").write_text(json.dumps(summary))
    [source] = load_sources([old])
    assert (source.header.engine_version, source.header.broker) == ("unknown", "unknown")
    assert source.header.counts.decisions == ORDERS  # counted from the executions


def test_a_sweep_gives_the_same_table_and_run_folders_whatever_the_worker_count(sweeps):
    one, two = sweeps
    table = pd.read_parquet(one / "sweep.parquet")
    pd.testing.assert_frame_equal(table, pd.read_parquet(two / "sweep.parquet"))
    assert list(table["run_dir"]) == [
        "points/000-seed1", "points/001-seed2", "points/002-seed1", "points/003-seed2",
    ]  # fmt: skip
    for run_dir in table["run_dir"]:
        pd.testing.assert_frame_equal(
            pd.read_parquet(one / run_dir / "executions.parquet"),
            pd.read_parquet(two / run_dir / "executions.parquet"),
        )


def test_a_sweep_output_reports_its_points_like_runs_with_the_parameter_as_a_column(
    sweeps, tmp_path
):
    result = report(str(sweeps[1]), "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    baseline = row_of(result.output, "faults.reply_loss=0.0 s1")
    point = row_of(result.output, "faults.reply_loss=0.05 s2")
    assert baseline[1] == "0.0" and point[1] == "0.05"  # the parameter's column
    assert point[-3:] != ["baseline"] * 3
    assert "sweep points across seeds" in result.output  # run-level, over the seeds
    html = (tmp_path / "r.html").read_text()
    assert "<th>faults.reply_loss</th>" in html


def test_a_bare_sweep_table_reports_its_points_run_level_numbers_across_seeds(sweeps, tmp_path):
    table = tmp_path / "sweep.parquet"
    shutil.copy(sweeps[0] / "sweep.parquet", table)  # the points' folders left behind
    result = report(str(table), "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.output.splitlines() if x.startswith("│ 0.05 ") and "p95" in x]
    runs, mean = [cell.strip() for cell in line.strip("│").split("│")][2:]
    assert runs == "2" and re.match(r"^[\d,]+ \[[\d,]+, [\d,]+\]$", mean)


def test_an_audit_database_reports_like_the_run_that_wrote_it(calm_runs, tmp_path):
    database = calm_runs[0] / "audit.db"
    result = report(str(calm_runs[0]), str(database), "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    run, from_db = row_of(result.output, "calm s1"), row_of(result.output, "audit.db")
    assert run[1:7] == from_db[1:7]  # the same executions, measured the same
    url = f"sqlite:///{database}"
    assert report(url, "--out", str(tmp_path / "u.html")).exit_code == 0


def test_a_postgresql_audit_database_reports_like_a_run(tmp_path):
    with sb.store_target("postgresql", tmp_path) as target:
        run_scenario(small("calm"), LIBRARY, db_url=target.url)
        result = report(target.url, "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    row = row_of(result.output, f"test/{target.schema}")
    assert row[1] == f"{ORDERS}" and row[-3:] == ["baseline"] * 3


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("nowhere", "nowhere: no such file or folder: expected a run folder"),
        ("{run}/executions.parquet", "not a sweep table, no column scenario"),
        ("{run}/summary.json", "summary.json: not a source"),
        ("{tmp}/empty", "a folder with neither executions.parquet nor sweep.parquet"),
        ("{tmp}/missing.db", "no such file or folder"),
        ("sqlite:///{tmp}/missing.db", "no such database file"),
        ("{tmp}/text.db", "not an SQLite database"),
        ("mysql://host/db", "unsupported database URL scheme 'mysql'"),
        ("{run} {run}", "two sources are labelled 'calm s1'"),
        ("{run} --label a --label b", "2 labels for 1 sources"),
        ("{run} --baseline nobody", "baseline 'nobody' is not one of the labels: calm s1"),
    ],
)
def test_a_bad_source_is_refused_in_one_line_naming_it_and_what_was_expected(
    given, message, calm_runs, tmp_path
):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.db").write_text("not a database")
    args = given.format(run=calm_runs[0], tmp=tmp_path).split()
    result = report(*args, "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "missing.db").exists()


def test_a_sweep_point_label_given_prefixes_each_points_own(sweeps):
    sources = load_sources([sweeps[0]], ["fast"])
    assert [s.label for s in sources][:2] == [
        "fast: faults.reply_loss=0.0 s1",
        "fast: faults.reply_loss=0.0 s2",
    ]
    with pytest.raises(SourceError, match="no sources given"):
        load_sources([])


def test_sweep_out_a_folder_writes_the_table_and_each_points_run_a_parquet_file_the_table(
    sweeps, tmp_path
):
    scenario = sweeps[0].parent / "chaos.toml"
    folder, table = tmp_path / "swept", tmp_path / "table.parquet"
    for out in (folder, table):
        args = ["sweep", str(scenario), "--seeds", "3", "--workers", "1", "--out", str(out)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    assert (folder / "points" / "000-seed3" / "summary.json").is_file()
    written = pd.read_parquet(folder / "sweep.parquet")
    assert list(written["run_dir"]) == ["points/000-seed3"]
    assert "run_dir" not in pd.read_parquet(table) and not (tmp_path / "points").exists()
    pd.testing.assert_frame_equal(written.drop(columns="run_dir"), pd.read_parquet(table))


def test_sweep_out_a_file_that_is_not_a_table_is_refused_before_any_run(tmp_path):
    taken = tmp_path / "notes"
    taken.write_text("mine")
    scenario = str(LIBRARY / "calm.toml")
    result = CliRunner().invoke(app, ["sweep", scenario, "--seeds", "1", "--out", str(taken)])
    assert result.exit_code == 2 and "is a file, not a folder" in result.stderr
    assert taken.read_text() == "mine"


@pytest.mark.slow
def test_a_run_that_carried_a_cost_model_is_reported_with_its_estimates_against_realised(
    tmp_path,
):
    scenario = reduced(LIBRARY / "neutral_ecn.toml").with_overrides({"orders.orders": 300})
    taught = tmp_path / "taught"
    run_scenario(scenario, LIBRARY, seed=1, out_dir=taught)
    model = tmp_path / "cost.model"
    save_cost_model(fit_cost_model(enriched(load_sources([taught])), (str(taught),)), model)
    carried = tmp_path / "carried"
    estimator = load_cost_model(model).estimator
    run_scenario(scenario, LIBRARY, seed=2, out_dir=carried, cost_estimator=estimator)
    page = tmp_path / "report.html"
    result = report(str(taught), str(carried), "--out", str(page))
    assert result.exit_code == 0, result.output
    assert "pre-trade cost estimate against realised slippage" in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("│ neutral_ecn s2")
              and "/" in line]  # fmt: skip
    assert "neutral_ecn s1" not in result.output.split("pre-trade cost estimate")[1]  # no model
    assert re.search(r"\d+\.\d% / \d+\.\d% / \d+\.\d%", line)  # shares below p10 / p50 / p90
    assert "Pre-trade cost estimate against realised slippage" in page.read_text()
