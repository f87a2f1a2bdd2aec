"""How a broker treats its client's orders beyond the market itself: execution policies.

A neutral venue fills at the price prevailing when an order arrives, symmetric in every
way. Real retail brokers do not all do so, and a quant studying execution cost must be able
to meet the ones that do not. Each policy here is declared in a scenario (`[broker]`), and
they combine freely:

- **quote-feed delay**: the client sees quotes `feed_delay_ms` late (a slow or throttled
  price stream) while the server fills on its own current price;
- **last look**: the server holds an order `hold_ms` after arrival and rejects it if the
  price moved against the server (the trade's way: up for a buy, so the client's request
  was a winner) by more than a threshold; else it fills at the end of the window on the
  then-current price. The FX Global Code
  (Principle 17, revised December 2017 by the GFXC) describes last look as a final
  opportunity to accept or reject a trade request against the quoted price, a risk control
  that must be disclosed, and forbids trading on the request's information during the
  window;
- **asymmetric slippage**: adverse moves between the client's requested price and the fill
  are passed on, favourable ones withheld (filled at the requested price) or capped. The
  NFA fined FXCM ($2,000,000, August 2011) and FXDirectDealer ($1.1 million, September
  2013) for exactly such settings, and its Interpretive Notice 9064 to Compliance Rule
  2-36 (effective 26 March 2012) requires slippage settings to apply whichever way the
  market moved;
- **asymmetric requotes**: a requote when the price moved in the client's favour, none when
  it moved against (within the client's `deviation`). The same NFA notice: a dealer that
  requotes when the market moves against it must requote when it moves in its favour;
- **costs**: commission per lot per side and swap at the daily rollover, booked in the
  account (`sim.account`).

Two profiles come in the library: "neutral_ecn" and "retail_dealing_desk". Nothing here
draws at random: the same scenario and seed give the same ledger.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.core.instruments import SymbolSpec
from engine.core.ports import BrokerOrderState, OrderRequest
from engine.schemas import Direction, MarketSnapshot
from sim import rejections as codes
from sim.market import PriceSource
from sim.rejections import refuse
from sim.replay import ReplayMarket

if TYPE_CHECKING:
    from sim.venue import Venue

ProfileName = Literal["neutral_ecn", "retail_dealing_desk"]
Symmetry = Literal["symmetric", "asymmetric"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LastLook(_Model):
    # 0: no last look. Published last-look windows of FX liquidity providers run from a few
    # milliseconds to a few hundred; ten seconds is far past any disclosed one.
    hold_ms: Annotated[float, Field(ge=0.0, le=10_000.0)] = 0.0
    # A move the trade's way (up for a buy: the client's request a winner at the server's
    # expense) beyond this many points, from the requested price to the price at the end of
    # the window, is rejected; a smaller one fills at the window's end price.
    threshold_points: Annotated[float, Field(ge=0.0)] = 0.0


class SwapRates(_Model):
    """Swap in points per lot per night (MT5 SYMBOL_SWAP_MODE_POINTS): + credits, - debits."""

    long_points: float = 0.0
    short_points: float = 0.0


class ExecutionPolicy(_Model):
    """Everything a broker adds to the market; the defaults add nothing."""

    # The client's quote stream lags the server's prices by this much (at most a minute).
    feed_delay_ms: Annotated[float, Field(ge=0.0, le=60_000.0)] = 0.0
    last_look: LastLook = LastLook()
    # "asymmetric": a fill better than the requested price is moved back to it, or to at
    # most `improvement_cap_points` better; a worse one is passed on in full.
    slippage: Symmetry = "symmetric"
    improvement_cap_points: Annotated[float, Field(ge=0.0)] = 0.0
    # "asymmetric": requote (10004) a market order whose price moved in the client's favour
    # by more than `requote_threshold_points`; a move against is filled within `deviation`.
    requotes: Symmetry = "symmetric"
    requote_threshold_points: Annotated[float, Field(ge=0.0)] = 0.0
    # Commission per lot, per side (each deal pays it), in the account currency.
    commission_per_lot: Annotated[float, Field(ge=0.0)] = 0.0
    # Swap at each daily rollover (17:00 New York), per symbol or else `swap`; the night
    # that settles over a weekend is charged three times (MT5 SYMBOL_SWAP_ROLLOVER3DAYS,
    # Wednesday by default: spot settles two business days on).
    swap: SwapRates = SwapRates()
    swaps: dict[str, SwapRates] = Field(default_factory=dict)
    triple_swap_weekday: Annotated[int, Field(ge=0, le=4)] = 2

    @property
    def trades_as_market(self) -> bool:
        """True when orders meet the market as a neutral venue fills them (costs aside)."""
        return (
            self.feed_delay_ms == 0.0
            and self.last_look.hold_ms == 0.0
            and self.slippage == "symmetric"
            and self.requotes == "symmetric"
        )

    @property
    def charges(self) -> bool:
        """True when the account pays commission or swap."""
        rates = (self.swap, *self.swaps.values())
        return self.commission_per_lot > 0.0 or any(r.long_points or r.short_points for r in rates)

    def swap_rates(self, symbol: str) -> SwapRates:
        return self.swaps.get(symbol, self.swap)


# The library's two brokers. Numbers are illustrative of their kind, not of a named firm:
# ECN commissions run about 3-3.5 USD per lot per side (7 round turn) at retail ECN
# brokers; dealing desks charge none and earn the spread and the asymmetries instead.
PROFILES: dict[ProfileName, ExecutionPolicy] = {
    "neutral_ecn": ExecutionPolicy(
        commission_per_lot=3.5,
        swap=SwapRates(long_points=-6.0, short_points=1.5),
    ),
    "retail_dealing_desk": ExecutionPolicy(
        feed_delay_ms=150.0,
        last_look=LastLook(hold_ms=100.0, threshold_points=3.0),
        slippage="asymmetric",
        improvement_cap_points=0.0,
        requotes="asymmetric",
        requote_threshold_points=5.0,
        swap=SwapRates(long_points=-9.0, short_points=-1.0),
    ),
}


class BrokerPolicy(ExecutionPolicy):
    """A scenario's `[broker]` section: a library profile by name, any field overridden
    (a sub-table such as `[broker.last_look]` is overridden field by field)."""

    profile: ProfileName | None = None

    @model_validator(mode="before")
    @classmethod
    def _profile_under_overrides(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("profile") is None:
            return data
        name = data["profile"]
        if name not in PROFILES:
            return data  # the field's own check names the choices
        merged: dict[str, Any] = PROFILES[name].model_dump()
        for key, value in data.items():
            base = merged.get(key)
            if isinstance(base, dict) and isinstance(value, dict) and key != "swaps":
                merged[key] = {**base, **value}
            else:
                merged[key] = value
        return merged

    def policy(self) -> ExecutionPolicy:
        return ExecutionPolicy.model_validate(self.model_dump(exclude={"profile"}))


@dataclass(slots=True)
class Held:
    """A market order in its last-look window."""

    due: float
    requested: float  # the price the client asked for (the quoted side it saw)


class Dealer:
    """The policies at work in one venue: the delayed feed, the orders held for a last
    look, the price a fill gets. The venue asks it only when a policy is configured."""

    def __init__(self, policy: ExecutionPolicy, market: PriceSource) -> None:
        self.policy = policy
        self.delay = policy.feed_delay_ms / 1000.0
        self.hold = policy.last_look.hold_ms / 1000.0
        self.feed = _twin(market) if self.delay else market
        self.held: dict[int, Held] = {}  # ticket -> its window, in arrival order
        self.requested: dict[int, float] = {}  # ticket -> requested price, until it fills
        self.refused: dict[int, str] = {}  # ticket -> why last look rejected it

    def feed_quote(self, symbol: str, t: float) -> MarketSnapshot | None:
        """The quote the client's feed shows at t: the one the server had `delay` ago."""
        return self.feed.quote(symbol, t - self.delay)

    def check_price(self, order: OrderRequest, price: float, spec: SymbolSpec) -> None:
        """Requote a market order whose price moved beyond the client's deviation, or, with
        asymmetric requotes, beyond the threshold in the client's favour only."""
        if self.policy.requotes == "symmetric" or not order.price:
            check_deviation(order, price, spec)
            return
        against = _against_client(order.direction, order.price, price) / spec.point
        if -against > self.policy.requote_threshold_points + 1e-6:
            raise refuse(codes.REQUOTE, f"price moved {-against:.0f} points in your favour")
        if order.deviation_points is not None and against > order.deviation_points + 1e-6:
            raise refuse(
                codes.REQUOTE,
                f"price moved {against:.0f} points, deviation {order.deviation_points}",
            )

    def accept(self, ticket: int, order: OrderRequest, t: float) -> bool:
        """Note what a market order asked for; True if it is held for a last look."""
        if order.price and self.policy.slippage == "asymmetric":
            self.requested[ticket] = order.price
        if not self.hold:
            return False
        self.held[ticket] = Held(t + self.hold, order.price)
        return True

    def due(self, t: float) -> list[tuple[int, Held]]:
        """The held orders whose window has ended by t, oldest first, no longer held."""
        ended = [(ticket, held) for ticket, held in self.held.items() if held.due <= t]
        for ticket, _ in ended:
            del self.held[ticket]
        return ended

    def decide_held(self, venue: Venue, t: float) -> None:
        """Accept or reject each order whose last-look window ended by t, at the price of
        the window's end. The venue advances here before anything else, so the market has
        not been asked about a later instant yet. A rejection is MT5's 10006 "request
        rejected": market execution relays a liquidity provider's refusal so, requotes
        (10004) belonging to request and instant execution (metatrader5.com help, "Types of
        Execution"; ../shared/mt5-reference.md)."""
        for ticket, held in self.due(t):
            order = venue.orders.get(ticket)
            if order is None or order.state is not BrokerOrderState.WORKING:
                continue  # cancelled meanwhile
            spec = venue.spec(order.symbol)
            quote = venue.market.quote(order.symbol, held.due)
            assert spec is not None and quote is not None  # it was accepted on a quote
            price = quote.ask if order.direction is Direction.BUY else quote.bid
            if self.looks_away(order.direction, held, price, spec):
                self.requested.pop(ticket, None)
                self.refused[ticket] = f"last look: the price moved to {price}"
                venue.refusals[codes.REJECT] = venue.refusals.get(codes.REJECT, 0) + 1
                # Rejected, the request leaves no order behind: the client's answer is the
                # refusal alone, as an order_send's 10006 carries no ticket.
                venue.closing.pop(ticket, None)
                venue.orders.discard(order)
            else:
                venue.match(order, spec, held.due)

    def looks_away(self, direction: Direction, held: Held, price: float, spec: SymbolSpec) -> bool:
        """True if last look rejects: the market moved the trade's way (up for a buy) by
        more than the threshold since the price the client asked for — the request was a
        winner for the client at the server's expense, the flow a dealer calls toxic."""
        if not held.requested:
            return False
        moved = _against_client(direction, held.requested, price) / spec.point
        return moved > self.policy.last_look.threshold_points + 1e-6

    def fill_price(
        self, ticket: int, direction: Direction, price: float, spec: SymbolSpec
    ) -> float:
        """The price a fill gets: with asymmetric slippage, an improvement on the requested
        price is withheld beyond the cap; a worse price is passed on as it is."""
        requested = self.requested.pop(ticket, None)
        if requested is None:
            return price
        cap = self.policy.improvement_cap_points * spec.point
        if direction is Direction.BUY:
            return max(price, round(requested - cap, spec.digits))
        return min(price, round(requested + cap, spec.digits))


def check_deviation(order: OrderRequest, price: float, spec: SymbolSpec) -> None:
    """A neutral server's requote: the price moved beyond the client's `deviation`, either
    way (MT5 request and instant execution: 10004)."""
    if order.deviation_points is not None:
        moved = abs(price - order.price) / spec.point
        if moved > order.deviation_points + 1e-6:
            raise refuse(
                codes.REQUOTE, f"price moved {moved:.0f} points, deviation {order.deviation_points}"
            )


def _against_client(direction: Direction, requested: float, price: float) -> float:
    """How far `price` is worse for the client than `requested` (negative: better)."""
    return price - requested if direction is Direction.BUY else requested - price


def _twin(market: PriceSource) -> PriceSource:
    """A second copy of the market the delayed feed can read behind the server: a replay
    answers any instant, but a synthetic walk only moves forward. Copied before the walk
    starts, the twin walks the very same path (a function of time alone, `sim.market`)."""
    if isinstance(market, ReplayMarket):
        return market
    return copy.deepcopy(market)
