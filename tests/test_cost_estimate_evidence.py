"""The engine's cost estimate is evidence: recorded at validation, changing nothing, and built
from the same features the analysis replays from a run's table."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pandas as pd
import pytest

from engine.api import KeyStore, Role
from engine.core import costing
from engine.core.costing import CostEstimate, CostFeatures
from engine.core.events import CostEstimated, from_payload, to_payload
from engine.core.lifecycle import Execution
from engine.schemas import ExecutionStatus
from engine.store import open_database
from scenarios.model import fit_cost_model, replayed_features, save_cost_model
from scenarios.model.inputs import enriched_executions
from scenarios.runner import run_scenario
from scenarios.spec import load_scenario
from sim.world import SimulatedWorld
from tests.api_support import approved, bearer, cli_api, one_key_per_role, serve_process
from tests.builders import decision, run_one

LIBRARY = Path(__file__).resolve().parents[1] / "scenarios"
ESTIMATES = [f"estimated_slippage_p{q}_pips" for q in (10, 50, 90)]


class Steady:
    """An estimator that always expects the same, and remembers what it was asked."""

    model_id = "steady"

    def __init__(self) -> None:
        self.asked: list[CostFeatures] = []

    def estimate(self, features: CostFeatures) -> CostEstimate:
        self.asked.append(features)
        return CostEstimate(-0.1, 0.0, 0.3, self.model_id)


class Broken:
    model_id = "broken"

    def estimate(self, features: CostFeatures) -> CostEstimate:
        raise RuntimeError("no trees today")


def small(name: str, orders: int = 120):
    scenario = load_scenario(LIBRARY / f"{name}.toml")
    rate = scenario.orders.rate_per_second * orders / scenario.orders.orders
    return scenario.with_overrides({"orders.orders": orders, "orders.rate_per_second": rate})


def estimates_of(trail: list) -> list[CostEstimated]:
    return [event for event in trail if isinstance(event, CostEstimated)]


def test_an_attached_model_changes_no_status_fill_or_price_of_a_run(tmp_path):
    scenario = small("retail_dealing_desk")  # requotes and last look: not every order fills
    plain = run_scenario(scenario, LIBRARY, out_dir=tmp_path / "plain")
    estimated = run_scenario(
        scenario, LIBRARY, out_dir=tmp_path / "estimated", cost_estimator=Steady()
    )

    assert estimated.results_hash == plain.results_hash
    without = pd.read_parquet(tmp_path / "plain" / "executions.parquet")
    with_model = pd.read_parquet(tmp_path / "estimated" / "executions.parquet")
    outcome = [c for c in without.columns if c not in ESTIMATES]
    pd.testing.assert_frame_equal(with_model[outcome], without[outcome], check_exact=True)
    assert without[ESTIMATES].isna().all().all()
    validated = with_model["arrival_bid"].notna()
    assert set(with_model["status"]) > {"FILLED"}  # refusals too, estimated all the same
    assert (with_model.loc[validated, ESTIMATES] == [-0.1, 0.0, 0.3]).all().all()
    assert with_model.loc[~validated, ESTIMATES].isna().all().all()


def test_an_estimator_that_fails_is_recorded_as_unavailable_and_the_trade_goes_on():
    world = SimulatedWorld.build(seed=3)
    world.engine.attach_cost_estimator(Broken())
    execution = run_one(world, decision())

    assert execution.status is ExecutionStatus.FILLED
    (estimate,) = estimates_of(list(world.engine.database.events(execution.execution_id)))
    assert (estimate.p10_pips, estimate.p50_pips, estimate.p90_pips) == (None, None, None)
    assert estimate.model_id == "broken"
    assert estimate.detail == "estimate unavailable: RuntimeError: no trees today"
    assert execution.estimated_slippage_pips is None


def test_the_estimate_is_recorded_before_the_order_is_sent_with_the_features_it_read():
    world = SimulatedWorld.build(seed=3)
    steady = Steady()
    world.engine.attach_cost_estimator(steady)
    execution = run_one(world, decision(units=250_000))

    kinds = [type(e).__name__ for e in world.engine.database.events(execution.execution_id)]
    assert kinds[:4] == [
        "ExecutionRequested", "ValidationCompleted", "CostEstimated", "SubmissionAttempted",
    ]  # fmt: skip
    (estimate,) = estimates_of(list(world.engine.database.events(execution.execution_id)))
    (asked,) = steady.asked
    assert estimate.features == asked.as_dict()
    assert asked.lots == 2.5 and asked.symbol == "EURUSD" and asked.order_type == "market"
    assert asked.volatility_pips is None and asked.fill_time_ms is None  # nothing seen before
    assert execution.estimated_slippage_pips == (-0.1, 0.0, 0.3)


def test_without_a_model_no_feature_is_computed(monkeypatch):
    def refuse(*args: object) -> None:
        raise AssertionError("the hot path computed cost features without a model")

    monkeypatch.setattr(costing.MarketMemory, "features", refuse)
    monkeypatch.setattr(costing.MarketMemory, "observe_arrival", refuse)
    monkeypatch.setattr(costing.MarketMemory, "observe_fill", refuse)
    world = SimulatedWorld.build(seed=3)
    execution = run_one(world, decision())

    assert execution.status is ExecutionStatus.FILLED
    assert estimates_of(list(world.engine.database.events(execution.execution_id))) == []


def test_a_cost_estimate_survives_the_audit_trail_and_its_absence_too():
    features = CostFeatures(
        "USDJPY", "limit", "open", "complete", 0.5, 1.2, None, 0.3, 22, 41.5, -0.02, 0.1
    )
    for event in (
        CostEstimated("e-1", 10.0, -0.2, 0.1, 0.6, "m1", features.as_dict()),
        CostEstimated("e-1", 10.0, None, None, None, "m1", features.as_dict(), "unavailable"),
    ):
        assert from_payload("CostEstimated", "e-1", 10.0, to_payload(event)) == event


def test_a_replayed_execution_with_its_estimate_keeps_it():
    world = SimulatedWorld.build(seed=3)
    world.engine.attach_cost_estimator(Steady())
    first = run_one(world, decision())
    stored = world.engine.database.events(first.execution_id)

    replayed = Execution.replay(first.execution_id, stored)
    assert replayed.estimated_slippage_pips == (-0.1, 0.0, 0.3)


@pytest.mark.parametrize(
    "name", ["flaky_network", "retail_dealing_desk", "limit_orders", "chaos_monkey"]
)
def test_the_features_the_engine_estimated_from_are_those_its_run_table_replays(tmp_path, name):
    """Train and live features are one: every feature the engine recorded at validation,
    to the last bit, is what the analysis rebuilds from executions.parquet alone."""
    run_scenario(small(name, 300), LIBRARY, out_dir=tmp_path, cost_estimator=Steady())
    table = pd.read_parquet(tmp_path / "executions.parquet")
    replayed = replayed_features(table)
    with open_database(f"sqlite:///{tmp_path / 'audit.db'}") as database:
        recorded = {
            estimate.execution_id: estimate.features
            for execution_id in table["execution_id"]
            for estimate in estimates_of(list(database.events(execution_id)))
        }

    assert len(recorded) == table["arrival_bid"].notna().sum() > 0
    for index, execution_id in table["execution_id"].items():
        if execution_id in recorded:
            rebuilt = {k: _none(v) for k, v in replayed.loc[index].items()}
            assert rebuilt == recorded[execution_id], execution_id
    known = replayed.dropna(subset=["symbol"])
    assert known["volatility_pips"].notna().mean() > 0.5
    assert known["fill_time_ms"].notna().mean() > 0.5


def _none(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else value


def test_an_audit_database_replays_the_same_features_and_carries_the_estimates(tmp_path):
    run_scenario(small("flaky_network", 200), LIBRARY, out_dir=tmp_path, cost_estimator=Steady())
    frames = {
        kind: enriched_executions([spec]).sort_values("execution_id", ignore_index=True)
        for kind, spec in (("folder", tmp_path), ("database", f"sqlite:///{tmp_path / 'audit.db'}"))
    }
    from_folder, from_database = (replayed_features(frames[k]) for k in ("folder", "database"))
    pd.testing.assert_frame_equal(from_database, from_folder, check_exact=True)
    pd.testing.assert_frame_equal(frames["database"][ESTIMATES], frames["folder"][ESTIMATES])


@pytest.mark.slow
def test_a_served_engine_given_a_cost_model_records_its_estimate_for_each_order(tmp_path):
    taught = tmp_path / "taught"
    run_scenario(small("neutral_ecn", 300), LIBRARY, seed=1, out_dir=taught)
    model = tmp_path / "cost.model"
    save_cost_model(fit_cost_model(enriched_executions([taught]), (str(taught),)), model)
    store = KeyStore(tmp_path / "keys.db")
    token = one_key_per_role(store)[Role.TRADER]
    store.close()
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    args = ("--db", db, "--keys", str(tmp_path / "keys.db"), "--cost-model", str(model))
    with (
        serve_process(tmp_path / "server.log", *args) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        answer = client.post("/execute", json=approved("estimated"), headers=bearer(token))
    assert answer.status_code == 200 and answer.json()["status"] == "FILLED"
    database = open_database(db)
    try:
        execution = database.get_execution(answer.json()["execution_id"])
    finally:
        database.close()
    assert execution is not None and execution.estimated_slippage_pips is not None
    p10, p50, p90 = execution.estimated_slippage_pips
    assert p10 <= p50 <= p90


def test_serve_refuses_a_file_that_is_no_cost_model_in_one_line_before_opening_the_store(
    tmp_path,
):
    junk = tmp_path / "cost.model"
    junk.write_text("not a model")
    db = tmp_path / "audit.db"
    result = cli_api(
        "serve", "--db", f"sqlite:///{db}", "--keys", str(tmp_path / "k.db"),
        "--cost-model", str(junk),
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1 and not db.exists()
