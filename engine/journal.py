"""When a flow's audit records are written: together, at its durability points.

The write-ahead rule (Principle 3) asks that what an execution did be durable before the
engine waits on anything outside its process — above all before an order leaves. It does
not ask for a commit per record: the records a flow yields between two such points are
written in one transaction, all of them or none. Both drivers keep their records here, so
the rule is the same in virtual time and on the wall clock.

A durability point is a remote broker call (it may hang, be lost, or place an order), a
sleep (the engine waits), and the end of the flow. Local calls (symbol, quote, account,
margin) read the terminal's own state and are not points.

Not every point needs the disk. What precedes a call that acts at the broker (an order, a
cancel, a stop change) and everything written before an order may be out are durable
before the engine goes on: they are what no one else knows. Once an order may be out,
what the engine writes at other points (a sleep, a poll, the end of the flow) records what
the broker already did and keeps on record itself; the store may write it without waiting
for the disk (`durable=False`): a crash of the process cannot lose it, a power cut can, and
then recovery finds the execution open, as its last durable record left it, and settles
it from the broker's own records. A filled market order waits for one fsync, not two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.core.effects import BrokerCall, Effect, Record, Sleep
from engine.core.events import ExecutionEvent
from engine.core.lifecycle import Execution

# Writes one group of records; the flags say whether an order may already be out, and
# whether the group must be on disk before the engine goes on; last, the execution as the
# group leaves it, when the flow said (its fold, for the store to take).
Recorder = Callable[[Sequence[ExecutionEvent], bool, bool, "Execution | None"], None]


class Journal:
    """One flow's records not yet written, and whether its order may be at the broker."""

    __slots__ = ("_folded", "_pending", "_write", "order_out")

    def __init__(self, write: Recorder, order_out: bool = False) -> None:
        self._write = write
        self._pending: list[ExecutionEvent] = []
        self._folded: Execution | None = None
        # Set as a call that acts (an order, first) is carried out: from then on a refused
        # write must not stop the execution (the order exists), only be kept for later.
        self.order_out = order_out

    def take(self, effect: Effect) -> bool:
        """Keep a Record (True: nothing more to do); before any other effect that is a
        durability point, write what is kept (False: the driver carries the effect out)."""
        if isinstance(effect, Record):
            self._pending.append(effect.event)
            self._folded = effect.execution
            return True
        if isinstance(effect, Sleep) or (isinstance(effect, BrokerCall) and effect.remote):
            acts = isinstance(effect, BrokerCall) and effect.acts
            self.flush(durable=acts)
            # An order, a cancel, a stop change: the broker may have it from now on.
            if acts:
                self.order_out = True
        return False

    def flush(self, durable: bool = False) -> None:
        """Write what is kept, on disk before returning if `durable` or while no order may
        be out; a store error propagates (see ExecutionEngine.record)."""
        if self._pending:
            pending, self._pending = self._pending, []
            self._write(pending, self.order_out, durable or not self.order_out, self._folded)
