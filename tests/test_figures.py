"""The report's figures show the data: shared bins with counted tails, every axis's unit and
sign, hover that names the execution, samples that say so, the same bytes for the same input,
and a page that loads nothing from the network."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from scenarios.analysis.compare import compare
from scenarios.analysis.figures import figures_html, report_figures
from scenarios.analysis.figures.common import MAX_POINTS
from scenarios.analysis.figures.distributions import PRICE_STEP_PIPS, shared_edges
from scenarios.analysis.quality import MARKOUT_HORIZONS
from tests.browser import browse

SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY")


def executions(
    labels: Sequence[str] = ("calm", "stress"), n: int = 300, seed: int = 7
) -> pd.DataFrame:
    """An enriched frame as enrich() returns it: mostly fills at the quoted price, a spread
    of slippage in tenths of a pip, the second label worse than the first."""
    rng = np.random.default_rng(seed)
    frames = []
    for index, label in enumerate(labels):
        slippage = np.round(rng.normal(0.1 * index, 0.4, n), 1)
        slippage[rng.random(n) < 0.7] = 0.0
        created = 1_704_790_800.0 + np.sort(rng.uniform(0, 7200, n))
        lots = np.round(rng.uniform(0.01, 2.0, n), 2)
        frame = pd.DataFrame(
            {
                "execution_id": [f"{label}-{i:05d}" for i in range(n)],
                "label": label, "run": index, "scenario": label, "seed": 1,
                "symbol": rng.choice(SYMBOLS, n), "direction": rng.choice([1, -1], n),
                "lots": lots, "intended_units": lots * 100_000, "executed_units": lots * 100_000,
                "status": "FILLED", "outcome_reason": None,
                "slippage_vs_side_pips": slippage, "shortfall_pips": slippage + 0.5,
                "fill_time_ms": rng.lognormal(3.0 + index, 0.6, n),
                "spread_pips": np.round(rng.uniform(0.5, 2.5, n), 1),
                "created_at": created,
                "hour_utc": pd.to_datetime(created, unit="s", utc=True).hour,
            }
        )  # fmt: skip
        for horizon in MARKOUT_HORIZONS:
            frame[f"markout_{horizon}s_pips"] = rng.normal(0.05 * horizon**0.5, 0.5, n)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def figure(figures: list, title_start: str):
    [match] = [f for title, f in figures if title.startswith(title_start)]
    return match


def annotations(fig) -> str:
    return " ".join(a.text for a in fig.layout.annotations)


def axis_titles(fig) -> list[str]:
    layout = fig.layout.to_plotly_json()
    return [
        axis.get("title", {}).get("text") or ""
        for name, axis in layout.items()
        if re.fullmatch(r"[xy]axis\d*", name) and axis.get("visible", True)
    ]


def test_the_report_shows_every_figure_a_quant_asked_for_in_reading_order():
    frame = executions()
    titles = [title for title, _ in report_figures(frame, compare(frame))]
    assert titles == [
        "Comparison: each label's mean, and its difference to the baseline",
        "Slippage against the quoted side: distribution",
        "Slippage by symbol: share of fills at or below each slippage",
        "Slippage against fill time",
        "Slippage against size",
        "Slippage against the spread on arrival",
        "Slippage over time",
        "Slippage by hour of the day",
        "Markouts: how the mid moved after the fill",
        "Fill time: share of fills done within each time",
        "How executions ended: share by outcome",
    ]


def test_every_titled_axis_states_its_unit_and_every_cost_axis_its_sign():
    frame = executions()
    for title, fig in report_figures(frame, compare(frame)):
        for axis in filter(None, axis_titles(fig)):
            unitless = axis in ("label", "fills") or axis.startswith("share of ")  # counts, %
            assert "(" in axis or unitless, (title, axis)
            if any(word in axis for word in ("slippage", "shortfall", "markout")):
                assert "(pips, + adverse)" in axis, (title, axis)
    markouts = figure(report_figures(frame), "Markouts")
    assert axis_titles(markouts)[1] == "mean markout (pips, + adverse)"


def test_an_outlier_does_not_stretch_the_distribution_and_the_cut_tails_are_counted():
    frame = executions(n=1000)
    frame.loc[frame.index[:4], "slippage_vs_side_pips"] = [38.0, 41.5, 25.0, -8.0]  # calm's
    fig = figure(report_figures(frame), "Slippage against the quoted side")
    low, high = fig.layout.xaxis.range
    assert low > -3 and high < 3  # not −8 … 41.5
    calm, stress = fig.data
    assert np.array_equal(calm.x, stress.x)  # one set of bins for every label
    tails = re.search(
        r"below (\S+): calm (\d+), stress (\d+); above (\S+): calm (\d+), stress (\d+)",
        annotations(fig),
    )
    assert tails is not None
    cut_low, calm_low, stress_low, cut_high, calm_high, stress_high = (
        float(value) for value in tails.groups()
    )
    assert cut_low > -8.0 and cut_high < 25.0 and calm_low >= 1 and calm_high >= 3
    assert sum(calm.y) + calm_low + calm_high == 1000  # every fill drawn or counted
    assert sum(stress.y) + stress_low + stress_high == 1000


def test_counts_go_on_a_log_scale_only_when_one_bin_holds_half_of_a_labels_fills():
    mostly_zero = figure(report_figures(executions()), "Slippage against the quoted side")
    assert mostly_zero.layout.yaxis.type == "log"
    assert "log scale" in mostly_zero.layout.yaxis.title.text
    spread = executions()
    rng = np.random.default_rng(1)
    spread["slippage_vs_side_pips"] = np.round(rng.normal(0, 2.0, len(spread)), 1)
    assert figure(report_figures(spread), "Slippage against the quoted").layout.yaxis.type != "log"


@pytest.mark.parametrize(("low", "high"), [(-1.3, 2.0), (0.0, 0.0), (-40.0, 38.0), (0.2, 0.3)])
def test_shared_bins_cover_the_range_and_no_tenth_of_a_pip_sits_on_an_edge(low, high):
    edges = shared_edges(low, high)
    assert edges[0] < low and high < edges[-1] and len(edges) <= 45
    grid = np.arange(round(low * 10), round(high * 10) + 1) * PRICE_STEP_PIPS
    distance = np.abs(grid[:, None] - edges[None, :]).min()
    assert distance > PRICE_STEP_PIPS / 4


def test_a_scatter_point_hovers_with_its_execution_id_label_and_symbol():
    fig = figure(report_figures(executions()), "Slippage against size")
    points = fig.data[0]
    assert points.name == "calm" and points.customdata[0][0] == "calm-00000"
    assert points.customdata[0][1] in SYMBOLS
    assert "%{customdata[0]}" in points.hovertemplate and "calm" in points.hovertemplate


def test_more_than_twenty_thousand_fills_are_drawn_as_a_fixed_sample_that_says_so():
    frame = executions(n=12_000)  # 24,000 fills
    fig = figure(report_figures(frame), "Slippage against fill time")
    drawn = sum(len(trace.x) for trace in fig.data if trace.mode == "markers")
    assert drawn == MAX_POINTS
    assert f"showing {MAX_POINTS:,} of 24,000 fills" in annotations(fig)
    again = figure(report_figures(frame), "Slippage against fill time")
    assert np.array_equal(fig.data[0].customdata, again.data[0].customdata)


def test_the_same_input_gives_the_same_html_bytes():
    frame = executions()
    first = figures_html(report_figures(frame, compare(frame)))
    second = figures_html(report_figures(frame.copy(), compare(frame)))
    assert first == second


def test_the_fragment_inlines_plotly_once_and_names_no_network_address_outside_it():
    figures = report_figures(executions())
    fragment = figures_html(figures)
    plotly_js = get_plotlyjs()
    assert fragment.count(plotly_js) == 1
    assert fragment.count("<section") == len(figures)
    for title, _ in figures:
        assert f"<h2>{html.escape(title)}</h2>" in fragment
    ours = fragment.replace(plotly_js, "")
    assert '"displaylogo": false' in ours and "MathJax" not in ours.replace("MathJaxConfig", "")
    assert not re.search(r"(?:src|href)\s*=|url\(", ours)
    assert not re.search(r"(?:https?|wss?|ftp):|//[\w-]+\.[\w.-]+", ours)


def test_figures_say_what_is_missing_instead_of_failing():
    frame = executions(("calm", "outage"))
    outage = frame["label"] == "outage"
    frame.loc[outage, ["status", "outcome_reason", "executed_units"]] = [
        "REJECTED", "NETWORK_ERROR", 0
    ]  # fmt: skip
    frame.loc[outage, "slippage_vs_side_pips"] = np.nan
    for horizon in MARKOUT_HORIZONS:
        frame[f"markout_{horizon}s_pips"] = np.nan
    figures = report_figures(frame, compare(frame))
    assert "No markouts" in annotations(figure(figures, "Markouts"))
    histogram = figure(figures, "Slippage against the quoted side")
    assert [trace.name for trace in histogram.data] == ["calm", "outage"]
    assert sum(histogram.data[1].y) == 0
    nothing = report_figures(frame.iloc[:0])
    assert "No filled executions" in annotations(figure(nothing, "Slippage against size"))
    figures_html(nothing)


def test_a_frame_that_is_not_enriched_is_refused_with_the_missing_columns_named():
    with pytest.raises(ValueError, match="lacks label, slippage_vs_side_pips"):
        report_figures(executions().drop(columns=["label", "slippage_vs_side_pips"]))


def test_the_forest_plot_shows_each_labels_mean_and_difference_against_the_baseline():
    frame = executions(("calm", "stress", "outage"))
    comparison = compare(frame, baseline="stress")
    fig = figure(report_figures(frame, comparison), "Comparison")
    assert "difference to stress" in annotations(fig)
    slippage = comparison[comparison["measure"] == "slippage_pips"].set_index("label")
    calm_mean, calm_diff = (t for t in fig.data if t.name == "calm" and t.xaxis in ("x", "x2"))
    assert calm_mean.x[0] == pytest.approx(slippage.loc["calm", "mean"])
    assert calm_diff.x[0] == pytest.approx(slippage.loc["calm", "diff"])
    low = calm_diff.x[0] - calm_diff.error_x.arrayminus[0]
    assert low == pytest.approx(slippage.loc["calm", "diff_low"])
    titles = axis_titles(fig)
    assert "fill time (ms)" in titles and "slippage vs quoted side (pips, + adverse)" in titles


def test_a_sweep_parameter_is_on_the_x_axis_with_each_seeds_mean_beside_the_pooled_one():
    points = []
    for rate in (2.0, 5.0):
        for seed in (1, 2):
            frame = executions((f"rate {rate} seed {seed}",), n=120, seed=seed + int(rate))
            points.append(frame.assign(seed=seed, **{"orders.rate_per_second": rate}))
    frame = pd.concat(points, ignore_index=True)
    [(title, fig)] = report_figures(frame, parameters=["orders.rate_per_second"])[:1]
    assert title == "Effect of orders.rate_per_second"
    pooled = [t for t in fig.data if t.name == "mean over all seeds"]
    seeds = [t for t in fig.data if t.name == "one seed's mean"]
    assert [list(t.x) for t in pooled] == [[2.0, 5.0]] * len(pooled)
    assert all(sorted(t.x) == [2.0, 2.0, 5.0, 5.0] for t in seeds)
    at_two = frame[frame["orders.rate_per_second"] == 2.0]["slippage_vs_side_pips"].mean()
    assert pooled[0].y[0] == pytest.approx(at_two)
    assert fig.layout.xaxis.title.text == "orders.rate_per_second"


def test_the_browser_check_sees_requests_a_page_makes(tmp_path):
    page = tmp_path / "fetching.html"
    page.write_text(
        '<html><body><img src="https://example.com/a.png"><script>'
        'new WebSocket("ws://example.net/b");</script></body></html>'
    )
    _, _, requested = browse(page, tmp_path)
    assert "https://example.com/a.png" in requested and "ws://example.net/b" in requested


@pytest.mark.slow
def test_a_page_of_the_figures_renders_in_chromium_without_errors_or_network(tmp_path):
    frame = executions()
    figures = report_figures(frame, compare(frame))
    page = tmp_path / "figures.html"
    page.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>figures</title>'
        f"</head><body>{figures_html(figures)}</body></html>",
        encoding="utf-8",
    )
    console, shot, requested = browse(page, tmp_path, height=480 * len(figures))
    assert console == []
    assert [url for url in requested if re.match(r"(https?|wss?)://", url)] == []
    assert shot.stat().st_size > 100_000  # drawn figures, not blank sections
