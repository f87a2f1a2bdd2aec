"""What every driver does for a flow, written once: the drivers differ only in how they wait.

`carry_out` takes a flow's effects one after another: records go to the flow's journal,
broker calls are performed (a remote one through the driver's carrier, if it has one),
and the flow is resumed with `(now, answer)` — or, as SimPy does with a failed event, the
BrokerError is thrown into it, stamped with the time it was seen. Every wait (a Sleep, a
crossing of the wire) is yielded, in seconds, to the driver that runs `carry_out`: the live
driver sleeps on its clock, the SimPy driver yields a timeout in virtual time.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Protocol, TypeVar

from engine.clock import Clock
from engine.core.effects import BrokerCall, Effect, Sleep
from engine.core.ports import BrokerError, BrokerInterface
from engine.journal import Journal

T = TypeVar("T")
H = TypeVar("H")

# Work a driver runs: yields the seconds to wait, returns its value.
Work = Generator[float, None, T]

# How a remote call reaches the broker when the driver itself carries the wire (the
# simulated network in virtual time): yields its waits, returns the answer or raises. The
# flag says whether the call acts at the server (an order, a cancel) or only reads.
Carrier = Callable[[Callable[[], Any], bool], Generator[float, None, Any]]


class Driver(Protocol[H]):
    """Runs work on its clock. `start` begins it and gives a handle: the value itself for
    a blocking driver, a SimPy process for the SimPy driver; `result` waits for a handle."""

    clock: Clock
    carrier: Carrier | None

    def start(self, work: Work[Any]) -> H: ...

    def result(self, handle: H) -> Any: ...


def carry_out(
    flow: Generator[Effect, tuple[float, Any], T],
    broker: BrokerInterface,
    journal: Journal,
    clock: Clock,
    carrier: Carrier | None = None,
) -> Work[T]:
    """Drive one flow to its end; its value (an execution flow's: the Execution)."""
    effect = next(flow)
    while True:
        answer: Any = None
        failure: BrokerError | None = None
        if journal.take(effect):
            pass
        elif isinstance(effect, Sleep):
            yield effect.seconds
        else:
            assert isinstance(effect, BrokerCall)
            try:
                if effect.remote and carrier is not None:
                    answer = yield from carrier(_bound(effect, broker), effect.acts)
                else:
                    answer = effect.perform(broker)
            except BrokerError as error:
                failure = error
        try:
            if failure is None:
                effect = flow.send((clock.now(), answer))
            else:
                failure.at = clock.now()
                effect = flow.throw(failure)
        except StopIteration as stop:
            journal.flush()
            return stop.value


def run_blocking(work: Work[T], sleep: Callable[[float], None]) -> T:
    """Run work to its end, waiting with a blocking sleep; its value, or its error."""
    try:
        wait = next(work)
        while True:
            sleep(wait)
            wait = work.send(None)
    except StopIteration as done:
        return done.value


def _bound(call: BrokerCall, broker: BrokerInterface) -> Callable[[], Any]:
    return lambda: call.perform(broker)
