"""The one crossing of the wire between the engine's side and the broker's trade server.

`Network` (sim/network.py) plans a delivery: latency per leg and its fate. `Wire.crossing`
carries one remote call across it as a generator that yields the waits: send, the broker
acts at the instant the request arrives (or never), the reply travels back (or is lost),
and the client ends with the broker's answer or the error it experienced. Whoever owns the
clock runs the waits:
- the SimPy driver yields each as a SimPy timeout, around the whole broker call, so
  thousands of executions cross the wire concurrently in virtual time;
- a broker or the MT5 emulator called by a blocking driver runs them with its clock's
  `sleep` (`Wire.call`): paper trading on the wall clock, tests on a SimPy clock.

This is the only place that decides whether a call meets the network or is answered at
once: a wire with no network answers at once, and a wire the SimPy driver carries
(`carried_by_driver`) lets the broker's own calls through, since the driver already
crossed it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Generic, TypeVar

from engine.clock import SchedulingClock
from engine.core.ports import BrokerError, RequestNotSent
from engine.driving import run_blocking
from sim.holding import HeldCall, wait_out
from sim.network import FaultKind, Network

T = TypeVar("T")

Crossing = Generator[float, None, T]


@dataclass(frozen=True, slots=True)
class Deferred(Generic[T]):
    """An answer the server gives only `seconds` after the request arrived (a dealer's
    last look): the reply leaves then, with what `then` answers at that instant. MT5's
    order_send blocks until the server decides, so the client waits out the window."""

    seconds: float
    then: Callable[[], T]


def _after_hold(held: Deferred[T]) -> Crossing[T]:
    """The server's answer once the hold it announced has passed."""
    yield held.seconds
    return held.then()


class Wire:
    def __init__(
        self,
        network: Network | None,
        clock: SchedulingClock,
        *,
        carried_by_driver: bool = False,
        holds_inside: bool = False,
    ) -> None:
        """`holds_inside`: a call carried across this wire may meet a server's hold deep
        inside synchronous code (MT5Broker's order_send, before a last look): each call
        that acts then runs on a thread of its own that can block (`sim.holding`)."""
        self.network = network
        self.clock = clock
        self.carried_by_driver = carried_by_driver
        self.holds_inside = holds_inside

    def fault(self) -> FaultKind | None:
        """The fault on the wire now, if any."""
        return self.network.fault_at(self.clock.now()) if self.network is not None else None

    def ensure_connected(self) -> None:
        """A read of the terminal's own state needs it to be online: nothing is sent."""
        if self.fault() is FaultKind.DISCONNECT:
            raise RequestNotSent("terminal disconnected from the broker")

    def crossing(self, call: Callable[[], T], timeout: float, acts: bool = True) -> Crossing[T]:
        """Carry `call` to the broker and its answer back, yielding each wait in seconds.

        Ends with the broker's answer, or raises what the client experiences instead: the
        broker's own BrokerError, or the network's (refused: RequestNotSent, nothing sent;
        lost either way or slower than `timeout`: OutcomeUnknown, the call may have run).
        A call that `acts` at the server (an order, a cancel) may be executed late.
        """
        if self.network is None:
            return (yield from self._answer(call, acts))
        schedule = self.network.plan(self.clock.now()).schedule(timeout)
        # A zero-length leg is no wait at all (time.sleep(0) still costs a system call,
        # and a SimPy timeout would reorder events).
        if schedule.before:
            yield schedule.before
        result: T | None = None
        answer: BrokerError | None = None
        late = (
            self.network.late_by() if acts and schedule.reaches_broker and schedule.error else None
        )
        if late is not None:
            # The client will time out; the server executes the request later regardless.
            self.clock.call_later(late, lambda: _unheard(call))
        elif schedule.reaches_broker:
            try:
                result = yield from self._answer(call, acts)
            except BrokerError as error:
                answer = error
        if schedule.after:
            yield schedule.after
        failure = schedule.error or answer
        if failure is not None:
            raise failure
        return result  # type: ignore[return-value]  # reached the broker, which answered

    def _answer(self, call: Callable[[], T], acts: bool) -> Crossing[T]:
        """The server's answer to a call that reached it, after any hold it announced."""
        if acts and self.holds_inside:
            answered = yield from HeldCall(call).steps()
        else:
            answered = call()
        # Checked by type, not isinstance: one comparison on every remote call.
        if type(answered) is Deferred:
            return (yield from _after_hold(answered))
        return answered

    def call(self, call: Callable[[], T], timeout: float, acts: bool = True) -> T:
        """Cross the wire blocking on this wire's clock (or not at all, if the SimPy driver
        carries the crossing around this call: a hold the server announces deep inside it
        then blocks the call's own thread while the driver waits it out)."""
        if self.carried_by_driver:
            answered = call()
            if type(answered) is Deferred and self.holds_inside:
                wait_out(answered.seconds)
                return answered.then()
            return answered  # a held answer the driver's own crossing waits out
        return run_blocking(self.crossing(call, timeout, acts), self.clock.sleep)


def _unheard(call: Callable[[], object]) -> None:
    """A request executed after its client gave up: whatever the server answers, nobody
    hears it."""
    with contextlib.suppress(BrokerError):
        call()
