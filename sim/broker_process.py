"""The simulated broker in a process of its own, so an engine process can die and restart
against the same broker — as a real terminal outlives the strategy that talks to it.

`serve(...)` runs a Venue behind a local `multiprocessing.connection` listener;
`VenueProxy` forwards the venue's methods to it, so `SimulatedBroker(VenueProxy(...), wire)`
is the broker port over the remote venue. Both sides read one shared clock,
`engine.clock.WallClock(start, origin)`: crash chaos agrees on `origin` on the command line;
paper trading asks the venue process (`about`), which keeps it for as long as it lives, so
that a restarted server continues on the venue's clock rather than going back in time. The
caller builds the venue to serve.

The address is a TCP (host, port) or a Unix socket path. The wire carries pickles, and the
authentication key is no secret: listen on loopback or, better, on a socket in a directory
only the operator can enter.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

from sim.venue import Venue

AUTHKEY = b"arbitrex-sim-broker"
_ALLOWED = {
    "spec",
    "quote",
    "feed_quote",
    "held_until",
    "last_look_refusal",
    "margin_required",
    "account_state",
    "place",
    "status",
    "find",
    "cancel",
    "ledger_orders",
    "positions",
    "set_protection",
    "exits",
}
Address = tuple[str, int] | str


def _stop_now() -> None:
    """The venue's state is in memory and nothing is written: ending the process at once is
    a complete shutdown (the accepting thread cannot be woken portably)."""
    os._exit(0)


def serve(
    address: Address,
    venue: Venue,
    about: dict[str, Any] | None = None,
    on_shutdown: Callable[[], None] = _stop_now,
) -> None:
    """Serve one venue until killed or asked to `shutdown`; every request is answered under
    one lock. `about` answers the `about` request (the clock's anchor, the seed, ...)."""
    lock = threading.Lock()
    facts = dict(about or {}, pid=os.getpid())
    with Listener(address, authkey=AUTHKEY) as listener:
        while True:
            connection = listener.accept()
            threading.Thread(
                target=_answer, args=(connection, venue, lock, facts, on_shutdown), daemon=True
            ).start()


def _answer(
    connection: Connection,
    venue: Venue,
    lock: threading.Lock,
    about: dict[str, Any],
    on_shutdown: Callable[[], None],
) -> None:
    with connection:
        while True:
            try:
                method, args = connection.recv()
            except (EOFError, OSError):
                return
            if method == "about":
                connection.send((True, about))
                continue
            if method == "shutdown":
                with lock:  # after the request being answered, never in its middle
                    connection.send((True, None))
                    on_shutdown()
                return
            if method not in _ALLOWED:
                connection.send((False, ValueError(f"no venue method {method!r}")))
                continue
            with lock:
                try:
                    outcome = (True, getattr(venue, method)(*args))
                except Exception as error:  # the caller re-raises it: rejections are answers
                    outcome = (False, error)
            connection.send(outcome)


class VenueProxy:
    """The venue's methods, called over the wire; a rejection comes back as itself."""

    def __init__(self, address: Address) -> None:
        self._connection = Client(address, authkey=AUTHKEY)
        self._lock = threading.Lock()

    def about(self) -> dict[str, Any]:
        """What the venue process says of itself: its pid, and what it was started with."""
        about: dict[str, Any] = self._call("about")
        return about

    def shutdown(self) -> None:
        """Ask the venue process to end (its ledger goes with it)."""
        self._call("shutdown")
        self.close()

    def close(self) -> None:
        self._connection.close()

    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            self._connection.send((method, args))
            ok, value = self._connection.recv()
        if not ok:
            raise value
        return value

    def __getattr__(self, method: str) -> Any:
        if method not in _ALLOWED:
            raise AttributeError(method)
        return lambda *args: self._call(method, *args)
