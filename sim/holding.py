"""A synchronous broker call that blocks through a server's hold, in virtual time.

MT5's order_send blocks until the trade server answers, and a dealer's last look keeps it
waiting for the window (`sim.wire.Deferred`). The SimPy driver carries a whole broker call
across the wire at the instant it reaches the server; MT5Broker's `place_order` is plain
synchronous code with order_send deep inside it, and it cannot yield to SimPy. So the call
runs on a thread of its own: where the server holds, the thread stops and hands the wait to
the driver, which waits it out as a SimPy timeout and hands control back. Exactly one of the
two threads runs at any moment, each starting the other and then blocking, so the run is as
deterministic as one thread would be.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Generic, TypeVar

from engine.core.ports import OutcomeUnknown

T = TypeVar("T")

_current = threading.local()  # .call: the HeldCall running on this thread, if any


class HeldCall(Generic[T]):
    """One call on its own thread, its holds waited by whoever iterates `steps`."""

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._to_call = threading.Semaphore(0)
        self._to_driver = threading.Semaphore(0)
        self._hold = 0.0
        self._done = False
        self._result: T | None = None
        self._error: BaseException | None = None

    def steps(self) -> Generator[float, None, T]:
        """Run the call, yielding each hold it meets in seconds; end with its answer."""
        # A daemon: a world abandoned mid-hold (a crash scenario's old engine) never
        # resumes its calls, and must not keep the interpreter alive.
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        while True:
            self._to_driver.acquire()
            if self._done:
                break
            yield self._hold
            self._to_call.release()
        thread.join()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # set when the call returned

    def _run(self) -> None:
        _current.call = self
        try:
            self._result = self._call()
        except BaseException as error:  # handed to the driver's thread, raised there
            self._error = error
        self._done = True
        self._to_driver.release()

    def _wait(self, seconds: float) -> None:
        self._hold = seconds
        self._to_driver.release()
        self._to_call.acquire()


def wait_out(seconds: float) -> None:
    """Block the call running on this thread for `seconds` of the driver's time.

    A call that no driver carries here (a request the server executes after its client
    gave up) has no one to wait for its answer: the client experiences what it did, an
    unknown outcome, and the server decides the held order on its own."""
    held: HeldCall[object] | None = getattr(_current, "call", None)
    if held is None:
        raise OutcomeUnknown("held by the server with no client waiting")
    held._wait(seconds)
