"""The simulator's broker: the broker port over the simulated venue.

Without a sleep function it answers remote calls at the venue instantly, at its clock's
time: the SimPy driver then carries each remote call over the simulated network itself, in
virtual time. With a network and a sleep function it crosses that network on its own with
real waiting, which is how paper trading on the wall clock meets the very same latency and
faults. Either way, local reads (quotes, symbol, account) fail while the network says the
terminal is disconnected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.core.instruments import SymbolSpec
from engine.core.ports import (
    AccountState,
    BrokerError,
    BrokerInterface,
    BrokerRejected,
    OrderReport,
    OrderRequest,
    RequestNotSent,
)
from engine.schemas import Direction, ExecutionRejectionReason, MarketSnapshot
from sim.network import FaultKind, Network
from sim.venue import Venue


class SimulatedBroker(BrokerInterface):
    def __init__(
        self,
        venue: Venue,
        clock: Callable[[], float],
        network: Network | None = None,
        sleep: Callable[[float], None] | None = None,
        request_timeout: float = 5.0,
    ) -> None:
        if sleep is not None and network is None:
            raise ValueError("a sleep function carries a network's delays: give the network too")
        self.venue = venue
        self.clock = clock
        self.network = network
        self.sleep = sleep
        self.request_timeout = request_timeout

    def _remote(self, call: Callable[[float], Any]) -> Any:
        if self.sleep is None or self.network is None:
            return call(self.clock())
        schedule = self.network.plan(self.clock()).schedule(self.request_timeout)
        # A zero-latency leg is no wait at all (time.sleep(0) still costs a system call).
        if schedule.before:
            self.sleep(schedule.before)
        result: Any = None
        answer: BrokerError | None = None
        if schedule.reaches_broker:
            try:
                result = call(self.clock())
            except BrokerError as error:
                answer = error
        if schedule.after:
            self.sleep(schedule.after)
        failure = schedule.error or answer
        if failure is not None:
            raise failure
        return result

    def _local(self) -> float:
        """The time of a read from the terminal's own state, which needs a connection."""
        now = self.clock()
        if self.network is not None and self.network.fault_at(now) is FaultKind.DISCONNECT:
            raise RequestNotSent("terminal disconnected from the broker")
        return now

    def symbol_spec(self, symbol: str) -> SymbolSpec | None:
        self._local()
        return self.venue.spec(symbol)

    def market_snapshot(self, symbol: str) -> MarketSnapshot | None:
        return self.venue.quote(symbol, self._local())

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
        return self._remote(lambda t: self.venue.place(order, t))

    def order_status(self, order_id: str) -> OrderReport:
        return self._remote(lambda t: self.venue.status(order_id, t))

    def find_order(self, client_order_id: str) -> OrderReport | None:
        return self._remote(lambda t: self.venue.find(client_order_id, t))

    def cancel_order(self, order_id: str) -> OrderReport:
        return self._remote(lambda t: self.venue.cancel(order_id, t))

    def is_connected(self) -> bool:
        return self.network is None or self.network.fault_at(self.clock()) is None
