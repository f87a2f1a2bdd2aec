"""The broker port: what the engine needs from any broker, and nothing more.

The engine owns this seam; the simulator's broker and the MT5 broker implement it. Errors
say whose fault a failure is and what is safe to do next: a rejection is final; a request
that never left may be resent; a request whose outcome is unknown must be reconciled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum

from engine.core.instruments import SymbolSpec
from engine.core.vocabulary import Direction, ExecutionRejectionReason
from engine.schemas import MarketSnapshot


class FillPolicy(StrEnum):
    IOC = "IOC"  # fill what is there now, cancel the rest: partial fills possible
    FOK = "FOK"  # all or nothing


class BrokerOrderState(StrEnum):
    WORKING = "WORKING"  # open at the broker; more fills may come
    DONE = "DONE"  # no more fills will come (fully filled, or the rest cancelled by policy)
    CANCELLED = "CANCELLED"  # cancelled before completing, with whatever fills it had


@dataclass(frozen=True, slots=True)
class AccountState:
    currency: str
    balance: float
    equity: float
    margin_used: float
    free_margin: float
    leverage: int


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


@dataclass(frozen=True, slots=True)
class BrokerFill:
    fill_id: str  # the broker's deal ticket: fills are de-duplicated by it
    units: int
    price: float
    time: float


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
        self, client_order_id: str, sent_at: float | None = None
    ) -> OrderReport | None:
        """Look an order up by our own id: the basis of reconciliation. `sent_at` (driver
        time) is when it was first sent: a broker need search no earlier history."""

    @abstractmethod
    def cancel_order(self, order_id: str) -> OrderReport: ...

    @abstractmethod
    def is_connected(self) -> bool: ...
