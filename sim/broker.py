"""The simulator's broker: the broker port over the simulated venue.

Remote calls (place, status, find, cancel, set_protection, exits) cross its wire
(`sim.wire`) to the venue and meet the venue at the instant they arrive; reads of the
terminal's own state (quotes, symbol, account, positions) need the terminal to be online.
Who waits out the wire — this broker on its clock, or the SimPy driver around the call — is
the wire's business, not this one's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from brokers.mt5_codes import NO_CHANGES
from engine.core.instruments import SymbolSpec
from engine.core.ports import (
    AccountState,
    BrokerInterface,
    BrokerOrderState,
    BrokerRejected,
    OrderReport,
    OrderRequest,
    Position,
    PositionExit,
)
from engine.schemas import Direction, ExecutionRejectionReason, MarketSnapshot
from sim.venue import Venue
from sim.wire import Deferred, Wire

T = TypeVar("T")


class SimulatedBroker(BrokerInterface):
    def __init__(self, venue: Venue, wire: Wire, request_timeout: float = 5.0) -> None:
        self.venue = venue
        self.wire = wire
        self.request_timeout = request_timeout

    def _remote(self, call: Callable[[float], T], acts: bool = False) -> T:
        return self.wire.call(lambda: call(self.wire.clock.now()), self.request_timeout, acts)

    def _local(self) -> float:
        """The time of a read from the terminal's own state, which needs a connection."""
        self.wire.ensure_connected()
        return self.wire.clock.now()

    def symbol_spec(self, symbol: str) -> SymbolSpec | None:
        self._local()
        return self.venue.spec(symbol)

    def market_snapshot(self, symbol: str) -> MarketSnapshot | None:
        # The terminal's price feed: late by the broker's feed delay, if it has one.
        return self.venue.feed_quote(symbol, self._local())

    def account(self) -> AccountState:
        return self.venue.account_state(self._local())

    def margin_required(
        self, symbol: str, direction: Direction, lots: float, price: float
    ) -> float:
        now = self._local()
        spec = self.venue.spec(symbol)
        if spec is None:
            raise BrokerRejected(ExecutionRejectionReason.SYMBOL_NOT_TRADABLE, f"unknown {symbol}")
        return self.venue.margin_required(symbol, round(lots * spec.contract_size), now)

    def place_order(self, order: OrderRequest) -> OrderReport:
        return self._remote(lambda t: self._place(order, t), acts=True)

    def _place(self, order: OrderRequest, t: float) -> OrderReport:
        """The venue's answer; for an order it holds for a last look, the answer it gives
        when the window ends — the fill, or its rejection — which the wire waits for."""
        report = self.venue.place(order, t)
        if report.state is not BrokerOrderState.WORKING:
            return report
        due = self.venue.held_until(report.order_id)
        if due is None:
            return report
        return cast(OrderReport, Deferred(due - t, lambda: self._after_last_look(report.order_id)))

    def _after_last_look(self, order_id: str) -> OrderReport:
        now = self.wire.clock.now()
        refusal = self.venue.last_look_refusal(order_id, now)
        if refusal is not None:
            raise refusal
        return self.venue.status(order_id, now)

    def order_status(self, order_id: str) -> OrderReport:
        return self._remote(lambda t: self.venue.status(order_id, t))

    def find_order(
        self,
        client_order_id: str,
        sent_at: float | None = None,
        known_order_ids: Sequence[str] = (),
    ) -> OrderReport | None:
        # The venue indexes its orders by their whole client id: no window, and no other
        # order of the execution, can answer.
        return self._remote(lambda t: self.venue.find(client_order_id, t))

    def cancel_order(self, order_id: str) -> OrderReport:
        return self._remote(lambda t: self.venue.cancel(order_id, t), acts=True)

    def positions(self, symbol: str | None = None) -> tuple[Position, ...]:
        # The terminal's own list of positions: a local read, as symbol_spec.
        return self.venue.positions(self._local(), symbol)

    def set_protection(
        self, position_id: str, stop_loss: float | None, take_profit: float | None
    ) -> Position:
        def set_levels(t: float) -> Position:
            try:
                return self.venue.set_protection(position_id, stop_loss, take_profit, t)
            except BrokerRejected as refusal:
                if refusal.code != NO_CHANGES:
                    raise
                # 10025: the levels are already there, which is what was asked (MT5Broker
                # reads the code the same way).
                return next(p for p in self.venue.positions(t) if p.position_id == position_id)

        return self._remote(set_levels, acts=True)

    def exits(self, since: float) -> tuple[PositionExit, ...]:
        # The deal history lives at the server: a remote read.
        return self._remote(lambda t: self.venue.exits(since, t))

    def is_connected(self) -> bool:
        return self.wire.fault() is None
