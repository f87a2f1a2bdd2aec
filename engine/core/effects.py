"""The requests the core hands to its driver; the driver carries them out and replies.

The core never performs I/O itself: it yields one of these and is resumed with
`(now, result)`, or has the BrokerError the call raised thrown into it. Broker
calls know which port method they stand for, so every driver performs them the same way;
`remote` marks the ones that travel to the broker's trade server (and so meet latency and
network faults) rather than read the terminal's local state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from engine.core.events import ExecutionEvent
from engine.core.ports import BrokerInterface, OrderRequest
from engine.core.vocabulary import Direction

if TYPE_CHECKING:
    from engine.core.lifecycle import Execution


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Record:
    """Append an event to the audit trail; the driver makes it durable before going on.
    `execution` is the execution with the event applied: the store may take its fold
    rather than fold the event again (engine.store.sql)."""

    event: ExecutionEvent
    execution: Execution | None = None


class BrokerCall:
    __slots__ = ()
    remote: ClassVar[bool] = False
    acts: ClassVar[bool] = False  # changes something at the broker (not only reads)

    def perform(self, broker: BrokerInterface) -> Any:
        """Make the call; a failure raises its BrokerError."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class FetchSymbol(BrokerCall):
    symbol: str

    def perform(self, broker: BrokerInterface) -> Any:
        return broker.symbol_spec(self.symbol)


@dataclass(frozen=True, slots=True)
class FetchQuote(BrokerCall):
    symbol: str

    def perform(self, broker: BrokerInterface) -> Any:
        return broker.market_snapshot(self.symbol)


@dataclass(frozen=True, slots=True)
class FetchAccount(BrokerCall):
    def perform(self, broker: BrokerInterface) -> Any:
        return broker.account()


@dataclass(frozen=True, slots=True)
class FetchMargin(BrokerCall):
    symbol: str
    direction: Direction
    lots: float
    price: float

    def perform(self, broker: BrokerInterface) -> Any:
        return broker.margin_required(self.symbol, self.direction, self.lots, self.price)


@dataclass(frozen=True, slots=True)
class PlaceOrder(BrokerCall):
    remote: ClassVar[bool] = True
    acts: ClassVar[bool] = True
    order: OrderRequest

    def perform(self, broker: BrokerInterface) -> Any:
        return broker.place_order(self.order)


@dataclass(frozen=True, slots=True)
class QueryOrder(BrokerCall):
    remote: ClassVar[bool] = True
    order_id: str

    def perform(self, broker: BrokerInterface) -> Any:
        return broker.order_status(self.order_id)


@dataclass(frozen=True, slots=True)
class FindOrder(BrokerCall):
    remote: ClassVar[bool] = True
    client_order_id: str
    sent_at: float | None = None  # when the order was first sent, if it was
    # The execution's orders the broker already named: never the answer for a new tag.
    known_order_ids: tuple[str, ...] = ()

    def perform(self, broker: BrokerInterface) -> Any:
        return broker.find_order(self.client_order_id, self.sent_at, self.known_order_ids)


@dataclass(frozen=True, slots=True)
class CancelOrder(BrokerCall):
    remote: ClassVar[bool] = True
    acts: ClassVar[bool] = True
    order_id: str

    def perform(self, broker: BrokerInterface) -> Any:
        return broker.cancel_order(self.order_id)


@dataclass(frozen=True, slots=True)
class FetchPositions(BrokerCall):
    symbol: str | None = None

    def perform(self, broker: BrokerInterface) -> Any:
        return broker.positions(self.symbol)


@dataclass(frozen=True, slots=True)
class SetProtection(BrokerCall):
    remote: ClassVar[bool] = True
    acts: ClassVar[bool] = True
    position_id: str
    stop_loss: float | None
    take_profit: float | None

    def perform(self, broker: BrokerInterface) -> Any:
        return broker.set_protection(self.position_id, self.stop_loss, self.take_profit)


@dataclass(frozen=True, slots=True)
class FetchExits(BrokerCall):
    remote: ClassVar[bool] = True
    since: float

    def perform(self, broker: BrokerInterface) -> Any:
        return broker.exits(self.since)


Effect = Sleep | Record | BrokerCall
