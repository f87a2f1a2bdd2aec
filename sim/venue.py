"""The simulated broker's trade server: order matching, its own ledger, and the account.

The venue is the broker's side of the wire. It keeps its own ledger of orders and deals,
independent of what the engine believes, so a test can count what really executed. A
market order fills at the quote prevailing when it arrives, walking the depth ladder; it
is refused with the real MT5 return codes for natural causes (session, trade mode,
volume, deviation, margin, liquidity) and for configured extra ones (rate limit, random).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.core.instruments import SymbolSpec, VolumeError, units_to_lots
from engine.core.ports import (
    AccountState,
    BrokerFill,
    BrokerOrderState,
    BrokerRejected,
    FillPolicy,
    OrderReport,
    OrderRequest,
    Position,
    PositionExit,
)
from engine.core.vocabulary import ExitReason, OrderType
from engine.schemas import Direction, ExecutionRejectionReason, MarketSnapshot
from sim import rejections as codes
from sim.account import Account, AccountConfig, Charge, MarginMode
from sim.impact import Liquidity, PriceImpactConfig
from sim.ledger import Ledger, LedgerOrder
from sim.liquidity import DepthLadder
from sim.market import PriceSource
from sim.policies import Dealer, ExecutionPolicy, check_deviation
from sim.positions import PositionBook, VenuePosition
from sim.rejections import RejectionConfig, Rejections
from sim.rejections import refuse as _refuse
from sim.resting import QueueConfig, Triggers, check_limit, check_order_stops
from sim.venue_checks import check_close, check_protection, check_tradable

R = ExecutionRejectionReason


class VenueConfig(BaseModel):
    """How the trade server treats orders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # None: unlimited size at the touch.
    depth: DepthLadder | None = DepthLadder()
    # A dealer that sits on orders: they rest, and fill this long after arrival (inf: never).
    fill_delay_seconds: Annotated[float, Field(ge=0.0)] = 0.0
    rejections: RejectionConfig = RejectionConfig()
    # Resting limit orders: where they stand in the queue at their price (`sim.resting`).
    limit_queue: Literal["through", "touch"] = "through"
    touch_fill_probability: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    # How the broker treats its client beyond the market: feed delay, last look, asymmetric
    # slippage and requotes, commission and swap (`sim.policies`); the default adds none.
    policy: ExecutionPolicy = ExecutionPolicy()
    # Temporary price impact of the venue's own fills, decaying (`sim.impact`); None: none.
    impact: PriceImpactConfig | None = None


class Venue:
    def __init__(
        self,
        market: PriceSource,
        account: AccountConfig | None = None,
        config: VenueConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.market = market
        self.config = config or VenueConfig()
        policy = self.config.policy
        self.account = Account(
            account or AccountConfig(), market, policy if policy.charges else None
        )
        # None unless a policy changes how orders meet the market: a neutral venue pays for
        # the policies with one test per order.
        self.dealer = None if policy.trades_as_market else Dealer(policy, market)
        self.rejections = Rejections(self.config.rejections, seed)
        self.orders = Ledger()
        self.refusals: dict[int, int] = {}  # MT5 code -> count: what the broker refused
        self._next_ticket = 1
        self._next_deal = 1
        self.book = PositionBook(self.account.config.margin_mode is MarginMode.HEDGING)
        self.liquidity = Liquidity(market, self.config.depth, self.config.impact)
        # The working orders that will close a position (named, reduce-only, or the
        # server's own stop-loss and take-profit): ticket -> the position's identifier.
        self.closing: dict[int, int] = {}
        # Closes of positions our client opened, in deal order: what `exits` answers. It
        # grows with those exits only (plain netting opposite orders are not exits).
        self._exits: list[PositionExit] = []
        self._exit_times: list[float] = []
        queue = QueueConfig(
            limit_queue=self.config.limit_queue,
            touch_fill_probability=self.config.touch_fill_probability,
        )
        self.triggers = Triggers(self, queue, seed)
        # A market's symbols and their configs are fixed: build each symbol's spec once.
        self._specs: dict[str, SymbolSpec | None] = {}

    # -- market data and account -----------------------------------------------------

    def spec(self, symbol: str) -> SymbolSpec | None:
        if symbol not in self._specs:
            config = self.market.symbol_config(symbol)
            self._specs[symbol] = config.spec() if config else None
        return self._specs[symbol]

    def advance(self, t: float) -> None:
        """Bring the server up to t: expiries, stop-loss and take-profit triggers and limit
        fills on the quotes struck since it last looked (`sim.resting`). Every public entry
        point calls it first; with nothing watched it costs one test. Orders held for a
        last look are decided first, on the market as it stood when their window ended."""
        if self.dealer is not None and self.dealer.held:
            self.dealer.decide_held(self, t)
        self.triggers.advance(t)

    def quote(self, symbol: str, t: float) -> MarketSnapshot | None:
        self.advance(t)
        return self._published(self._shown(symbol, t), t)

    def _shown(self, symbol: str, t: float) -> MarketSnapshot | None:
        """The market's quote, moved by what is left of the venue's own price impact."""
        quote = self.market.quote(symbol, t)
        spec = self.spec(symbol)
        return self.liquidity.shown(quote, t, spec.pip, spec.digits) if spec else quote

    def feed_quote(self, symbol: str, t: float) -> MarketSnapshot | None:
        """The quote the client's price feed shows at t: the server's own, or with a
        feed delay the one it had that long ago."""
        if self.dealer is None or not self.dealer.delay:
            return self.quote(symbol, t)
        self.advance(t)
        return self._published(self.dealer.feed_quote(symbol, t), t)

    def _published(self, quote: MarketSnapshot | None, t: float) -> MarketSnapshot | None:
        depth = self.liquidity.depth(quote.symbol, t) if quote is not None else None
        if quote is None or depth is None or not depth.published:
            return quote
        total = depth.total_units
        return quote.model_copy(update={"bid_depth_units": total, "ask_depth_units": total})

    def margin_required(self, symbol: str, units: int, t: float) -> float:
        self.advance(t)
        return self.account.margin_for(symbol, units, t)

    def account_state(self, t: float) -> AccountState:
        self.advance(t)
        return self.account.state(t)

    # -- trading ---------------------------------------------------------------------

    def place(self, order: OrderRequest, t: float) -> OrderReport:
        """Match a market order arriving at t, rest a limit order, or refuse either with an
        MT5 code.

        `order.position_id` names a position the order closes, in whole or in part, instead
        of adding to the account's exposure (MqlTradeRequest.position); on a netting account
        `order.reduce_only` closes the symbol's position without naming it, never through
        zero."""
        self.advance(t)
        try:
            return self._place(order, t)
        except BrokerRejected as refusal:
            if refusal.code is not None:
                self.refusals[refusal.code] = self.refusals.get(refusal.code, 0) + 1
            raise

    def _place(self, order: OrderRequest, t: float) -> OrderReport:
        extra = self.rejections.refusal(t)
        if extra is not None:
            raise _refuse(extra, "refused by the broker")
        symbol_config = self.market.symbol_config(order.symbol)
        spec = self.spec(order.symbol)
        if symbol_config is None or spec is None:
            raise _refuse(codes.INVALID, f"unknown symbol {order.symbol}")
        check_tradable(spec, order, self.account)
        if order.fill_policy not in symbol_config.fill_policies:
            raise _refuse(
                codes.INVALID_FILL, f"{order.fill_policy.value} not allowed for {order.symbol}"
            )
        if not self.market.is_open(t):
            raise _refuse(codes.MARKET_CLOSED, f"{order.symbol} is outside its session")
        try:
            lots = units_to_lots(order.units, spec)
        except VolumeError as exc:
            raise _refuse(codes.INVALID_VOLUME, str(exc)) from exc
        if abs(lots - order.lots) > 1e-12:
            raise _refuse(codes.INVALID_VOLUME, f"{order.lots} lots != {order.units} units")
        quote = self.market.quote(order.symbol, t)
        if quote is None:
            raise _refuse(codes.PRICE_OFF, self.market.no_quote_reason(order.symbol, t))
        limit = order.order_type is OrderType.LIMIT
        if limit:
            check_limit(order, quote, spec, t)
        else:
            price = quote.ask if order.direction is Direction.BUY else quote.bid
            if self.dealer is None:
                check_deviation(order, price, spec)
            else:
                self.dealer.check_price(order, price, spec)
        closes = check_close(order, self.book, self.closing)
        if order.stop_loss is not None or order.take_profit is not None:
            check_order_stops(order, quote, spec, closes)
        if not closes:  # a close frees margin: it needs none
            needed = self.margin_required(order.symbol, order.units, t)
            free = self.account.state(t).free_margin
            if needed > free:
                raise _refuse(codes.NO_MONEY, f"margin {needed:.2f} exceeds free margin {free:.2f}")
        depth = self.liquidity.depth(order.symbol, t)
        if (
            not limit
            and order.fill_policy is FillPolicy.FOK
            and depth is not None
            and order.units > depth.total_units
        ):
            raise _refuse(
                codes.REJECT, f"{depth.total_units} units on the book, FOK needs {order.units}"
            )
        ledger_order = self._new_order(order, t, closes)
        if closes:
            self.closing[ledger_order.ticket] = closes
        if limit:
            self.triggers.rest(ledger_order)
        elif self.dealer is not None and self.dealer.accept(ledger_order.ticket, order, t):
            pass  # held for a last look: `advance` decides it when the window ends
        elif self.config.fill_delay_seconds == 0.0:
            self.match(ledger_order, spec, t)
        return ledger_order.report()

    def new_ticket(self) -> int:
        """The next ticket: an order's, or one the MT5 server gives a re-opened position."""
        ticket = self._next_ticket
        self._next_ticket += 1
        return ticket

    def _new_order(self, order: OrderRequest, t: float, closes: int) -> LedgerOrder:
        ledger_order = LedgerOrder(
            self.new_ticket(),
            order.client_order_id,
            order.symbol,
            order.direction,
            order.units,
            t,
            BrokerOrderState.WORKING,
            order_type=order.order_type,
            limit_price=order.limit_price,
            expires_at=order.expires_at,
            stop_loss=order.stop_loss,
            take_profit=order.take_profit,
            position_id=closes,
        )
        self.orders.add(ledger_order)
        return ledger_order

    def match(self, ledger_order: LedgerOrder, spec: SymbolSpec, t: float) -> None:
        """Fill at the quote prevailing at t, as deep as the book goes; IOC drops the rest."""
        quote = self._shown(ledger_order.symbol, t)
        assert quote is not None  # an order only rests once a quote exists
        buy = ledger_order.direction is Direction.BUY
        touch = quote.ask if buy else quote.bid
        depth = self.liquidity.depth(ledger_order.symbol, t)
        units, price = self._closable(ledger_order), touch
        if depth is not None and units:
            units, price = depth.walk(units, touch, 1 if buy else -1, spec.pip)
        if self.dealer is not None:
            price = self.dealer.fill_price(ledger_order.ticket, ledger_order.direction, price, spec)
        if units:
            self.fill(ledger_order, units, price, t)
        self.finish(ledger_order, BrokerOrderState.DONE)

    def _closable(self, ledger_order: LedgerOrder) -> int:
        """The units an order may still fill: a close the dealer sat on closes no more than
        its position still holds (a stop-loss may have closed it meanwhile)."""
        closes = self.closing.get(ledger_order.ticket, 0)
        if not closes:
            return ledger_order.units
        position = self.book.get(closes)
        if position is None or position.direction is ledger_order.direction:
            return 0
        return min(ledger_order.units, position.units)

    def fill(self, ledger_order: LedgerOrder, units: int, price: float, t: float) -> None:
        """One deal of an order: into the account, the position book and, for a close of
        a position our client opened, the exits."""
        deal = self._next_deal
        self._next_deal += 1
        closes = self.closing.get(ledger_order.ticket, 0)
        booked = self.book.book(
            ledger_order.ticket,
            ledger_order.client_order_id,
            ledger_order.symbol,
            ledger_order.direction,
            units,
            price,
            t,
            closes,
        )
        position = booked.position
        ledger_order.fills.append(BrokerFill(str(deal), units, price, t, str(position.identifier)))
        signed = int(ledger_order.direction) * units
        self.account.book(ledger_order.symbol, signed, price, t, booked.closes_at)
        self.liquidity.traded(ledger_order.symbol, signed, t)
        if self.account.costs is not None:
            # A stop or target the server triggered is the cost of the order that opened
            # the position it closes: that execution's round trip.
            owner = (
                ledger_order.client_order_id
                if ledger_order.reason is None
                else position.client_order_id
            )
            self.account.charge_commission(
                ledger_order.symbol, units, t, ledger_order.ticket, deal, owner
            )
        if booked.holds and (
            ledger_order.stop_loss is not None or ledger_order.take_profit is not None
        ):
            # A fill that opens or adds to a position gives it the order's levels.
            stop_loss = (
                ledger_order.stop_loss if ledger_order.stop_loss is not None else position.stop_loss
            )
            take_profit = (
                ledger_order.take_profit
                if ledger_order.take_profit is not None
                else position.take_profit
            )
            self.book.set_levels(position, stop_loss, take_profit, t)
        if closes and booked.closed_units:
            reason = ledger_order.reason or ExitReason.ORDER
            level = None
            if reason is ExitReason.STOP_LOSS or reason is ExitReason.TAKE_PROFIT:
                level = (
                    ledger_order.stop_loss
                    if reason is ExitReason.STOP_LOSS
                    else ledger_order.take_profit
                )
            self._exit_times.append(max(t, self._exit_times[-1]) if self._exit_times else t)
            self._exits.append(
                PositionExit(
                    deal_id=str(deal),
                    position_id=str(position.identifier),
                    client_order_id=position.client_order_id,
                    reason=reason,
                    symbol=ledger_order.symbol,
                    direction=ledger_order.direction,
                    units=booked.closed_units,
                    price=price,
                    level=level,
                    time=t,
                )
            )

    def finish(self, ledger_order: LedgerOrder, state: BrokerOrderState) -> None:
        """The order will not change again."""
        ledger_order.state = state
        self.closing.pop(ledger_order.ticket, None)
        self.orders.closed(ledger_order)

    def _settle(self, ledger_order: LedgerOrder, t: float) -> LedgerOrder:
        """A market order the dealer sat on fills once its delay has passed, when anyone
        next looks at it (a limit order fills on the quote path instead)."""
        due = ledger_order.time + self.config.fill_delay_seconds
        if (
            ledger_order.state is BrokerOrderState.WORKING
            and ledger_order.order_type is OrderType.MARKET
            and t >= due
            and (self.dealer is None or ledger_order.ticket not in self.dealer.held)
        ):
            spec = self.spec(ledger_order.symbol)
            assert spec is not None
            self.match(ledger_order, spec, t)
        return ledger_order

    # -- last look ----------------------------------------------------------------------

    @property
    def holds_orders(self) -> bool:
        """True if the venue holds market orders for a last look before answering."""
        return self.dealer is not None and self.dealer.hold > 0.0

    def held_until(self, order_id: str) -> float | None:
        """When the last look of a held order ends; None if it is not held."""
        if self.dealer is None or not order_id.isdigit():
            return None
        held = self.dealer.held.get(int(order_id))
        return held.due if held is not None else None

    def last_look_refusal(self, order_id: str, t: float) -> BrokerRejected | None:
        """The rejection an order met at the end of its last look, if it did by t."""
        self.advance(t)
        if self.dealer is None or not order_id.isdigit():
            return None
        why = self.dealer.refused.get(int(order_id))
        return _refuse(codes.REJECT, why) if why is not None else None

    def status(self, order_id: str, t: float) -> OrderReport:
        self.advance(t)
        return self._settle(self._order(order_id), t).report()

    def find(self, client_order_id: str, t: float) -> OrderReport | None:
        self.advance(t)
        ledger_order = self.orders.latest(client_order_id)
        return self._settle(ledger_order, t).report() if ledger_order is not None else None

    def cancel(self, order_id: str, t: float) -> OrderReport:
        """A working order cancelled with whatever it filled (a resting limit's partial
        fills stay)."""
        self.advance(t)
        ledger_order = self._settle(self._order(order_id), t)
        if ledger_order.state is BrokerOrderState.WORKING:
            self.triggers.drop(ledger_order)
            self.finish(ledger_order, BrokerOrderState.CANCELLED)
        return ledger_order.report()

    def _order(self, order_id: str) -> LedgerOrder:
        ledger_order = self.orders.get(int(order_id)) if order_id.isdigit() else None
        if ledger_order is None:
            raise _refuse(codes.INVALID_ORDER, f"no order {order_id}")
        return ledger_order

    # -- positions ------------------------------------------------------------------------

    def positions(self, t: float, symbol: str | None = None) -> tuple[Position, ...]:
        """The open positions (of one symbol), oldest first."""
        self.advance(t)
        return tuple(p.public() for p in self.book.all(symbol))

    def position(self, identifier: int) -> VenuePosition | None:
        """The venue's own record of an open position (as it stands: no advance)."""
        return self.book.get(identifier)

    def set_protection(
        self, position_id: str, stop_loss: float | None, take_profit: float | None, t: float
    ) -> Position:
        """Set a position's stop-loss and take-profit (None removes one), as MT5
        TRADE_ACTION_SLTP is answered: 10036 for a position not open, 10025 NO_CHANGES for
        the levels it has, 10029 FROZEN when a current level is within the freeze level of
        the market, 10016 for a new level on the wrong side or nearer than the stops level
        (the MQL4 book's "Requirements and Limitations in Making Trades",
        book.mql4.com/appendix/limits)."""
        self.advance(t)
        try:
            return self._set_protection(position_id, stop_loss, take_profit, t)
        except BrokerRejected as refusal:
            if refusal.code is not None:
                self.refusals[refusal.code] = self.refusals.get(refusal.code, 0) + 1
            raise

    def _set_protection(
        self, position_id: str, stop_loss: float | None, take_profit: float | None, t: float
    ) -> Position:
        position = self.book.get(int(position_id)) if position_id.isdigit() else None
        if position is None:
            raise _refuse(codes.POSITION_CLOSED, f"no position {position_id}")
        spec = self.spec(position.symbol)
        quote = self.market.quote(position.symbol, t)
        assert spec is not None and quote is not None  # a position has both
        check_protection(position, stop_loss, take_profit, quote, spec)
        self.book.set_levels(position, stop_loss, take_profit, t)
        return position.public()

    def exits(self, since: float, t: float) -> tuple[PositionExit, ...]:
        """Deals at or after `since` that closed positions our client's orders opened: by
        their stop-loss or take-profit, or by an order that named them or only reduced."""
        self.advance(t)
        # Deal times never step back by much (a delayed fill is stamped when looked at):
        # search from the first that may be at `since`, then filter.
        first = bisect_left(self._exit_times, since)
        return tuple(e for e in self._exits[first:] if e.time >= since)

    def server_orders(self, after_ticket: int) -> list[LedgerOrder]:
        """The orders the server itself created (stop-loss, take-profit), ticket above
        `after_ticket`, in ticket order: what the MT5 terminal books as their deals."""
        tickets = self.triggers.server_tickets
        return [self.orders[ticket] for ticket in tickets[bisect_left(tickets, after_ticket + 1) :]]

    # -- the ledger, for tests and invariants -------------------------------------------

    def orders_by_client_id(self) -> dict[str, list[LedgerOrder]]:
        return {orders[0].client_order_id: orders for orders in self.orders.by_client()}

    def ledger_rows(self) -> Iterator[tuple[int, str, str, int, int, str, int, float, float]]:
        """Every order and its deals as plain rows, in ticket order (`Ledger.rows`)."""
        return self.orders.rows()

    def charges(self) -> list[Charge]:
        """Commission and swap the account paid (or earned), in the order booked."""
        return self.account.charges

    def ledger_orders(self) -> list[LedgerOrder]:
        return list(self.orders.values())

    def ledger_bytes(self) -> bytes:
        return b"\n".join(repr(row).encode() for row in self.ledger_rows())
