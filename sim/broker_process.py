"""The simulated broker in a process of its own, so an engine process can die and restart
against the same broker — as a real terminal outlives the strategy that talks to it.

`serve(...)` runs a Venue behind a local `multiprocessing.connection` listener;
`VenueProxy` forwards the venue's methods to it, so `SimulatedBroker(VenueProxy(...), wire)`
is the broker port over the remote venue. Both sides read one shared clock,
`engine.clock.WallClock(start, origin)`, with `origin` agreed on the command line. The
caller builds the venue to serve.
"""

from __future__ import annotations

import threading
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
}


def serve(address: tuple[str, int], venue: Venue) -> None:
    """Serve one venue until killed; every request is answered under one lock."""
    lock = threading.Lock()
    with Listener(address, authkey=AUTHKEY) as listener:
        while True:
            connection = listener.accept()
            threading.Thread(target=_answer, args=(connection, venue, lock), daemon=True).start()


def _answer(connection: Connection, venue: Venue, lock: threading.Lock) -> None:
    with connection:
        while True:
            try:
                method, args = connection.recv()
            except (EOFError, OSError):
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

    def __init__(self, address: tuple[str, int]) -> None:
        self._connection = Client(address, authkey=AUTHKEY)
        self._lock = threading.Lock()

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
