"""The broker port: what the engine needs from any broker, and nothing more.

The engine owns this seam; the simulator's broker and the MT5 broker implement it. Errors
say whose fault a failure is and what is safe to do next: a rejection is final; a request
that never left may be resent; a request whose outcome is unknown must be reconciled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from engine.core.instruments import SymbolSpec
from engine.core.vocabulary import Direction, ExecutionRejectionReason, ExitReason, OrderType
from engine.schemas import MarketSnapshot


class FillPolicy(StrEnum):
    IOC = "IOC"  # fill what is there now, cancel the rest: partial fills possible
    FOK = "FOK"  # all or nothing


class BrokerOrderState(StrEnum):
    WORKING = "WORKING"  # open at the broker; more fills may come
    DONE = "DONE"  # no more fills will come (fully filled, or the rest cancelled by policy)
    CANCELLED = "CANCELLED"  # cancelled before completing, with whatever fills it had
    EXPIRED = "EXPIRED"  # a resting order the broker removed at its expiry, with its fills


@dataclass(frozen=True, slots=True)
class AccountState:
    currency: str
    balance: float
    equity: float
    margin_used: float
    free_margin: float
    leverage: int
    # Hedging accounts hold one position per opening order, and an opposite order opens a
    # second one unless it names the position it closes; netting accounts hold one per symbol.
    hedging: bool = False


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    direction: Direction
    units: int
    lots: float
    price: float  # the quoted side the engine expects to trade at
    deviation_points: int | None
    fill_policy: FillPolicy = FillPolicy.IOC
    order_type: OrderType = OrderType.MARKET
    # LIMIT: a buy fills at or below it, a sell at or above (`price` is then the same).
    limit_price: float | None = None
    # LIMIT: good till this driver time (MT5 ORDER_TIME_SPECIFIED): the broker removes it.
    expires_at: float | None = None
    # The position this order closes, in whole or in part, instead of opening one (MT5
    # `position`: a ticket). On a netting account an order without it nets against the
    # symbol's position; `reduce_only` then forbids it to go through zero.
    position_id: str | None = None
    reduce_only: bool = False
    # Protection attached to the order, where the venue allows it (prices).
    stop_loss: float | None = None
    take_profit: float | None = None


@dataclass(frozen=True, slots=True)
class BrokerFill:
    fill_id: str  # the broker's deal ticket: fills are de-duplicated by it
    units: int
    price: float
    time: float
    position_id: str = ""  # the position the deal opened, added to or closed


@dataclass(frozen=True, slots=True)
class Position:
    """An open position at the broker."""

    position_id: str  # what an order or a stop change names it by (MT5: its ticket)
    symbol: str
    direction: Direction
    units: int
    open_price: float
    opened_at: float  # driver time
    stop_loss: float | None
    take_profit: float | None
    client_order_id: str  # the tag of the order that opened it


@dataclass(frozen=True, slots=True)
class PositionExit:
    """A deal that closed (part of) a position opened by one of our orders."""

    deal_id: str
    position_id: str
    client_order_id: str  # the tag of the order that opened the position
    reason: ExitReason
    symbol: str
    direction: Direction  # the closing deal's side: SELL closes a long
    units: int
    price: float
    level: float | None  # the stop-loss or take-profit that triggered it
    time: float  # driver time


@dataclass(frozen=True, slots=True)
class OrderReport:
    order_id: str
    client_order_id: str
    state: BrokerOrderState
    requested_units: int
    fills: tuple[BrokerFill, ...] = ()

    @property
    def filled_units(self) -> int:
        return sum(fill.units for fill in self.fills)


class BrokerError(Exception):
    """Base of every failure a broker call can end in.

    A driver throws it into the flow that made the call, stamped with `at`: the driver's
    time when the failure was seen (the flow's clock moves on to it).
    """

    at: float = 0.0


class BrokerRejected(BrokerError):
    """The broker answered and refused: final, never retried."""

    def __init__(
        self, reason: ExecutionRejectionReason, detail: str, code: int | None = None
    ) -> None:
        super().__init__(f"{reason.value}: {detail}" + (f" (code {code})" if code else ""))
        self.reason = reason
        self.detail = detail
        self.code = code

    def __reduce__(self) -> tuple[type[BrokerRejected], tuple[object, ...]]:
        # A rejection crosses process boundaries (a broker in its own process) intact.
        return (BrokerRejected, (self.reason, self.detail, self.code))


class RequestNotSent(BrokerError):
    """Nothing reached the broker (refused connection, broker down): safe to resend."""


class OutcomeUnknown(BrokerError):
    """The request may have reached the broker but no reply came: reconcile before resending."""


class BrokerInterface(ABC):
    """Implemented in `brokers/`; every call may raise a BrokerError."""

    @abstractmethod
    def symbol_spec(self, symbol: str) -> SymbolSpec | None:
        """The symbol's trading specification, or None if the broker does not list it."""

    @abstractmethod
    def market_snapshot(self, symbol: str) -> MarketSnapshot | None:
        """The latest quote, or None when the broker has none."""

    @abstractmethod
    def account(self) -> AccountState: ...

    @abstractmethod
    def margin_required(
        self, symbol: str, direction: Direction, lots: float, price: float
    ) -> float:
        """Margin, in the account currency, that opening this order would use."""

    @abstractmethod
    def place_order(self, order: OrderRequest) -> OrderReport: ...

    @abstractmethod
    def order_status(self, order_id: str) -> OrderReport: ...

    @abstractmethod
    def find_order(
        self,
        client_order_id: str,
        sent_at: float | None = None,
        known_order_ids: Sequence[str] = (),
    ) -> OrderReport | None:
        """Look an order up by our own id: the basis of reconciliation. `sent_at` (driver
        time) is when it was first sent: a broker need search no earlier history.
        `known_order_ids` are orders of the same execution the broker already named (a
        partial fill's parent, earlier child orders): a broker that matches tags by their
        first characters, as MT5 comments must be, would otherwise find the parent for its
        child, whose tag only adds a suffix."""

    @abstractmethod
    def cancel_order(self, order_id: str) -> OrderReport: ...

    @abstractmethod
    def positions(self, symbol: str | None = None) -> tuple[Position, ...]:
        """The account's open positions (of one symbol), oldest first."""

    @abstractmethod
    def set_protection(
        self, position_id: str, stop_loss: float | None, take_profit: float | None
    ) -> Position:
        """Set (None: remove) a position's stop-loss and take-profit (MT5 TRADE_ACTION_SLTP);
        a level closer to the market than the symbol's stops level is refused."""

    @abstractmethod
    def exits(self, since: float) -> tuple[PositionExit, ...]:
        """Deals since `since` (driver time) that closed positions our orders opened, by
        their stop-loss, take-profit, a stop-out or an order, in time order."""

    @abstractmethod
    def is_connected(self) -> bool: ...
