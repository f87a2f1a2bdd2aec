"""The call protocol every function of the module follows: no answer without IPC with the
terminal, a refusal explained by `last_error()`, and arguments of strict types."""

from __future__ import annotations

from typing import Any

from brokers import mt5_codes as codes
from sim.network import FaultKind
from sim.wire import Wire


class Session:
    """A program's IPC session with the terminal: whether it is up, its timeout, and the last
    call's error, which every call sets (to success, or to why it answered None)."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.error: tuple[int, str] = (codes.RES_S_OK, "Success")
        self.initialized = False
        self.ipc_timeout = 60.0

    def ok(self, value: Any) -> Any:
        self.error = (codes.RES_S_OK, "Success")
        return value

    def fail(self, code: int, description: str) -> None:
        self.error = (code, description)

    def ipc_down(self) -> bool:
        """No IPC with the terminal: not initialized, or the terminal is offline."""
        if not self.initialized or self.wire.fault() is FaultKind.DISCONNECT:
            self.fail(codes.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
            return True
        return False

    def invalid(self, name: str) -> None:
        self.fail(codes.RES_E_INVALID_PARAMS, f'Invalid "{name}" argument')


def typed(value: Any, kind: type) -> bool:
    """Strict types, as the module's argument parsing: a bool is no number, an int no float."""
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, float)
    return isinstance(value, kind)
