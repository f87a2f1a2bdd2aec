"""Units, lots, pips and slippage: the arithmetic a desk checks by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.core.config import SlippageBands
from engine.core.instruments import (
    SymbolSpec,
    VolumeError,
    lots_to_units,
    pip_size,
    units_to_lots,
)
from engine.core.slippage import classify, deviation_points, reference_price, slippage_pips
from engine.schemas import Direction, SlippageQuality

EURUSD = SymbolSpec("EURUSD", 5, 0.00001, 100_000, 0.01, 100.0, 0.01)
USDJPY = SymbolSpec("USDJPY", 3, 0.001, 100_000, 0.01, 100.0, 0.01)


def test_a_pip_is_ten_points_on_five_and_three_digit_quotes():
    assert EURUSD.pip == pytest.approx(0.0001)
    assert USDJPY.pip == pytest.approx(0.01)
    assert pip_size(4, 0.0001) == pytest.approx(0.0001)
    assert pip_size(2, 0.01) == pytest.approx(0.01)
    assert EURUSD.points_per_pip == USDJPY.points_per_pip == 10


@pytest.mark.parametrize(
    ("units", "lots"), [(100_000, 1.0), (1_000, 0.01), (250_000, 2.5), (10_000_000, 100.0)]
)
def test_units_that_are_whole_volume_steps_convert_exactly(units, lots):
    assert units_to_lots(units, EURUSD) == lots
    assert lots_to_units(lots, EURUSD) == units


@pytest.mark.parametrize(
    ("units", "why"),
    [
        (1_500, "not a multiple of the volume step"),
        (123_456, "not a multiple of the volume step"),
        (500, "not a multiple of the volume step"),
        (10_001_000, "above the maximum volume"),
    ],
)
def test_units_the_broker_cannot_represent_are_refused_never_rounded(units, why):
    with pytest.raises(VolumeError, match=why):
        units_to_lots(units, EURUSD)


def test_units_below_the_minimum_volume_are_refused():
    coarse = SymbolSpec("EURUSD", 5, 0.00001, 100_000, 0.1, 50.0, 0.01)
    with pytest.raises(VolumeError, match="below the minimum"):
        units_to_lots(5_000, coarse)


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=1, max_value=999))
def test_any_whole_number_of_steps_round_trips_and_anything_between_is_refused(steps, extra):
    units = steps * 1_000
    assert lots_to_units(units_to_lots(units, EURUSD), EURUSD) == units
    with pytest.raises(VolumeError):
        units_to_lots(units + extra, EURUSD)


@pytest.mark.parametrize(
    ("spec", "direction", "reference", "fill", "expected"),
    [
        (EURUSD, Direction.BUY, 1.08500, 1.08520, 2.0),  # bought higher: adverse
        (EURUSD, Direction.BUY, 1.08500, 1.08490, -1.0),  # bought lower: favourable
        (EURUSD, Direction.SELL, 1.08500, 1.08480, 2.0),  # sold lower: adverse
        (EURUSD, Direction.SELL, 1.08500, 1.08515, -1.5),  # sold higher: favourable
        (USDJPY, Direction.BUY, 145.000, 145.030, 3.0),
        (USDJPY, Direction.BUY, 145.000, 144.995, -0.5),
        (USDJPY, Direction.SELL, 145.000, 144.980, 2.0),
        (USDJPY, Direction.SELL, 145.000, 145.012, -1.2),
    ],
)
def test_slippage_is_signed_positive_when_adverse_in_the_symbols_pips(
    spec, direction, reference, fill, expected
):
    assert slippage_pips(direction, reference, fill, spec.pip) == pytest.approx(expected)


def test_no_slippage_is_exactly_zero_not_binary_noise():
    assert slippage_pips(Direction.SELL, 1.1, 1.1, EURUSD.pip) == 0.0


def test_the_reference_is_the_side_the_order_trades_on():
    assert reference_price(Direction.BUY, 1.0, 1.1) == 1.1
    assert reference_price(Direction.SELL, 1.0, 1.1) == 1.0


@pytest.mark.parametrize(
    ("pips", "quality"),
    [
        (-0.3, SlippageQuality.IMPROVED),
        (0.0, SlippageQuality.EXCELLENT),
        (0.2, SlippageQuality.EXCELLENT),
        (0.5, SlippageQuality.GOOD),
        (1.9, SlippageQuality.ACCEPTABLE),
        (2.1, SlippageQuality.POOR),
    ],
)
def test_slippage_quality_classes_follow_the_configured_bands(pips, quality):
    assert classify(pips, SlippageBands()) is quality


def test_a_slippage_bound_in_pips_becomes_an_mt5_deviation_in_whole_points():
    assert deviation_points(2.0, EURUSD) == 20
    assert deviation_points(0.55, USDJPY) == 5  # rounded down: never looser than asked
    assert deviation_points(1.3, EURUSD) == 13
