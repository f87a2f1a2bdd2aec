"""Stage 1: each pre-execution check, passing and failing, and the order they run in."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.core.config import EngineConfig
from engine.core.instruments import SymbolSpec, TradeMode
from engine.core.ports import AccountState
from engine.core.positions import Levels
from engine.core.validation import (
    MARKET_CHECKS,
    MarketContext,
    decision_approved,
    liquidity_available,
    margin_sufficient,
    market_data_available,
    market_open,
    order_terms_valid,
    run_market_checks,
    spread_acceptable,
    stops_valid,
    symbol_tradable,
    trading_halted,
    volume_representable,
)
from engine.schemas import (
    Direction,
    ExecutionRejectionReason,
    MarketSnapshot,
    OrderType,
    RPMOutput,
    TradeIntent,
)
from tests.builders import decision

R = ExecutionRejectionReason
NOW = 1_704_697_200.0
CONFIG = EngineConfig()
SPEC = SymbolSpec("EURUSD", 5, 0.00001, 100_000, 0.01, 100.0, 0.01)
QUOTE = MarketSnapshot(symbol="EURUSD", bid=1.08500, ask=1.08508, time=NOW - 1.0)
ACCOUNT = AccountState("USD", 100_000.0, 100_000.0, 0.0, 100_000.0, 100)
GOOD = MarketContext(
    "EURUSD", Direction.BUY, 100_000, NOW, SPEC, QUOTE, 1.0, None, ACCOUNT, 1_085.0
)


def test_a_sound_order_passes_every_market_check():
    assert run_market_checks(GOOD, CONFIG) is None


def test_an_approved_decision_passes_and_any_other_status_is_refused():
    assert decision_approved(RPMOutput.model_validate(decision())) is None
    for status in ("REJECTED", "HOLD", "REDUCED"):
        failure = decision_approved(RPMOutput.model_validate(decision(status=status)))
        assert failure is not None and failure.reason is R.DECISION_NOT_APPROVED
        assert status in failure.detail


def test_trading_halted_by_rpm_or_by_the_engine_refuses_and_otherwise_passes():
    assert trading_halted(RPMOutput.model_validate(decision()), engine_halted=False) is None
    by_rpm = trading_halted(RPMOutput.model_validate(decision(halted=True)), engine_halted=False)
    by_engine = trading_halted(RPMOutput.model_validate(decision()), engine_halted=True)
    assert by_rpm is not None and by_rpm.reason is R.TRADING_HALTED and "RPM" in by_rpm.detail
    assert by_engine is not None and "kill switch" in by_engine.detail


def test_market_open_refuses_a_quote_older_than_the_limit():
    stale = replace(GOOD, snapshot=QUOTE.model_copy(update={"time": NOW - 3600}))
    failure = market_open(stale, CONFIG)
    assert failure is not None and failure.reason is R.MARKET_CLOSED
    assert "3600s old" in failure.detail
    assert market_open(GOOD, CONFIG) is None


@pytest.mark.parametrize(
    ("mode", "direction", "refused"),
    [
        (TradeMode.FULL, Direction.SELL, False),
        (TradeMode.DISABLED, Direction.BUY, True),
        (TradeMode.CLOSE_ONLY, Direction.BUY, True),
        (TradeMode.LONG_ONLY, Direction.BUY, False),
        (TradeMode.LONG_ONLY, Direction.SELL, True),
        (TradeMode.SHORT_ONLY, Direction.BUY, True),
    ],
)
def test_symbol_tradable_follows_the_brokers_trade_mode(mode, direction, refused):
    ctx = replace(GOOD, spec=replace(SPEC, trade_mode=mode), direction=direction)
    failure = symbol_tradable(ctx, CONFIG)
    assert (failure is not None) is refused
    if failure:
        assert failure.reason is R.SYMBOL_NOT_TRADABLE and mode.name in failure.detail


def test_a_symbol_the_broker_does_not_list_is_not_tradable():
    failure = symbol_tradable(replace(GOOD, spec=None), CONFIG)
    assert failure is not None and "does not list EURUSD" in failure.detail


def test_units_the_broker_cannot_represent_fail_as_invalid_volume():
    failure = volume_representable(replace(GOOD, volume_problem="not a step"), CONFIG)
    assert failure is not None and failure.reason is R.INVALID_VOLUME
    assert volume_representable(GOOD, CONFIG) is None


def test_market_data_must_exist_and_not_be_crossed():
    missing = market_data_available(replace(GOOD, snapshot=None), CONFIG)
    crossed_quote = MarketSnapshot(symbol="EURUSD", bid=1.1, ask=1.0999, time=NOW)
    crossed = market_data_available(replace(GOOD, snapshot=crossed_quote), CONFIG)
    assert missing is not None and missing.reason is R.NO_MARKET_DATA
    assert crossed is not None and "crossed" in crossed.detail
    assert market_data_available(GOOD, CONFIG) is None


def test_spread_above_the_symbols_maximum_in_pips_is_refused():
    wide = replace(GOOD, snapshot=QUOTE.model_copy(update={"ask": 1.08540}))  # 4.0 pips
    failure = spread_acceptable(wide, CONFIG)
    assert failure is not None and failure.reason is R.SPREAD_TOO_WIDE
    assert "4.0 pips exceeds 3 pips" in failure.detail
    assert spread_acceptable(wide, EngineConfig(max_spread_pips={"EURUSD": 5.0})) is None
    assert spread_acceptable(GOOD, CONFIG) is None


def test_margin_needs_one_and_a_half_times_the_requirement_in_free_margin():
    just_enough = replace(GOOD, margin_required=100_000.0 / 1.5)
    too_little = replace(GOOD, margin_required=100_000.0 / 1.5 + 1.0)
    assert margin_sufficient(just_enough, CONFIG) is None
    failure = margin_sufficient(too_little, CONFIG)
    assert failure is not None and failure.reason is R.INSUFFICIENT_MARGIN
    assert "x 1.5" in failure.detail


def test_liquidity_on_the_side_the_order_takes_must_cover_the_units():
    thin = QUOTE.model_copy(update={"ask_depth_units": 50_000, "bid_depth_units": 5_000_000})
    buy = liquidity_available(replace(GOOD, snapshot=thin), CONFIG)
    sell = liquidity_available(replace(GOOD, snapshot=thin, direction=Direction.SELL), CONFIG)
    assert buy is not None and buy.reason is R.INSUFFICIENT_LIQUIDITY
    assert sell is None
    assert liquidity_available(GOOD, CONFIG) is None  # depth unknown: nothing to judge


def test_checks_run_in_the_seeds_order_and_the_first_failure_names_the_cause():
    assert [name for name, _ in MARKET_CHECKS] == [
        "market_open",
        "symbol_tradable",
        "volume_representable",
        "market_data_available",
        "spread_acceptable",
        # Beyond the seed's checks (issue 16): what a reduce, close, limit or stop needs,
        # judged before margin, since a close needs none.
        "position_matches",
        "order_terms_valid",
        "stops_valid",
        "margin_sufficient",
        "liquidity_available",
    ]
    closed_and_wide = replace(
        GOOD, snapshot=QUOTE.model_copy(update={"time": NOW - 3600, "ask": 1.0860})
    )
    failure = run_market_checks(closed_and_wide, CONFIG)
    assert failure is not None and failure.check == "market_open"


# -- issue 16: limit orders, stops and positions ----------------------------------------------

LEVELED = replace(SPEC, stops_level_points=30)


def test_a_buy_limit_must_sit_below_the_ask_by_the_stops_level():
    resting = replace(GOOD, spec=LEVELED, order_type=OrderType.LIMIT, limit_price=1.08470)
    too_near = replace(resting, limit_price=1.08490)  # 18 points under the ask
    marketable = replace(resting, limit_price=1.08510)
    assert order_terms_valid(resting, CONFIG) is None
    for bad in (too_near, marketable):
        failure = order_terms_valid(bad, CONFIG)
        assert failure is not None and failure.reason is R.INVALID_PRICE


def test_a_limit_order_whose_expiry_has_passed_is_refused():
    stale = replace(GOOD, order_type=OrderType.LIMIT, limit_price=1.084, expires_at=NOW - 1.0)
    failure = order_terms_valid(stale, CONFIG)
    assert failure is not None and failure.reason is R.INVALID_EXPIRATION


@pytest.mark.parametrize(
    ("levels", "ok"),
    [
        (Levels(stop_loss=1.08400, take_profit=1.08600), True),
        (Levels(stop_loss=1.08480), False),  # 20 points under the bid: inside the level
        (Levels(take_profit=1.08400), False),  # a long's target below its price
        (Levels(stop_loss_pips=3.0), True),
        (Levels(stop_loss_pips=2.0), False),  # 20 points
    ],
)
def test_a_longs_stops_are_judged_against_the_bid_and_the_stops_level(levels, ok):
    failure = stops_valid(replace(GOOD, spec=LEVELED, levels=levels), CONFIG)
    assert (failure is None) is ok
    if not ok:
        assert failure is not None and failure.reason is R.INVALID_STOPS


def test_a_shorts_stops_are_judged_against_the_ask():
    short = replace(GOOD, direction=Direction.SELL, spec=LEVELED)
    assert stops_valid(replace(short, levels=Levels(stop_loss=1.08540)), CONFIG) is None
    failure = stops_valid(replace(short, levels=Levels(stop_loss=1.08530)), CONFIG)
    assert failure is not None and failure.reason is R.INVALID_STOPS


def test_a_reduce_or_close_needs_no_margin_and_passes_close_only_symbols():
    closing = replace(
        GOOD,
        intent=TradeIntent.CLOSE,
        spec=replace(SPEC, trade_mode=TradeMode.CLOSE_ONLY),
        margin_required=None,
        account=replace(ACCOUNT, free_margin=0.0),
    )
    assert symbol_tradable(closing, CONFIG) is None
    assert margin_sufficient(closing, CONFIG) is None


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"stop_loss": 1.08, "stop_loss_pips": 10}, "as a price or as stop_loss_pips"),
        ({"intent": "close", "take_profit": 1.1}, "a close decision carries no stop-loss"),
        ({"intent": "modify_stops"}, "needs a stop_loss or a take_profit"),
        ({"position_id": "12"}, "position_id names the position"),
        ({"order_type": "limit"}, "a limit order needs a limit_price"),
        ({"limit_price": 1.08}, "apply to limit orders only"),
        ({"intent": "reduce", "order_type": "limit", "limit_price": 1.08}, "limit orders open"),
        ({"position_id": "12a", "intent": "close"}, "String should match pattern"),
        (
            {"expires_at": "2024-01-08T10:00:00", "order_type": "limit", "limit_price": 1.0},
            "timezone",
        ),
    ],
)
def test_decision_terms_that_contradict_each_other_are_refused_with_the_reason(terms, message):
    with pytest.raises(ValueError, match=message):
        RPMOutput.model_validate(decision(**terms))
