"""Execution-quality measures against examples computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scenarios.analysis import (
    asymmetry,
    breakdown,
    compare,
    enrich,
    limit_order_summary,
    quality_summary,
    slippage_by_kind,
)
from scenarios.run_outputs import exit_slippage_pips


def execution(**fields) -> dict:
    base = {
        "execution_id": "e",
        "symbol": "EURUSD",
        "direction": 1,
        "intended_units": 100_000,
        "executed_units": 100_000,
        "status": "FILLED",
        "outcome_reason": None,
        "arrival_bid": 1.1000,
        "arrival_ask": 1.1002,
        "average_fill_price": 1.1003,
        "created_at": 100.0,
        "submitted_at": 100.0,
        "last_fill_at": 100.0,
        "completed_at": 100.0,
        "fill_time_seconds": 0.02,
        "scenario": "hand",
        "run": 0,
    }
    return base | fields


def quotes(symbol: str, rows: list[tuple[float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"symbol": symbol, "time": t, "bid": b, "ask": a, "run": 0} for t, b, a in rows]
    )


def test_a_eurusd_buy_is_measured_against_the_quoted_ask_and_against_the_mid():
    [row] = enrich(pd.DataFrame([execution()])).to_dict("records")
    assert row["slippage_vs_side_pips"] == pytest.approx(1.0)  # 1.1003 - 1.1002
    assert row["slippage_vs_mid_pips"] == pytest.approx(2.0)  # 1.1003 - 1.1001


def test_a_usdjpy_sell_uses_the_jpy_pip_and_the_bid():
    sell = execution(
        symbol="USDJPY",
        direction=-1,
        arrival_bid=145.00,
        arrival_ask=145.02,
        average_fill_price=144.99,
    )
    [row] = enrich(pd.DataFrame([sell])).to_dict("records")
    assert row["pip"] == 0.01
    assert row["slippage_vs_side_pips"] == pytest.approx(1.0)  # sold 1 pip below the bid
    assert row["slippage_vs_mid_pips"] == pytest.approx(2.0)  # 2 pips below the mid 145.01


def test_implementation_shortfall_charges_the_unfilled_part_at_the_move_to_completion():
    partial = execution(executed_units=40_000, status="PARTIALLY_FILLED", completed_at=110.0)
    tape = quotes("EURUSD", [(100.0, 1.1000, 1.1002), (109.0, 1.1005, 1.1007)])
    [row] = enrich(pd.DataFrame([partial]), tape).to_dict("records")
    # 40k x (1.1003 - 1.1001) + 60k x (1.1006 - 1.1001) = 8 + 30 = 38 USD on 100k: 3.8 pips
    assert row["completion_mid"] == pytest.approx(1.1006)
    assert row["shortfall_pips"] == pytest.approx(3.8)


def test_a_rejected_sell_costs_only_the_opportunity_it_missed():
    refused = execution(
        direction=-1,
        executed_units=0,
        status="REJECTED",
        average_fill_price=None,
        last_fill_at=None,
        completed_at=105.0,
    )
    tape = quotes("EURUSD", [(100.0, 1.1000, 1.1002), (104.0, 1.0996, 1.0998)])
    [row] = enrich(pd.DataFrame([refused]), tape).to_dict("records")
    # a sell that did not happen while the mid fell 4 pips missed 4 pips: a cost of +4
    assert row["shortfall_pips"] == pytest.approx(4.0)


def test_markouts_follow_the_mid_after_the_fill_adverse_positive_and_missing_past_the_tape():
    tape = quotes(
        "EURUSD", [(99.0, 1.1001, 1.1003), (101.0, 1.1004, 1.1006), (105.0, 1.0999, 1.1001)]
    )
    [row] = enrich(pd.DataFrame([execution()]), tape).to_dict("records")
    # Paid 1.1003; the mid rose to 1.1005: the buy was worth more, a favourable -2.
    assert row["markout_1s_pips"] == pytest.approx(-2.0)
    # The mid fell to 1.1000: bought 3 pips above where the market went, adverse +3.
    assert row["markout_5s_pips"] == pytest.approx(3.0)
    assert math.isnan(row["markout_30s_pips"])  # no quote that long after the fill


def test_a_sell_markout_is_favourable_negative_when_the_price_falls_after_it():
    sell = execution(
        symbol="USDJPY",
        direction=-1,
        arrival_bid=145.00,
        arrival_ask=145.02,
        average_fill_price=145.00,
    )
    tape = quotes("USDJPY", [(100.0, 145.00, 145.02), (130.0, 144.89, 144.91)])
    [row] = enrich(pd.DataFrame([sell]), tape).to_dict("records")
    assert row["markout_30s_pips"] == pytest.approx(-10.0)  # sold 10 pips above the mid


def test_slippage_asymmetry_counts_and_sizes_each_side():
    result = asymmetry(pd.Series([-1.0, 0.0, 0.5, 2.0]))
    assert result == {
        "favourable_share": 0.25,
        "adverse_share": 0.5,
        "favourable_mean_pips": -1.0,
        "adverse_mean_pips": 1.25,
    }


def test_rates_and_breakdowns_count_what_a_desk_counts():
    rows = [
        execution(execution_id="a", symbol="EURUSD"),
        execution(
            execution_id="b",
            symbol="EURUSD",
            status="REJECTED",
            outcome_reason="REQUOTE",
            executed_units=0,
            average_fill_price=None,
            last_fill_at=None,
            fill_time_seconds=None,
        ),
        execution(execution_id="c", symbol="GBPUSD", status="PARTIALLY_FILLED",
                  executed_units=50_000, arrival_bid=1.27, arrival_ask=1.2702,
                  average_fill_price=1.2701),
        execution(execution_id="d", status="REJECTED", outcome_reason="DECISION_NOT_APPROVED",
                  executed_units=0, average_fill_price=None),
    ]  # fmt: skip
    enriched = enrich(pd.DataFrame(rows))
    summary = quality_summary(enriched)
    # Every decision counted; rates are of the approved ones, executed or refused.
    assert (summary["decisions"], summary["approved"]) == (4, 3)
    assert (summary["unapproved"], summary["rejected"]) == (1, 1)
    assert summary["requote_rate"] == pytest.approx(1 / 3)
    assert summary["partial_fill_rate"] == pytest.approx(1 / 3)
    assert summary["fill_rate"] == pytest.approx(2 / 3)
    by_symbol = breakdown(enriched, "symbol").set_index("symbol")
    assert by_symbol.loc["GBPUSD", "slippage_mean_pips"] == pytest.approx(-1.0)
    assert by_symbol.loc["EURUSD", "slippage_mean_pips"] == pytest.approx(1.0)
    assert set(breakdown(enriched, "size_bucket")["size_bucket"]) == {"0.5–1 lots"}
    with pytest.raises(ValueError, match="breakdown by 'colour'"):
        breakdown(enriched, "colour")


def test_the_same_analysis_reads_a_run_directory_and_its_audit_database(tmp_path):
    from scenarios.analysis import load_sources
    from scenarios.runner import run_scenario
    from tests.test_scenarios import LIBRARY, reduced

    run_scenario(reduced(LIBRARY / "chaos_monkey.toml"), LIBRARY, out_dir=tmp_path)
    from_run, from_db = load_sources([tmp_path, tmp_path / "audit.db"])
    columns = ["execution_id", "status", "executed_units", "average_fill_price", "slippage_pips"]
    left = from_run.executions.sort_values("execution_id")[columns].reset_index(drop=True)
    right = from_db.executions.sort_values("execution_id")[columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right)
    assert from_run.header.counts == from_db.header.counts
    assert from_run.header.counts.unapproved > 0  # chaos sends some unapproved decisions
    # The store keeps the run's quote tape too: the same markouts from either.
    markouts = [f"markout_{h}s_pips" for h in (1, 60, 300)]
    by_id = [
        enrich(s.executions, s.quotes).set_index("execution_id").sort_index()[markouts]
        for s in (from_run, from_db)
    ]
    pd.testing.assert_frame_equal(*by_id)
    assert by_id[1].notna().to_numpy().mean() > 0.5


# -- exits apart from entries, and limit orders --------------------------------------------


def exit_row(reason: str, direction: int, price: float, level: float | None) -> dict:
    slip = exit_slippage_pips(direction, price, level, 0.0001)
    return {"scenario": "hand", "reason": reason, "direction": direction, "price": price,
            "level": level, "slippage_pips": slip}  # fmt: skip


def test_a_stop_is_measured_against_its_level_adverse_positive_for_a_long_and_a_short():
    # A long's stop at 1.0990 filled at 1.0985 after a gap: 5 pips beyond, adverse.
    assert exit_slippage_pips(1, 1.0985, 1.0990, 0.0001) == pytest.approx(5.0)
    # A short's stop at 1.1010 filled at 1.1012: 2 pips beyond, adverse.
    assert exit_slippage_pips(-1, 1.1012, 1.1010, 0.0001) == pytest.approx(2.0)
    # A long's target at 1.1020 filled at 1.1021: better than the level, favourable.
    assert exit_slippage_pips(1, 1.1021, 1.1020, 0.0001) == pytest.approx(-1.0)
    assert exit_slippage_pips(1, 1.1, None, 0.0001) is None  # a close decision has no level


def test_stop_out_slippage_is_kept_apart_from_entry_and_close_slippage():
    executions = pd.DataFrame(
        [
            execution(average_fill_price=1.1003, intent="open"),  # 1 pip over the ask
            execution(direction=-1, average_fill_price=1.0999, intent="close"),  # 1 under bid
            execution(executed_units=0, average_fill_price=None, intent="open"),  # no fill
        ]
    )
    exits = pd.DataFrame(
        [
            exit_row("stop_loss", 1, 1.0985, 1.0990),
            exit_row("stop_loss", 1, 1.0990, 1.0990),
            exit_row("take_profit", 1, 1.1020, 1.1020),
            exit_row("order", 1, 1.1000, None),
        ]
    )

    table = slippage_by_kind(enrich(executions), exits).set_index("kind")

    assert table.loc["entry", "fills"] == 1 and table.loc["entry", "mean_pips"] == pytest.approx(1)
    assert table.loc["close decision", "mean_pips"] == pytest.approx(1.0)
    assert table.loc["stop_loss", "fills"] == 2
    assert table.loc["stop_loss", "worst_pips"] == pytest.approx(5.0)
    assert table.loc["stop_loss", "beyond_level_share"] == pytest.approx(0.5)
    assert table.loc["take_profit", "mean_pips"] == pytest.approx(0.0)
    assert table.loc["stop_out", "fills"] == 0


def test_limit_orders_fill_rate_and_time_to_fill_count_whole_partial_and_unfilled_orders():
    limit = {"order_type": "limit"}
    executions = pd.DataFrame(
        [
            execution(**limit, fill_time_seconds=4.0),  # filled whole after 4 s
            execution(**limit, status="EXPIRED", executed_units=40_000, fill_time_seconds=10.0),
            execution(**limit, status="EXPIRED", executed_units=0, fill_time_seconds=None),
            execution(**limit, status="REJECTED", executed_units=0, submitted_at=None),
            execution(order_type="market"),  # not a limit order: not counted
        ]
    )

    summary = limit_order_summary(executions)

    assert summary["limit_orders"] == 4 and summary["placed"] == 3
    assert (summary["filled_whole"], summary["filled_in_part"], summary["unfilled"]) == (1, 1, 1)
    assert summary["fill_rate"] == pytest.approx(2 / 3)
    assert summary["unit_fill_rate"] == pytest.approx(140_000 / 300_000)
    assert summary["time_to_fill_p50_s"] == pytest.approx(7.0)
    assert summary["time_to_fill_mean_s"] == pytest.approx(7.0)


# -- cost in bps and in the account currency -----------------------------------------------


def test_cost_is_in_bps_of_the_arrival_mid_and_in_the_account_currency_positive_when_paid():
    rows = [
        execution(),  # bought 100k EURUSD 1 pip over the ask: 10 USD
        execution(
            symbol="USDJPY", direction=-1, arrival_bid=145.00, arrival_ask=145.02,
            average_fill_price=144.99, intended_units=50_000, executed_units=50_000,
        ),  # sold 50k 1 pip under the bid: 500 JPY, worth 500 / 145.01 USD at the mid
    ]  # fmt: skip
    eur, jpy = enrich(pd.DataFrame(rows)).to_dict("records")
    assert eur["spread_pips"] == pytest.approx(2.0)
    assert eur["slippage_bps"] == pytest.approx(0.0001 / 1.1001 * 10_000)
    assert eur["slippage_account"] == pytest.approx(10.0)
    assert jpy["slippage_account"] == pytest.approx(500 / 145.01)
    assert jpy["slippage_bps"] == pytest.approx(0.01 / 145.01 * 10_000)
    assert jpy["shortfall_pips"] == pytest.approx(2.0)  # against the mid
    assert jpy["shortfall_account"] == pytest.approx(1000 / 145.01)
    summary = quality_summary(enrich(pd.DataFrame(rows)))
    assert summary["slippage_cost"] == pytest.approx(10.0 + 500 / 145.01)
    assert summary["cost_not_converted"] == 0


def test_a_cross_converts_at_the_other_legs_mid_from_the_tape_or_says_why_it_cannot():
    cross = execution(
        symbol="EURGBP", arrival_bid=0.8500, arrival_ask=0.8502, average_fill_price=0.8503
    )
    tape = quotes("GBPUSD", [(90.0, 1.2699, 1.2701)])  # 1 GBP = 1.27 USD at the decision
    [row] = enrich(pd.DataFrame([cross]), tape).to_dict("records")
    assert row["slippage_account"] == pytest.approx(10 * 1.27)  # 10 GBP in USD
    assert pd.isna(row["account_cost_note"])

    [row] = enrich(pd.DataFrame([cross])).to_dict("records")  # no tape: unknown, and why
    assert math.isnan(row["slippage_account"])
    assert "no GBPUSD or USDGBP quote" in row["account_cost_note"]
    assert quality_summary(enrich(pd.DataFrame([cross])))["cost_not_converted"] == 1


def test_a_jpy_account_converts_a_dollar_quoted_pair_at_usdjpy():
    row = execution(account_currency="JPY")
    tape = quotes("USDJPY", [(50.0, 149.99, 150.01)])
    [enriched_row] = enrich(pd.DataFrame([row]), tape).to_dict("records")
    assert enriched_row["slippage_account"] == pytest.approx(10 * 150.0)


# -- buckets a reader can scan -------------------------------------------------------------


def test_fill_time_and_size_buckets_have_units_and_sort_by_size_not_as_text():
    rows = [
        execution(execution_id="slow", fill_time_seconds=1.2, intended_units=250_000,
                  executed_units=250_000),
        execution(execution_id="fast", fill_time_seconds=0.03, intended_units=5_000,
                  executed_units=5_000),
        execution(execution_id="mid", fill_time_seconds=0.2),
        execution(execution_id="none", status="REJECTED", executed_units=0,
                  average_fill_price=None, fill_time_seconds=None),
    ]  # fmt: skip
    enriched = enrich(pd.DataFrame(rows))
    by_time = breakdown(enriched, "fill_time_bucket")["fill_time_bucket"].tolist()
    assert by_time == ["25–50 ms", "100–250 ms", "over 1,000 ms", "not filled"]
    by_size = breakdown(enriched, "size_bucket")["size_bucket"].tolist()
    assert by_size == ["0–0.1 lots", "0.5–1 lots", "over 2 lots"]


# -- comparison with bootstrap intervals ---------------------------------------------------


def labelled(label: str, slippages: np.ndarray, fill_ms: float = 20.0) -> pd.DataFrame:
    """Filled EURUSD buys whose slippage against the ask is `slippages` (pips)."""
    return pd.DataFrame(
        [
            execution(execution_id=f"{label}{i}", average_fill_price=1.1002 + s * 0.0001,
                      fill_time_seconds=fill_ms / 1000, label=label)
            for i, s in enumerate(slippages)
        ]
    )  # fmt: skip


def test_compare_gives_each_label_an_interval_and_its_difference_from_the_baseline():
    rng = np.random.default_rng(5)
    frame = pd.concat(
        [labelled("calm", rng.normal(0.2, 1.0, 400)), labelled("busy", rng.normal(1.2, 1.0, 400))]
    )
    table = compare(enrich(frame), baseline="calm", resamples=1000, seed=3)
    slip = table[table["measure"] == "slippage_pips"].set_index("label")
    assert list(slip.index) == ["calm", "busy"] and slip.loc["busy", "n"] == 400
    for label in ("calm", "busy"):
        row = slip.loc[label]
        assert row["low"] < row["mean"] < row["high"]
        assert row["high"] - row["low"] == pytest.approx(2 * 1.96 / 20, rel=0.2)  # sd/sqrt(n)
    assert tuple(slip.loc["calm", ["diff", "diff_low", "diff_high"]]) == (0.0, 0.0, 0.0)
    busy = slip.loc["busy"]
    assert busy["diff"] == pytest.approx(busy["mean"] - slip.loc["calm", "mean"])
    assert busy["diff_low"] < 1.0 < busy["diff_high"]  # the true difference is 1.0
    assert busy["diff_high"] - busy["diff_low"] == pytest.approx(2 * 1.96 * 0.0707, rel=0.2)
    again = compare(enrich(frame), baseline="calm", resamples=1000, seed=3)
    pd.testing.assert_frame_equal(table, again)  # the same seed, the same numbers


def test_a_labels_interval_does_not_move_when_another_source_is_added():
    rng = np.random.default_rng(6)
    calm = labelled("calm", rng.normal(0.0, 1.0, 200))
    alone = compare(enrich(calm), resamples=500)
    joined = compare(
        enrich(pd.concat([calm, labelled("other", rng.normal(1, 1, 50))])), resamples=500
    )
    pd.testing.assert_frame_equal(alone, joined[joined["label"] == "calm"])


def test_an_unknown_baseline_is_refused_naming_the_labels():
    with pytest.raises(ValueError, match="baseline 'x' is not one of the labels: a"):
        compare(enrich(labelled("a", np.zeros(3))), baseline="x")


def test_the_bootstrap_of_a_million_fills_agrees_with_the_exact_one_and_theory():
    from scenarios.analysis.compare import bootstrap_means, interval

    rng = np.random.default_rng(7)
    small = rng.lognormal(0.0, 1.0, 300)  # exact regime: one value per block
    blocks = bootstrap_means(small, 4000, np.random.default_rng(1))
    naive = small[np.random.default_rng(2).integers(0, 300, (4000, 300))].mean(axis=1)
    assert interval(blocks, 0.95) == pytest.approx(interval(naive, 0.95), rel=0.03)
    big = rng.lognormal(0.0, 1.0, 1_000_000)
    replicates = bootstrap_means(big, 2000, np.random.default_rng(3))
    assert replicates.std() == pytest.approx(big.std() / 1000, rel=0.1)
    assert replicates.mean() == pytest.approx(big.mean(), abs=big.std() / 1000 / 5)
