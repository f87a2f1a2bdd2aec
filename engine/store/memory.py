"""The in-memory store: for quick use and tests; everything is lost with the process."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from engine.core.events import ExecutionEvent, ExecutionRequested
from engine.store.base import ControlEvent, DuplicateExecution, ExecutionDatabase, one_execution


class InMemoryExecutionDatabase(ExecutionDatabase):
    def __init__(self) -> None:
        self._events: dict[str, list[ExecutionEvent]] = {}
        self._control: list[ControlEvent] = []
        self._lock = threading.Lock()

    def append_batch(self, events: Sequence[ExecutionEvent]) -> None:
        execution_id = one_execution(events)
        with self._lock:
            if isinstance(events[0], ExecutionRequested):
                if execution_id in self._events:
                    raise DuplicateExecution(execution_id)
                self._events[execution_id] = list(events)
            else:
                self._events[execution_id].extend(events)

    def append_control(self, event: ControlEvent) -> None:
        with self._lock:
            self._control.append(event)

    def control_events(self) -> Sequence[ControlEvent]:
        with self._lock:
            return tuple(self._control)

    def events(self, execution_id: str) -> Sequence[ExecutionEvent]:
        with self._lock:
            return tuple(self._events.get(execution_id, ()))

    def execution_ids(self) -> Iterable[str]:
        with self._lock:
            return list(self._events)
