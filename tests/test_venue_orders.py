"""The venue's positions and orders, rule by rule, against the venue itself: closing by
position and reduce-only, stops on orders and on positions, stop-loss and take-profit on
the quote path, resting limit orders (queue, partial fills, expiry), and the MT5 codes of
each refusal. Prices come from a scripted market so every trigger is exact."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.ports import BrokerOrderState, BrokerRejected, FillPolicy, OrderRequest
from engine.core.vocabulary import ExitReason, OrderType
from engine.schemas import Direction, MarketSnapshot
from sim.account import AccountConfig, MarginMode
from sim.impact import PriceImpactConfig
from sim.ledger import Ledger
from sim.liquidity import DepthLadder
from sim.market import MarketConfig, SymbolConfig, SyntheticMarket
from sim.sessions import FxWeek
from sim.venue import Venue, VenueConfig
from sim.world import DEFAULT_START

T0 = DEFAULT_START
BUY, SELL = Direction.BUY, Direction.SELL
S = BrokerOrderState


class ScriptedMarket:
    """One symbol whose quotes are given as (time, bid, ask), held until the next."""

    def __init__(self, quotes: list[tuple[float, float, float]], **config: object) -> None:
        self.quotes = sorted(quotes)
        self.config = SymbolConfig(symbol="EURUSD", start_mid=quotes[0][1], **config)  # type: ignore[arg-type]
        self.walked = 0  # how many times quotes_between was asked

    @property
    def symbols(self) -> tuple[str, ...]:
        return ("EURUSD",)

    def symbol_config(self, symbol: str) -> SymbolConfig | None:
        return self.config if symbol == "EURUSD" else None

    def is_open(self, t: float) -> bool:
        return True

    def volatility(self, t: float) -> float:
        return 1.0

    def _snapshot(self, row: tuple[float, float, float]) -> MarketSnapshot:
        return MarketSnapshot(symbol="EURUSD", bid=row[1], ask=row[2], time=row[0])

    def quote(self, symbol: str, t: float) -> MarketSnapshot | None:
        rows = [row for row in self.quotes if row[0] <= t]
        return self._snapshot(rows[-1]) if rows and symbol == "EURUSD" else None

    def mid(self, symbol: str, t: float) -> float:
        quote = self.quote(symbol, t)
        assert quote is not None
        return quote.mid

    def no_quote_reason(self, symbol: str, t: float) -> str:
        return f"no quote for {symbol} yet"

    def liquidity(self, symbol: str, t: float) -> float:
        return 1.0

    def quotes_between(self, symbol: str, t0: float, t1: float) -> Iterator[MarketSnapshot]:
        self.walked += 1
        return (self._snapshot(row) for row in self.quotes if t0 < row[0] <= t1)


def venue_on(
    quotes: list[tuple[float, float, float]],
    hedging: bool = False,
    config: VenueConfig | None = None,
    **symbol: object,
) -> Venue:
    mode = MarginMode.HEDGING if hedging else MarginMode.NETTING
    market = ScriptedMarket(quotes, **symbol)
    return Venue(market, AccountConfig(margin_mode=mode), config or VenueConfig(depth=None), 7)


def order(
    direction: Direction, units: int = 100_000, tag: str = "AX1", **fields: object
) -> OrderRequest:
    return OrderRequest(
        client_order_id=tag,
        symbol="EURUSD",
        direction=direction,
        units=units,
        lots=units / 100_000,
        price=0.0,
        deviation_points=None,
        **fields,  # type: ignore[arg-type]
    )


def limit(
    direction: Direction, price: float, units: int = 100_000, **fields: object
) -> OrderRequest:
    return order(direction, units, order_type=OrderType.LIMIT, limit_price=price, **fields)


def refused_code(venue: Venue, request: OrderRequest, t: float = T0) -> int | None:
    with pytest.raises(BrokerRejected) as refusal:
        venue.place(request, t)
    return refusal.value.code


FLAT = [(T0, 1.08500, 1.08510)]
GAP_DOWN = [
    (T0, 1.08500, 1.08510),
    (T0 + 1, 1.08420, 1.08430),
    (T0 + 2, 1.08300, 1.08310),  # a gap through a 1.08400 stop
    (T0 + 3, 1.08200, 1.08210),
]


# -- closing positions ------------------------------------------------------------------------


def test_an_order_naming_a_position_that_is_not_open_is_refused_as_position_closed():
    venue = venue_on(FLAT, hedging=True)
    assert refused_code(venue, order(SELL, position_id="99")) == 10036


def test_on_a_hedging_account_an_order_naming_a_position_closes_that_one_only():
    venue = venue_on(FLAT, hedging=True)
    first = venue.place(order(BUY, tag="A"), T0)
    second = venue.place(order(BUY, tag="B"), T0)
    closing = venue.place(order(SELL, tag="C", position_id=second.order_id), T0)
    assert [p.position_id for p in venue.positions(T0)] == [first.order_id]
    assert closing.fills[0].position_id == second.order_id
    [exit_] = venue.exits(T0, T0)
    assert exit_.reason is ExitReason.ORDER and exit_.client_order_id == "B" and exit_.level is None


def test_a_close_above_the_units_of_the_position_is_refused_as_an_invalid_close_volume():
    venue = venue_on(FLAT, hedging=True)
    opened = venue.place(order(BUY, 100_000), T0)
    assert refused_code(venue, order(SELL, 200_000, position_id=opened.order_id)) == 10038


def test_a_second_close_while_the_first_is_working_is_refused_as_a_close_order_exists():
    venue = venue_on(FLAT, config=VenueConfig(depth=None, fill_delay_seconds=5.0))
    opened = venue.place(order(BUY), T0)
    assert venue.status(opened.order_id, T0 + 5).state is S.DONE
    venue.place(order(SELL, 50_000, position_id=opened.order_id), T0 + 5)  # sat on
    assert refused_code(venue, order(SELL, 50_000, position_id=opened.order_id), T0 + 6) == 10039


def test_a_close_the_dealer_sat_on_fills_nothing_once_a_stop_closed_its_position():
    quotes = [*GAP_DOWN[:2], (T0 + 12, 1.083, 1.0831)]
    venue = venue_on(quotes, config=VenueConfig(depth=None, fill_delay_seconds=10.0))
    opened = venue.place(order(BUY, stop_loss=1.084), T0)
    assert venue.status(opened.order_id, T0 + 10).state is S.DONE
    closing = venue.place(order(SELL, position_id=opened.order_id), T0 + 10)
    report = venue.status(closing.order_id, T0 + 20)  # the stop triggered at T0 + 12
    assert report.state is S.DONE and report.fills == ()
    assert [e.reason for e in venue.exits(T0, T0 + 20)] == [ExitReason.STOP_LOSS]


def test_a_netting_reduce_only_order_above_the_position_is_refused_and_never_flips_it():
    venue = venue_on(FLAT)
    venue.place(order(BUY, 100_000), T0)
    assert refused_code(venue, order(SELL, 200_000, reduce_only=True)) == 10038
    venue.place(order(SELL, 40_000, reduce_only=True), T0)
    [position] = venue.positions(T0)
    assert position.direction is BUY and position.units == 60_000


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 30)), max_size=12))
def test_reduce_only_orders_never_flip_a_netting_position(steps):
    venue = venue_on(FLAT)
    venue.place(order(BUY, 100_000), T0)
    for direction, thousands in steps:
        before = venue.positions(T0)
        try:
            venue.place(order(direction, thousands * 1000, reduce_only=True), T0)
        except BrokerRejected:
            assert venue.positions(T0) == before
            continue
        after = venue.positions(T0)
        assert all(p.direction is BUY for p in after)
        assert sum(p.units for p in after) == before[0].units - thousands * 1000


# -- stops on orders and on positions ---------------------------------------------------------


def test_a_fill_gives_the_position_the_levels_its_order_carried():
    venue = venue_on(FLAT)
    venue.place(order(BUY, stop_loss=1.08, take_profit=1.09), T0)
    [position] = venue.positions(T0)
    assert (position.stop_loss, position.take_profit) == (1.08, 1.09)


@pytest.mark.parametrize(
    ("direction", "stops", "symbol"),
    [
        (BUY, {"stop_loss": 1.0860}, {}),  # a long's stop above the bid
        (SELL, {"take_profit": 1.0860}, {}),  # a short's target above the ask
        (BUY, {"stop_loss": 1.0849}, {"stops_level_points": 50}),  # nearer than the level
        (BUY, {"stop_loss": 1.0800}, {"stops_on_order": False}),  # the symbol takes none
    ],
)
def test_stops_the_server_would_not_take_are_refused_as_invalid_stops(direction, stops, symbol):
    venue = venue_on(FLAT, **symbol)
    assert refused_code(venue, order(direction, **stops)) == 10016


def test_set_protection_answers_each_refusal_with_its_mt5_code():
    venue = venue_on(FLAT, freeze_level_points=20)
    venue.place(order(BUY), T0)
    [position] = venue.positions(T0)
    pid = position.position_id
    codes = []
    for args in [("77", 1.08, None), (pid, None, None), (pid, 1.0852, None)]:
        with pytest.raises(BrokerRejected) as refusal:
            venue.set_protection(*args, T0)
        codes.append(refusal.value.code)
    assert codes == [10036, 10025, 10016]
    assert venue.set_protection(pid, 1.0849, None, T0).stop_loss == 1.0849
    with pytest.raises(BrokerRejected) as frozen:  # 1 point from the bid, within 20
        venue.set_protection(pid, 1.0800, None, T0)
    assert frozen.value.code == 10029


def test_set_protection_with_none_removes_a_level():
    venue = venue_on(FLAT)
    venue.place(order(SELL, stop_loss=1.09, take_profit=1.08), T0)
    [position] = venue.positions(T0)
    changed = venue.set_protection(position.position_id, 1.09, None, T0)
    assert (changed.stop_loss, changed.take_profit) == (1.09, None)


# -- stop-loss and take-profit on the quote path ----------------------------------------------


def test_a_long_stop_triggers_on_the_bid_and_a_gap_fills_beyond_its_level():
    venue = venue_on(GAP_DOWN)
    venue.place(order(BUY, tag="AXlong", stop_loss=1.084), T0)
    assert venue.positions(T0 + 1)  # the bid is still above the stop
    assert venue.positions(T0 + 5) == ()
    [exit_] = venue.exits(T0, T0 + 5)
    assert exit_.reason is ExitReason.STOP_LOSS and exit_.level == 1.084
    assert exit_.price == 1.083 and exit_.time == T0 + 2 and exit_.client_order_id == "AXlong"
    [server] = venue.server_orders(0)
    assert server.client_order_id == "[sl 1.08400]" and server.reason is ExitReason.STOP_LOSS
    assert server.position_id == 1 and server.state is S.DONE
    assert venue.find("AXlong", T0 + 5).order_id == "1"  # the tag never finds the stop
    assert venue.server_orders(server.ticket) == []


def test_a_short_take_profit_triggers_on_the_ask():
    venue = venue_on(GAP_DOWN)
    venue.place(order(SELL, take_profit=1.0843), T0)
    venue.advance(T0 + 5)
    [exit_] = venue.exits(T0, T0 + 5)
    assert exit_.reason is ExitReason.TAKE_PROFIT and exit_.price == 1.0843
    assert exit_.direction is BUY and venue.server_orders(0)[0].client_order_id == "[tp 1.08430]"


def test_with_nothing_watched_the_venue_walks_no_quotes():
    venue = venue_on(GAP_DOWN)
    venue.place(order(BUY), T0)
    venue.positions(T0 + 5)
    assert venue.market.walked == 0  # type: ignore[attr-defined]


# -- limit orders -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (limit(BUY, 1.08510), 10015),  # at the ask: marketable
        (limit(SELL, 1.08490), 10015),  # below the bid: marketable
        (limit(BUY, 1.08500, expires_at=T0), 10022),  # expiry not after now
    ],
)
def test_a_limit_order_the_server_cannot_rest_is_refused_with_its_code(request_, code):
    assert refused_code(venue_on(FLAT), request_) == code


def test_a_limit_nearer_than_the_stops_level_is_refused_as_an_invalid_price():
    venue = venue_on(FLAT, stops_level_points=30)
    assert refused_code(venue, limit(BUY, 1.08490)) == 10015
    assert venue.place(limit(BUY, 1.08480), T0).state is S.WORKING


def test_under_the_through_model_a_limit_touched_but_not_traded_through_does_not_fill():
    quotes = [(T0, 1.085, 1.0851), (T0 + 1, 1.0843, 1.0844), (T0 + 2, 1.0842, 1.0843)]
    venue = venue_on(quotes)
    placed = venue.place(limit(BUY, 1.0844), T0)
    assert venue.status(placed.order_id, T0 + 1).fills == ()  # the ask touched the limit
    report = venue.status(placed.order_id, T0 + 2)  # one point through it
    assert report.state is S.DONE and [f.price for f in report.fills] == [1.0843]


@pytest.mark.parametrize(("probability", "fills"), [(1.0, 1), (0.0, 0)])
def test_under_the_touch_model_a_limit_at_the_touch_fills_with_its_probability(probability, fills):
    quotes = [(T0, 1.085, 1.0851), (T0 + 1, 1.0843, 1.0844)]
    config = VenueConfig(depth=None, limit_queue="touch", touch_fill_probability=probability)
    venue = venue_on(quotes, config=config)
    placed = venue.place(limit(BUY, 1.0844), T0)
    assert len(venue.status(placed.order_id, T0 + 1).fills) == fills


def test_partial_fills_of_a_resting_limit_accumulate_by_the_top_of_the_book():
    quotes = [(T0 + i, 1.0855 + i * 0.0001, 1.0856 + i * 0.0001) for i in range(5)]
    config = VenueConfig(depth=DepthLadder(top_units=100_000))
    venue = venue_on(quotes, config=config)
    placed = venue.place(limit(SELL, 1.0856, units=250_000), T0)
    report = venue.status(placed.order_id, T0 + 3)  # bids 1.0857, 1.0858 through the limit
    assert [f.units for f in report.fills] == [100_000, 100_000] and report.state is S.WORKING
    report = venue.status(placed.order_id, T0 + 4)
    assert report.filled_units == 250_000 and report.state is S.DONE
    [position] = venue.positions(T0 + 4)
    assert position.units == 250_000 and position.position_id == placed.order_id


def test_a_resting_limit_expires_at_its_time_keeping_what_it_filled():
    venue = venue_on(FLAT)
    placed = venue.place(limit(BUY, 1.08, expires_at=T0 + 30), T0)
    assert venue.status(placed.order_id, T0 + 29).state is S.WORKING
    assert venue.status(placed.order_id, T0 + 30).state is S.EXPIRED


def test_cancelling_a_resting_limit_keeps_its_partial_fill():
    quotes = [(T0, 1.085, 1.0851), (T0 + 1, 1.0840, 1.0841)]
    venue = venue_on(quotes, config=VenueConfig(depth=DepthLadder(top_units=100_000)))
    placed = venue.place(limit(BUY, 1.0845, units=300_000), T0)
    cancelled = venue.cancel(placed.order_id, T0 + 2)
    assert cancelled.state is S.CANCELLED and cancelled.filled_units == 100_000


def test_a_limit_fill_gives_the_position_the_stops_judged_at_the_limit():
    quotes = [(T0, 1.085, 1.0851), (T0 + 1, 1.0840, 1.0841)]
    venue = venue_on(quotes)
    venue.place(limit(BUY, 1.0845, stop_loss=1.0844), T0)  # below the limit, above the bid
    [position] = venue.positions(T0 + 1)
    assert position.stop_loss == 1.0844 and position.open_price == 1.0841


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-40, 40), min_size=1, max_size=30),
    st.sampled_from([BUY, SELL]),
    st.integers(5, 30),
    st.integers(1, 5),
    st.sampled_from(["through", "touch"]),
)
def test_limit_fills_are_never_worse_than_the_limit_nor_above_the_units(
    moves, direction, offset, lots, queue
):
    quotes = [(T0, 1.08500, 1.08510)]
    for i, move in enumerate(moves, start=1):
        bid = round(1.08500 + move * 0.00001, 5)
        quotes.append((T0 + i, bid, round(bid + 0.0001, 5)))
    sign = -1 if direction is BUY else 1
    price = round((1.08510 if direction is BUY else 1.08500) + sign * offset * 0.00001, 5)
    config = VenueConfig(depth=DepthLadder(top_units=100_000), limit_queue=queue)
    venue = venue_on(quotes, config=config)
    placed = venue.place(limit(direction, price, units=lots * 100_000), T0)
    report = venue.status(placed.order_id, T0 + len(moves))
    assert report.filled_units <= lots * 100_000
    for fill in report.fills:
        assert fill.price <= price if direction is BUY else fill.price >= price


# -- the ledger and the markets ---------------------------------------------------------------


def test_spilled_orders_read_back_with_their_new_fields_exactly():
    venue = venue_on(GAP_DOWN)
    venue.place(limit(BUY, 1.0830, tag="AXl", expires_at=T0 + 100.5), T0)
    venue.place(order(BUY, tag="AXm", stop_loss=1.084), T0)
    venue.advance(T0 + 5)
    originals = [replace(o, fills=list(o.fills)) for o in venue.orders.values()]
    ledger = Ledger(keep_closed=1)
    for o in originals:
        ledger.add(replace(o, fills=list(o.fills)))
        ledger.closed(ledger[o.ticket])
    assert list(ledger.values()) == originals


def test_a_synthetic_market_strikes_each_tick_between_two_instants_once_in_order():
    market = SyntheticMarket(MarketConfig(), seed=3, start=T0)
    market.quote("EURUSD", T0)
    quotes = list(market.quotes_between("EURUSD", T0, T0 + 5))
    times = [q.time for q in quotes]
    assert times == sorted(set(times)) and len(times) == 20
    assert all(T0 < t <= T0 + 5 for t in times)
    assert market.quote("EURUSD", T0 + 5) == quotes[-1]


def test_a_closed_market_strikes_no_quotes():
    market = SyntheticMarket(MarketConfig(), seed=3, start=T0)
    saturday = T0 + 5 * 86_400  # 07:00 UTC on the Saturday after
    assert not FxWeek().is_open(saturday)
    market.quote("EURUSD", saturday)
    assert list(market.quotes_between("EURUSD", saturday, saturday + 3600)) == []


# -- the book after the venue's own trades, and when spreads widen -----------------------------


def test_a_fill_moves_the_price_the_trades_way_and_the_move_decays_by_half_each_half_life():
    impact = PriceImpactConfig(pips_per_million=1.0, half_life_seconds=10.0)
    venue = venue_on([(0.0, 1.10000, 1.10010)], config=VenueConfig(depth=None, impact=impact))
    first = venue.place(order(Direction.BUY, 1_000_000, "AX1"), 1.0)
    assert first.fills[0].price == 1.1001  # the quote as it was

    pushed = venue.quote("EURUSD", 1.0)
    half = venue.quote("EURUSD", 11.0)
    assert pushed is not None and half is not None
    assert (pushed.bid, pushed.ask) == (1.1001, 1.1002)  # one pip up
    assert (half.bid, half.ask) == (1.10005, 1.10015)  # half a pip left
    second = venue.place(order(Direction.BUY, 100_000, "AX2"), 11.0)
    assert second.fills[0].price == 1.10015  # the next buyer pays what is left of it


def test_selling_after_buying_pushes_the_price_back():
    impact = PriceImpactConfig(pips_per_million=1.0, half_life_seconds=10.0)
    venue = venue_on([(0.0, 1.10000, 1.10010)], config=VenueConfig(depth=None, impact=impact))
    venue.place(order(Direction.BUY, 1_000_000, "AX1"), 1.0)
    venue.place(order(Direction.SELL, 1_000_000, "AX2"), 1.0)
    quote = venue.quote("EURUSD", 1.0)
    assert quote is not None and (quote.bid, quote.ask) == (1.1, 1.1001)


def test_the_book_thins_when_the_market_widens_its_spread():
    """At the rollover the synthetic market's spread widens and its liquidity share falls:
    an all-or-nothing order the London book fills is refused there for want of depth."""
    tuesday_london, tuesday_roll = 1_704_790_800.0, 1_704_837_600.0  # 09:00, 22:00 UTC
    market = SyntheticMarket(MarketConfig(), 3, tuesday_london)
    venue = Venue(market, None, VenueConfig(depth=DepthLadder(top_units=500_000, levels=2)), 3)
    units = 1_000_000
    london = venue.place(
        order(Direction.BUY, units, "AX1", fill_policy=FillPolicy.FOK), tuesday_london
    )
    assert london.filled_units == units
    assert market.liquidity("EURUSD", tuesday_roll) < 0.8
    with pytest.raises(BrokerRejected, match="units on the book, FOK needs"):
        venue.place(order(Direction.SELL, units, "AX2", fill_policy=FillPolicy.FOK), tuesday_roll)
