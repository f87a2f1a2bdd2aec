"""The simulated broker's trade server: order matching, its own ledger, and the account.

The venue is the broker's side of the wire. It keeps its own ledger of orders and deals,
independent of what the engine believes, so a test can count what really executed. It
fills a market order at the quote prevailing when the order arrives, and refuses with
the real MT5 return codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from sim.market import SyntheticMarket

R = ExecutionRejectionReason

# MT5 TRADE_RETCODE values (see mt5-reference.md)
REQUOTE = 10004
INVALID = 10013
INVALID_VOLUME = 10014
TRADE_DISABLED = 10017
REJECT = 10006
MARKET_CLOSED = 10018
NO_MONEY = 10019
INVALID_ORDER = 10035
LONG_ONLY = 10042
SHORT_ONLY = 10043
CLOSE_ONLY = 10044


class AccountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    balance: Annotated[float, Field(gt=0.0)] = 1_000_000.0
    leverage: Annotated[int, Field(ge=1, le=3000)] = 100


class VenueConfig(BaseModel):
    """How the trade server treats market orders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Units available at the touch for one order; IOC fills that much and cancels the rest.
    max_fill_units: Annotated[int | None, Field(gt=0)] = None
    # A dealer that sits on orders: they rest, and fill this long after arrival (inf: never).
    fill_delay_seconds: Annotated[float, Field(ge=0.0)] = 0.0


@dataclass(slots=True)
class LedgerOrder:
    ticket: int
    client_order_id: str
    symbol: str
    direction: Direction
    units: int
    time: float
    fill_policy: FillPolicy
    state: BrokerOrderState
    fills: list[BrokerFill] = field(default_factory=list)

    def report(self) -> OrderReport:
        return OrderReport(
            order_id=str(self.ticket),
            client_order_id=self.client_order_id,
            state=self.state,
            requested_units=self.units,
            fills=tuple(self.fills),
        )


@dataclass(slots=True)
class _Position:
    units: int = 0  # signed: + long, - short (netting)
    average_price: float = 0.0


class Venue:
    def __init__(
        self,
        market: SyntheticMarket,
        account: AccountConfig | None = None,
        config: VenueConfig | None = None,
    ) -> None:
        self.market = market
        self.config = config or VenueConfig()
        self.account_config = account or AccountConfig()
        self.balance = self.account_config.balance
        self.orders: dict[int, LedgerOrder] = {}
        self._by_client_id: dict[str, int] = {}
        self._positions: dict[str, _Position] = {}
        self._next_ticket = 1
        self._next_deal = 1

    # -- market data and account -----------------------------------------------------

    def spec(self, symbol: str) -> SymbolSpec | None:
        config = self.market.symbol_config(symbol)
        return config.spec() if config else None

    def quote(self, symbol: str, t: float) -> MarketSnapshot | None:
        return self.market.quote(symbol, t)

    def _to_account(self, amount: float, currency: str, t: float) -> float:
        home = self.account_config.currency
        if currency == home:
            return amount
        if self.market.symbol_config(currency + home):
            return amount * self.market.mid(currency + home, t)
        if self.market.symbol_config(home + currency):
            return amount / self.market.mid(home + currency, t)
        raise KeyError(f"no rate to convert {currency} into {home}")

    def margin_required(self, symbol: str, units: int, t: float) -> float:
        return self._to_account(units, symbol[:3], t) / self.account_config.leverage

    def account(self, t: float) -> AccountState:
        margin = 0.0
        unrealised = 0.0
        for symbol, position in self._positions.items():
            if position.units == 0:
                continue
            margin += self.margin_required(symbol, abs(position.units), t)
            mid = self.market.mid(symbol, t)
            unrealised += self._to_account(
                position.units * (mid - position.average_price), symbol[3:], t
            )
        equity = self.balance + unrealised
        return AccountState(
            currency=self.account_config.currency,
            balance=self.balance,
            equity=equity,
            margin_used=margin,
            free_margin=equity - margin,
            leverage=self.account_config.leverage,
        )

    # -- trading ---------------------------------------------------------------------

    def place(self, order: OrderRequest, t: float) -> OrderReport:
        """Match a market order at arrival time t, or refuse it with an MT5 code."""
        spec = self.spec(order.symbol)
        if spec is None:
            raise BrokerRejected(R.SYMBOL_NOT_TRADABLE, f"unknown symbol {order.symbol}", INVALID)
        self._check_tradable(spec, order)
        if not self.market.is_open(t):
            raise BrokerRejected(R.MARKET_CLOSED, "market closed", MARKET_CLOSED)
        try:
            lots = units_to_lots(order.units, spec)
        except VolumeError as exc:
            raise BrokerRejected(R.INVALID_VOLUME, str(exc), INVALID_VOLUME) from exc
        if abs(lots - order.lots) > 1e-12:
            raise BrokerRejected(
                R.INVALID_VOLUME, f"{order.lots} lots != {order.units} units", INVALID_VOLUME
            )
        quote = self.market.quote(order.symbol, t)
        assert quote is not None
        price = quote.ask if order.direction is Direction.BUY else quote.bid
        if order.deviation_points is not None:
            moved = abs(price - order.price) / spec.point
            if moved > order.deviation_points + 1e-6:
                raise BrokerRejected(
                    R.REQUOTE,
                    f"price moved {moved:.0f} points, deviation {order.deviation_points}",
                    REQUOTE,
                )
        needed = self.margin_required(order.symbol, order.units, t)
        if needed > self.account(t).free_margin:
            raise BrokerRejected(
                R.INSUFFICIENT_MARGIN, f"margin {needed:.2f} exceeds free margin", NO_MONEY
            )
        cap = self.config.max_fill_units
        if order.fill_policy is FillPolicy.FOK and cap is not None and order.units > cap:
            raise BrokerRejected(
                R.INSUFFICIENT_LIQUIDITY, f"{cap} units available, FOK needs {order.units}", REJECT
            )
        ledger_order = self._new_order(order, t)
        if self.config.fill_delay_seconds == 0.0:
            self._match(ledger_order, t)
        return ledger_order.report()

    def _match(self, ledger_order: LedgerOrder, t: float) -> None:
        """Fill at the quote prevailing at t, as far as liquidity goes; IOC drops the rest."""
        quote = self.market.quote(ledger_order.symbol, t)
        assert quote is not None
        price = quote.ask if ledger_order.direction is Direction.BUY else quote.bid
        cap = self.config.max_fill_units
        units = ledger_order.units if cap is None else min(cap, ledger_order.units)
        self._fill(ledger_order, units, price, t)
        ledger_order.state = BrokerOrderState.DONE

    def _settle(self, ledger_order: LedgerOrder, t: float) -> LedgerOrder:
        """A resting order fills once its delay has passed, when anyone next looks at it."""
        due = ledger_order.time + self.config.fill_delay_seconds
        if ledger_order.state is BrokerOrderState.WORKING and t >= due:
            self._match(ledger_order, t)
        return ledger_order

    def _check_tradable(self, spec: SymbolSpec, order: OrderRequest) -> None:
        mode, buy = spec.trade_mode, order.direction is Direction.BUY
        if mode is TradeMode.DISABLED:
            raise BrokerRejected(
                R.SYMBOL_NOT_TRADABLE, "trading disabled for the symbol", TRADE_DISABLED
            )
        if mode is TradeMode.LONG_ONLY and not buy:
            raise BrokerRejected(R.SYMBOL_NOT_TRADABLE, "symbol is long only", LONG_ONLY)
        if mode is TradeMode.SHORT_ONLY and buy:
            raise BrokerRejected(R.SYMBOL_NOT_TRADABLE, "symbol is short only", SHORT_ONLY)
        if mode is TradeMode.CLOSE_ONLY:
            held = self._positions.get(order.symbol, _Position()).units
            reduces = held != 0 and (held > 0) != buy and order.units <= abs(held)
            if not reduces:
                raise BrokerRejected(R.SYMBOL_NOT_TRADABLE, "symbol is close only", CLOSE_ONLY)

    def _new_order(self, order: OrderRequest, t: float) -> LedgerOrder:
        ticket = self._next_ticket
        self._next_ticket += 1
        ledger_order = LedgerOrder(
            ticket,
            order.client_order_id,
            order.symbol,
            order.direction,
            order.units,
            t,
            order.fill_policy,
            BrokerOrderState.WORKING,
        )
        self.orders[ticket] = ledger_order
        self._by_client_id[order.client_order_id] = ticket
        return ledger_order

    def _fill(self, ledger_order: LedgerOrder, units: int, price: float, t: float) -> None:
        deal = self._next_deal
        self._next_deal += 1
        ledger_order.fills.append(BrokerFill(str(deal), units, price, t))
        self._book(ledger_order.symbol, int(ledger_order.direction) * units, price, t)

    def _book(self, symbol: str, signed_units: int, price: float, t: float) -> None:
        """Net the fill into the symbol's position; realise P&L on the part that closes."""
        position = self._positions.setdefault(symbol, _Position())
        if position.units == 0 or (position.units > 0) == (signed_units > 0):
            total = position.units + signed_units
            position.average_price = (
                position.average_price * position.units + price * signed_units
            ) / total
            position.units = total
            return
        closing = min(abs(signed_units), abs(position.units))
        sign = 1 if position.units > 0 else -1
        realised = sign * closing * (price - position.average_price)
        self.balance += self._to_account(realised, symbol[3:], t)
        remaining = position.units + signed_units
        if remaining == 0 or (remaining > 0) == (position.units > 0):
            position.units = remaining
            if remaining == 0:
                position.average_price = 0.0
        else:  # the fill flipped the position: the rest opens at the fill price
            position.units, position.average_price = remaining, price

    def status(self, order_id: str, t: float) -> OrderReport:
        return self._settle(self._order(order_id), t).report()

    def find(self, client_order_id: str, t: float) -> OrderReport | None:
        ticket = self._by_client_id.get(client_order_id)
        return self._settle(self.orders[ticket], t).report() if ticket is not None else None

    def cancel(self, order_id: str, t: float) -> OrderReport:
        ledger_order = self._settle(self._order(order_id), t)
        if ledger_order.state is BrokerOrderState.WORKING:
            ledger_order.state = BrokerOrderState.CANCELLED
        return ledger_order.report()

    def _order(self, order_id: str) -> LedgerOrder:
        ticket = int(order_id) if order_id.isdigit() else -1
        if ticket not in self.orders:
            raise BrokerRejected(R.BROKER_REJECTED, f"no order {order_id}", INVALID_ORDER)
        return self.orders[ticket]

    # -- the ledger, for tests and invariants -------------------------------------------

    def orders_by_client_id(self) -> dict[str, list[LedgerOrder]]:
        grouped: dict[str, list[LedgerOrder]] = {}
        for ledger_order in self.orders.values():
            grouped.setdefault(ledger_order.client_order_id, []).append(ledger_order)
        return grouped

    def ledger_rows(self) -> list[tuple[int, str, str, int, int, float, str]]:
        """Every order and deal as plain rows: what a byte-for-byte comparison reads."""
        rows = []
        for ticket, o in sorted(self.orders.items()):
            for fill in o.fills:
                rows.append(
                    (
                        ticket,
                        o.client_order_id,
                        o.symbol,
                        int(o.direction),
                        fill.units,
                        fill.price,
                        fill.fill_id,
                    )
                )
        return rows
