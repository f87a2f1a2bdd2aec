"""Virtual time for everything that runs in one thread with the emulator."""

from __future__ import annotations


class VirtualClock:
    """Time that moves only when someone sleeps: the live driver, the MT5 broker and the
    emulator in one thread, in virtual time — instant and deterministic."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        self.now += seconds
