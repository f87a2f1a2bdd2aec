"""The simulated broker's trade server: order matching, its own ledger, and the account.

The venue is the broker's side of the wire. It keeps its own ledger of orders and deals,
independent of what the engine believes, so a test can count what really executed. A
market order fills at the quote prevailing when it arrives, walking the depth ladder; it
is refused with the real MT5 return codes for natural causes (session, trade mode,
volume, deviation, margin, liquidity) and for configured extra ones (rate limit, random).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from engine.core.instruments import SymbolSpec, TradeMode, VolumeError, units_to_lots
from engine.core.ports import (
    AccountState,
    BrokerFill,
    BrokerOrderState,
    BrokerRejected,
    FillPolicy,
    OrderReport,
    OrderRequest,
)
from engine.schemas import Direction, ExecutionRejectionReason, MarketSnapshot
from sim import rejections as codes
from sim.account import Account, AccountConfig, MarginMode
from sim.ledger import Ledger, LedgerOrder
from sim.liquidity import DepthLadder
from sim.market import PriceSource
from sim.rejections import RejectionConfig, Rejections, reason_for

R = ExecutionRejectionReason


class VenueConfig(BaseModel):
    """How the trade server treats market orders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # None: unlimited size at the touch.
    depth: DepthLadder | None = DepthLadder()
    # A dealer that sits on orders: they rest, and fill this long after arrival (inf: never).
    fill_delay_seconds: Annotated[float, Field(ge=0.0)] = 0.0
    rejections: RejectionConfig = RejectionConfig()


def _refuse(code: int, detail: str) -> BrokerRejected:
    return BrokerRejected(reason_for(code), f"{codes.DESCRIPTION[code]}: {detail}", code)


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
        self.account = Account(account or AccountConfig(), market)
        self.rejections = Rejections(self.config.rejections, seed)
        self.orders = Ledger()
        self.refusals: dict[int, int] = {}  # MT5 code -> count: what the broker refused
        self._next_ticket = 1
        self._next_deal = 1
        # Positions closed by naming them. The working orders that will close one: ticket
        # -> the position's identifier. On a hedging account, each position's units closed
        # so far, by identifier (the ticket of the order whose one fill opened it), and the
        # orders that closed one, which opened none.
        self._closing: dict[int, int] = {}
        self._closed_units: dict[int, int] = {}
        self._closers: set[int] = set()
        # A market's symbols and their configs are fixed: build each symbol's spec once.
        self._specs: dict[str, SymbolSpec | None] = {}

    # -- market data and account -----------------------------------------------------

    def spec(self, symbol: str) -> SymbolSpec | None:
        if symbol not in self._specs:
            config = self.market.symbol_config(symbol)
            self._specs[symbol] = config.spec() if config else None
        return self._specs[symbol]

    def quote(self, symbol: str, t: float) -> MarketSnapshot | None:
        quote = self.market.quote(symbol, t)
        depth = self.config.depth
        if quote is None or depth is None or not depth.published:
            return quote
        total = depth.total_units
        return quote.model_copy(update={"bid_depth_units": total, "ask_depth_units": total})

    def margin_required(self, symbol: str, units: int, t: float) -> float:
        return self.account.margin_for(symbol, units, t)

    def account_state(self, t: float) -> AccountState:
        return self.account.state(t)

    # -- trading ---------------------------------------------------------------------

    def place(self, order: OrderRequest, t: float, closes: int | None = None) -> OrderReport:
        """Match a market order arriving at t, or refuse it with an MT5 code.

        `closes` is the identifier of a position the order closes, in whole or in part,
        instead of adding to the account's exposure: on a hedging account it says which;
        on a netting account, where a symbol has one position, that the order may only
        reduce it (never reverse it)."""
        try:
            return self._place(order, t, closes)
        except BrokerRejected as refusal:
            if refusal.code is not None:
                self.refusals[refusal.code] = self.refusals.get(refusal.code, 0) + 1
            raise

    def _place(self, order: OrderRequest, t: float, closes: int | None) -> OrderReport:
        extra = self.rejections.refusal(t)
        if extra is not None:
            raise _refuse(extra, "refused by the broker")
        symbol_config = self.market.symbol_config(order.symbol)
        spec = self.spec(order.symbol)
        if symbol_config is None or spec is None:
            raise _refuse(codes.INVALID, f"unknown symbol {order.symbol}")
        self._check_tradable(spec, order)
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
            raise _refuse(codes.PRICE_OFF, f"no quote for {order.symbol} yet")
        price = quote.ask if order.direction is Direction.BUY else quote.bid
        if order.deviation_points is not None:
            moved = abs(price - order.price) / spec.point
            if moved > order.deviation_points + 1e-6:
                raise _refuse(
                    codes.REQUOTE,
                    f"price moved {moved:.0f} points, deviation {order.deviation_points}",
                )
        if closes is not None:
            self._check_close(order, closes)
        else:  # a close frees margin: it needs none
            needed = self.margin_required(order.symbol, order.units, t)
            free = self.account.state(t).free_margin
            if needed > free:
                raise _refuse(codes.NO_MONEY, f"margin {needed:.2f} exceeds free margin {free:.2f}")
        depth = self.config.depth
        if (
            order.fill_policy is FillPolicy.FOK
            and depth is not None
            and order.units > depth.total_units
        ):
            raise _refuse(
                codes.REJECT, f"{depth.total_units} units on the book, FOK needs {order.units}"
            )
        ledger_order = self._new_order(order, t)
        if closes is not None:
            self._closing[ledger_order.ticket] = closes
            if self._hedging:
                self._closers.add(ledger_order.ticket)
        if self.config.fill_delay_seconds == 0.0:
            self._match(ledger_order, spec, t)
        return ledger_order.report()

    def _check_tradable(self, spec: SymbolSpec, order: OrderRequest) -> None:
        mode, buy = spec.trade_mode, order.direction is Direction.BUY
        if mode is TradeMode.DISABLED:
            raise _refuse(codes.TRADE_DISABLED, f"{spec.symbol} trading disabled")
        if mode is TradeMode.LONG_ONLY and not buy:
            raise _refuse(codes.LONG_ONLY, spec.symbol)
        if mode is TradeMode.SHORT_ONLY and buy:
            raise _refuse(codes.SHORT_ONLY, spec.symbol)
        if mode is TradeMode.CLOSE_ONLY:
            held = self.account.net_units(order.symbol)
            reduces = held != 0 and (held > 0) != buy and order.units <= abs(held)
            if not reduces:
                raise _refuse(codes.CLOSE_ONLY, spec.symbol)

    @property
    def _hedging(self) -> bool:
        return self.account.config.margin_mode is MarginMode.HEDGING

    def _check_close(self, order: OrderRequest, closes: int) -> None:
        """Whether the order may close the position it names, as MT5 answers: 10036 for a
        position that is not open, 10039 while another order is closing it, 10038 for more
        volume than it holds (MQL5 reference, trade server return codes)."""
        if self._hedging:
            opening = self.orders.get(closes)
            if (
                opening is None
                or closes in self._closers
                or not opening.fills
                or opening.symbol != order.symbol
            ):
                raise _refuse(codes.POSITION_CLOSED, f"no position {closes}")
            left = opening.fills[0].units - self._closed_units.get(closes, 0)
            held = int(opening.direction) * left
        else:
            held = self.account.net_units(order.symbol)
        if held == 0:
            raise _refuse(codes.POSITION_CLOSED, f"no {order.symbol} position")
        if closes in self._closing.values():
            raise _refuse(codes.CLOSE_ORDER_EXIST, f"position {closes}")
        if (held > 0) == (order.direction is Direction.BUY):
            # Unconfirmed which code a server gives: the stricter reading, a bad request.
            raise _refuse(codes.INVALID, "a close must trade against the position")
        if order.units > abs(held):
            raise _refuse(codes.INVALID_CLOSE_VOLUME, f"{order.units} units, {abs(held)} held")

    def new_ticket(self) -> int:
        """The next ticket: an order's, or one the MT5 server gives a re-opened position."""
        ticket = self._next_ticket
        self._next_ticket += 1
        return ticket

    def _new_order(self, order: OrderRequest, t: float) -> LedgerOrder:
        ledger_order = LedgerOrder(
            self.new_ticket(),
            order.client_order_id,
            order.symbol,
            order.direction,
            order.units,
            t,
            BrokerOrderState.WORKING,
        )
        self.orders.add(ledger_order)
        return ledger_order

    def _match(self, ledger_order: LedgerOrder, spec: SymbolSpec, t: float) -> None:
        """Fill at the quote prevailing at t, as deep as the book goes; IOC drops the rest."""
        quote = self.market.quote(ledger_order.symbol, t)
        assert quote is not None  # an order only rests once a quote exists
        buy = ledger_order.direction is Direction.BUY
        touch = quote.ask if buy else quote.bid
        depth = self.config.depth
        units, price = ledger_order.units, touch
        if depth is not None:
            units, price = depth.walk(ledger_order.units, touch, 1 if buy else -1, spec.pip)
        closes = self._closing.pop(ledger_order.ticket, None)
        if units:
            deal = self._next_deal
            self._next_deal += 1
            ledger_order.fills.append(BrokerFill(str(deal), units, price, t))
            opened_at = None
            if closes is not None and self._hedging:
                opened_at = self.orders[closes].fills[0].price
                self._closed_units[closes] = self._closed_units.get(closes, 0) + units
            signed = int(ledger_order.direction) * units
            self.account.book(ledger_order.symbol, signed, price, t, opened_at)
        ledger_order.state = BrokerOrderState.DONE
        self.orders.closed(ledger_order)

    def _settle(self, ledger_order: LedgerOrder, t: float) -> LedgerOrder:
        """A resting order fills once its delay has passed, when anyone next looks at it."""
        due = ledger_order.time + self.config.fill_delay_seconds
        if ledger_order.state is BrokerOrderState.WORKING and t >= due:
            spec = self.spec(ledger_order.symbol)
            assert spec is not None
            self._match(ledger_order, spec, t)
        return ledger_order

    def status(self, order_id: str, t: float) -> OrderReport:
        return self._settle(self._order(order_id), t).report()

    def find(self, client_order_id: str, t: float) -> OrderReport | None:
        ledger_order = self.orders.latest(client_order_id)
        return self._settle(ledger_order, t).report() if ledger_order is not None else None

    def cancel(self, order_id: str, t: float) -> OrderReport:
        ledger_order = self._settle(self._order(order_id), t)
        if ledger_order.state is BrokerOrderState.WORKING:
            ledger_order.state = BrokerOrderState.CANCELLED
            self._closing.pop(ledger_order.ticket, None)
            self.orders.closed(ledger_order)
        return ledger_order.report()

    def _order(self, order_id: str) -> LedgerOrder:
        ledger_order = self.orders.get(int(order_id)) if order_id.isdigit() else None
        if ledger_order is None:
            raise _refuse(codes.INVALID_ORDER, f"no order {order_id}")
        return ledger_order

    # -- the ledger, for tests and invariants -------------------------------------------

    def orders_by_client_id(self) -> dict[str, list[LedgerOrder]]:
        return {orders[0].client_order_id: orders for orders in self.orders.by_client()}

    def ledger_rows(self) -> Iterator[tuple[int, str, str, int, int, str, int, float, float]]:
        """Every order and its deals as plain rows, in ticket order: what a byte-for-byte
        comparison reads, one row at a time."""
        for ticket, o in self.orders.items():
            for fill in o.fills or [None]:
                yield (
                    ticket,
                    o.client_order_id,
                    o.symbol,
                    int(o.direction),
                    o.units,
                    o.state.value,
                    fill.units if fill else 0,
                    fill.price if fill else 0.0,
                    fill.time if fill else o.time,
                )

    def ledger_orders(self) -> list[LedgerOrder]:
        return list(self.orders.values())

    def ledger_bytes(self) -> bytes:
        return b"\n".join(repr(row).encode() for row in self.ledger_rows())
