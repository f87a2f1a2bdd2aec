"""The pre-trade cost model: its feature fold, its file, its calibration and its command line;
and, on runs it never saw, the issue's Must-show (slow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from engine.core.costing import CostFeatures, FillFacts, MarketMemory, TradeFacts
from scenarios.analysis.notebook import NOTEBOOKS
from scenarios.analysis.quality import enrich
from scenarios.cli.root import root
from scenarios.model import (
    CostModelError,
    estimate_vs_realised,
    evaluate,
    fit_cost_model,
    load_cost_model,
    save_cost_model,
)
from scenarios.model.estimator import conformal_adjustments, training_data
from scenarios.model.features import POINT_PIPS, spread_within_point
from scenarios.runner import run_scenario
from scenarios.spec import load_scenario
from tests.test_notebooks import plotly_figures

LIBRARY = Path(__file__).resolve().parents[1] / "scenarios"


def trade(execution_id: str, at: float, mid: float, symbol: str = "EURUSD") -> TradeFacts:
    return TradeFacts(
        execution_id, symbol, 1, at, mid - 0.00003, mid + 0.00003, 100_000, "market", "open",
        "accept", None,
    )  # fmt: skip


def executions(rows: int, seed: int = 0) -> pd.DataFrame:
    """Filled executions whose slippage spreads with the spread at arrival, on the point grid:
    wide quotes, wide slippage — what a model can learn and a per-symbol quantile cannot."""
    rng = np.random.default_rng(seed)
    created = 1_704_790_800.0 + np.cumsum(rng.exponential(0.5, rows))
    symbol = rng.choice(["EURUSD", "USDJPY"], rows)
    pip = np.where(symbol == "USDJPY", 0.01, 0.0001)
    mid = np.where(symbol == "USDJPY", 145.0, 1.085)
    spread_points = rng.integers(2, 30, rows)
    bid, ask = mid - spread_points * pip / 20, mid + spread_points * pip / 20
    direction = rng.choice([1, -1], rows)
    slip_points = np.round(rng.normal(0.0, spread_points / 4)).astype(int)
    side = np.where(direction > 0, ask, bid)
    fill_time = rng.uniform(0.01, 0.2, rows)
    return pd.DataFrame(
        {
            "execution_id": [f"s{seed}-{i}" for i in range(rows)],
            "symbol": symbol,
            "direction": direction,
            "intended_units": rng.integers(1, 20, rows) * 10_000,
            "executed_units": 0,
            "status": "FILLED",
            "outcome_reason": None,
            "arrival_bid": bid,
            "arrival_ask": ask,
            "average_fill_price": side + direction * slip_points * pip / 10,
            "created_at": created,
            "submitted_at": created,
            "last_fill_at": created + fill_time,
            "completed_at": created + fill_time,
            "fill_time_seconds": fill_time,
            "order_type": "market",
            "intent": "open",
            "scenario": "synthetic",
            "run": seed,
        }
    ).assign(executed_units=lambda f: f["intended_units"])


@pytest.fixture(scope="module")
def learnt() -> tuple:
    training, unseen = enrich(executions(2_500, 1)), enrich(executions(1_500, 2))
    return fit_cost_model(training, ("synthetic-1",)), training, unseen


# -- the fold ------------------------------------------------------------------------------


def test_a_trade_sees_only_what_was_observed_before_its_request_whatever_the_arrival_order():
    first, second = trade("a", 100.0, 1.0850), trade("b", 104.0, 1.0852)
    same_time = trade("c", 104.0, 1.0900)
    for arrivals in ([first, second, same_time], [same_time, second, first]):
        memory = MarketMemory()
        for seen in arrivals:
            memory.observe_arrival(seen)
        # c was requested with b: b's jump is not c's past, a's quote is
        assert memory.features(same_time).volatility_pips is None
        later = memory.features(trade("d", 105.0, 1.0852))
        # from a to b: 2 pips in 4 s = 1 pip/√s; then b to c at the same instant moves no time
        assert later.volatility_pips == pytest.approx(1.0)


def test_fills_teach_the_memory_their_time_and_slippage_once_they_have_ended():
    memory = MarketMemory()
    bought = trade("a", 100.0, 1.0850)
    memory.observe_arrival(bought)
    memory.observe_fill(
        bought, FillFacts(completed_at=100.5, fill_time_seconds=0.5, average_fill_price=1.08505)
    )
    assert memory.features(trade("b", 100.5, 1.0851)).fill_time_ms is None  # not yet ended
    known = memory.features(trade("c", 101.0, 1.0851))
    assert known.fill_time_ms == pytest.approx(500.0)
    assert known.recent_slippage_pips == pytest.approx(0.2)  # 1.08505 vs the ask 1.08503


def test_slippage_is_spread_across_its_point_the_same_way_wherever_it_is_read():
    frame = enrich(executions(200))
    spread = spread_within_point(frame)
    assert np.all(np.abs(spread) <= POINT_PIPS / 2)
    assert np.array_equal(spread_within_point(frame.iloc[::-1])[::-1], spread)
    assert abs(float(np.mean(spread))) < 0.01


# -- the model -----------------------------------------------------------------------------


def test_conformal_adjustments_put_a_tenth_of_held_out_slippage_beyond_each_tail():
    realised = np.arange(1, 100, dtype=float)  # 1..99
    raw = np.zeros((99, 3))
    low, median, high = conformal_adjustments(raw, realised)
    assert np.mean(realised < low) <= 0.1 and np.mean(realised > high) <= 0.1
    assert (low, median, high) == (10.0, 50.0, 90.0)


def test_the_model_is_calibrated_on_unseen_executions_and_beats_the_baseline(learnt):
    model, _, unseen = learnt
    scores = evaluate(model, unseen).set_index(["predictor", "symbol"])
    ours, naive = scores.loc[("model", "all")], scores.loc[("baseline", "all")]
    assert abs(ours["interval_coverage"] - 0.8) <= 0.05
    assert abs(ours["below_p10"] - 0.1) <= 0.025 and abs(ours["below_p90"] - 0.9) <= 0.025
    assert ours["pinball_mean"] < naive["pinball_mean"]
    assert set(scores.index.get_level_values("symbol")) == {"all", "EURUSD", "USDJPY"}


def test_the_engines_one_order_estimate_is_the_batch_prediction_to_the_bit(learnt):
    model, _, unseen = learnt
    data = training_data(unseen)
    batch = model.estimator.predict_frame(data.features)
    for i, row in enumerate(data.features.head(200).to_dict("records")):
        values = {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}
        estimate = model.estimator.estimate(CostFeatures(**values))
        assert (estimate.p10, estimate.p50, estimate.p90) == tuple(batch[i])
        assert estimate.model_id == model.header.model_id


def test_the_same_data_and_seed_make_the_same_model_file_to_the_byte(learnt, tmp_path):
    model, training, _ = learnt
    save_cost_model(model, tmp_path / "a.model")
    save_cost_model(fit_cost_model(training, ("synthetic-1",)), tmp_path / "b.model")
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()


def test_a_model_file_says_what_it_is_and_loads_back_to_the_same_predictions(learnt, tmp_path):
    model, _, unseen = learnt
    path = tmp_path / "cost.model"
    save_cost_model(model, path)
    header = json.loads(path.read_bytes().partition(b"\n")[0])
    assert header["format"] == "arbitrex-cost-model" and header["format_version"] == 1
    assert header["sources"] == ["synthetic-1"] and header["rows"] == 2_500
    assert "spread_pips" in header["features"] and header["sklearn_version"]
    loaded = load_cost_model(path)
    features = training_data(unseen).features
    assert np.array_equal(
        loaded.estimator.predict_frame(features), model.estimator.predict_frame(features)
    )
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-10], "corrupt: the payload does not match its checksum"),
        (lambda b: b"\x00\x01 not a model", "not an arbitrex cost model file"),
        (lambda b: b.replace(b'"format_version":1', b'"format_version":2', 1), "format version 2"),
        (lambda b: b.replace(b'"features_version":1', b'"features_version":0', 1), "features"),
        (lambda b: re.sub(rb'"sklearn_version":"[^"]*"', b'"sklearn_version":"0.1"', b), "0.1"),
        (lambda b: b.replace(b'"rows":', b'"rows":"many","x":', 1), "bad model header"),
    ],
    ids=["truncated", "foreign", "newer format", "other features", "other sklearn", "bad header"],
)
def test_a_damaged_or_foreign_model_file_is_refused_in_one_line(learnt, tmp_path, damage, message):
    model, _, _ = learnt
    path = tmp_path / "cost.model"
    save_cost_model(model, path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CostModelError, match=re.escape(message)) as refused:
        load_cost_model(path)
    assert "\n" not in str(refused.value)


def test_too_few_filled_executions_are_refused_before_anything_is_fitted():
    with pytest.raises(CostModelError, match="50 filled executions to learn from"):
        fit_cost_model(enrich(executions(50)), ())


def test_estimates_recorded_by_the_engine_are_compared_with_what_was_realised():
    frame = enrich(executions(400)).assign(label=lambda f: np.where(f.index < 200, "a", "b"))
    frame["estimated_slippage_p10_pips"] = -1.0
    frame["estimated_slippage_p50_pips"] = 0.0
    frame["estimated_slippage_p90_pips"] = 1.0
    frame.loc[frame.index >= 300, "estimated_slippage_p50_pips"] = np.nan  # no estimate
    table = estimate_vs_realised(frame).set_index("label")
    assert list(table["n"]) == [200, 100]
    realised = frame["slippage_vs_side_pips"]
    assert table.loc["a", "realised_mean_pips"] == pytest.approx(realised[:200].mean())
    inside = (realised[:200] + spread_within_point(frame)[:200]).between(-1.0, 1.0).mean()
    assert table.loc["a", "interval_coverage"] == pytest.approx(inside)
    assert estimate_vs_realised(enrich(executions(10))).empty  # no model attached


# -- the command line ----------------------------------------------------------------------


def test_model_fit_refuses_what_is_no_source_in_one_line_and_writes_nothing(tmp_path):
    result = CliRunner().invoke(
        root, ["model", "fit", str(tmp_path), "--out", str(tmp_path / "cost.model")]
    )
    assert result.exit_code == 2
    assert "a folder with neither executions.parquet" in result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_model_evaluate_refuses_a_file_that_is_no_model(tmp_path):
    (tmp_path / "cost.model").write_text("hello\n")
    result = CliRunner().invoke(
        root, ["model", "evaluate", str(tmp_path), "--model", str(tmp_path / "cost.model")]
    )
    assert result.exit_code == 2
    assert "not an arbitrex cost model file" in result.output


# -- the Must-show: library runs the model never saw ---------------------------------------

MIX = ("neutral_ecn", "retail_dealing_desk", "replay_gbpusd", "news_spike", "calm", "flaky_network")


def library_runs(root_dir: Path, seeds: tuple[int, ...], orders: int) -> list[Path]:
    folders = []
    for name in MIX:
        scenario = load_scenario(LIBRARY / f"{name}.toml")
        rate = scenario.orders.rate_per_second * orders / scenario.orders.orders
        scenario = scenario.with_overrides(
            {"orders.orders": orders, "orders.rate_per_second": rate}
        )
        for seed in seeds:
            folder = root_dir / f"{name}-{seed}"
            run_scenario(scenario, LIBRARY, seed=seed, out_dir=folder)
            folders.append(folder)
    return folders


@pytest.mark.slow
def test_on_runs_it_never_saw_the_interval_covers_80_percent_and_beats_the_baseline(
    tmp_path, fx_data
):
    seen = library_runs(tmp_path / "seen", (1, 2, 3), orders=250)
    unseen = library_runs(tmp_path / "unseen", (101, 102), orders=250)
    runner = CliRunner()
    fitted = runner.invoke(
        root, ["model", "fit", *map(str, seen), "--out", str(tmp_path / "cost.model")]
    )
    assert fitted.exit_code == 0, fitted.output
    judged = runner.invoke(
        root, ["model", "evaluate", *map(str, unseen), "--model", str(tmp_path / "cost.model")]
    )
    assert judged.exit_code == 0, judged.output
    print(judged.output)  # the numbers, for the record (pytest -s)
    assert "(target 80% ± 5%: held)" in judged.output and "(better)" in judged.output


@pytest.mark.slow
def test_the_cost_model_notebook_runs_from_a_clean_checkout_and_draws_its_figures(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = nbformat.read(NOTEBOOKS / "cost_model.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in source.cells if cell.cell_type == "code")
    monkeypatch.setenv("ARBITREX_NOTEBOOK_ORDERS", "150")
    for variable in ("ARBITREX_TRAIN_DIRS", "ARBITREX_UNSEEN_DIRS"):
        monkeypatch.delenv(variable, raising=False)
    client = nbclient.NotebookClient(
        source, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    outputs = [o for cell in source.cells if cell.cell_type == "code" for o in cell.outputs]
    assert [o for o in outputs if o.output_type == "error"] == []
    assert len(plotly_figures(outputs)) == 2  # calibration, estimated vs realised
    pages = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert pages.count(get_plotlyjs()) == 1  # inlined once, for nbconvert's HTML
    assert not re.search(r"(?:https?|wss?)://", pages.replace(get_plotlyjs(), ""))
