"""What must hold after every run, whatever the faults: checked against the broker's own
ledger, not against what the engine believes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby

from pydantic import BaseModel, ConfigDict

from engine.core.events import ValidationCompleted
from engine.core.ids import client_order_id_for, execution_id_of_tag
from engine.core.lifecycle import Execution
from engine.core.ports import Position
from engine.schemas import DecisionStatus
from engine.store import ExecutionDatabase, verify_audit_chain
from sim.venue import LedgerOrder

MAX_EXAMPLES = 5


class Violation(BaseModel):
    model_config = ConfigDict(frozen=True)

    invariant: str
    detail: str


@dataclass(frozen=True)
class Evidence:
    """What a run left behind, besides its cases: the audit store, the market's hours, the
    halts."""

    database: ExecutionDatabase
    is_open: Callable[[float], bool]
    halts: list[tuple[float, float]]
    # The broker's open positions when the flow ended, by the tag of the execution that
    # opened them (before any close at the end): what protection they really carried.
    positions_at_end_of_flow: Mapping[str, Sequence[Position]] = field(default_factory=dict)
    # The broker's open positions once the run is over, and whether it was to close them all.
    positions_left: Sequence[Position] = ()
    flatten_at_end: bool = False


def parent_tag(client_order_id: str) -> str:
    """The tag of the execution an order belongs to: a child order's tag (the execution's,
    then C and a number) leads back to its parent's; a tag not ours is its own."""
    if execution_id_of_tag(client_order_id) is None:
        return client_order_id
    return client_order_id[:22]


def positions_by_tag(positions: Iterable[Position]) -> dict[str, list[Position]]:
    """Open positions grouped by the tag of the execution whose order opened them."""
    grouped: dict[str, list[Position]] = {}
    for position in positions:
        grouped.setdefault(parent_tag(position.client_order_id), []).append(position)
    return grouped


@dataclass(frozen=True, slots=True)
class Case:
    """One execution's tag: the execution the audit store holds for it (None if none) and
    the orders the broker's ledger holds under it and its child orders' tags, by client
    order id then ticket. Orders the server created (a stop-loss or take-profit that
    triggered) are no one's case: they carry MT5's "[sl ...]" comment, never our tag."""

    client_order_id: str
    execution: Execution | None
    orders: list[LedgerOrder]


def cases(
    executions: Iterable[Execution], orders_by_client: Iterable[list[LedgerOrder]]
) -> Iterator[Case]:
    """Executions and the broker's orders joined on client order id, one pair at a time.

    Both come in client order id order; an execution's client order id is a prefix and its
    id's tail, so execution id order is that order, and a child order's tag sorts right
    after its parent's. Nothing is gathered: a million orders are checked in the memory of
    one (and an execution's child orders)."""
    executions, ledger = iter(executions), _by_parent(orders_by_client)
    execution, orders = next(executions, None), next(ledger, None)
    last: str | None = None
    while execution is not None or orders is not None:
        mine = client_order_id_for(execution.execution_id) if execution else None
        theirs = parent_tag(orders[0].client_order_id) if orders else None
        client = min(c for c in (mine, theirs) if c is not None)
        if last is not None and client <= last:
            raise ValueError(f"cases out of client order id order: {client} after {last}")
        last = client
        yield Case(
            client,
            execution if mine == client else None,
            orders if orders is not None and theirs == client else [],
        )
        if mine == client:
            execution = next(executions, None)
        if theirs == client:
            orders = next(ledger, None)


def _by_parent(groups: Iterable[list[LedgerOrder]]) -> Iterator[list[LedgerOrder]]:
    """The ledger's groups by client order id, merged by parent tag, without the server's.

    A group out of order is refused, as `cases` refuses one: merging it would hide it."""
    merged: list[LedgerOrder] = []
    last: str | None = None
    for group in groups:
        ours = [order for order in group if order.reason is None]
        if not ours:
            continue
        client = ours[0].client_order_id
        if last is not None and client <= last:
            raise ValueError(f"cases out of client order id order: {client} after {last}")
        last = client
        if merged and parent_tag(merged[0].client_order_id) != parent_tag(client):
            yield merged
            merged = []
        merged = merged + ours
    if merged:
        yield merged


def orders_by_client(orders: Iterable[LedgerOrder]) -> list[list[LedgerOrder]]:
    """A ledger read whole (a remote broker's, say) grouped as `cases` reads it."""
    ordered = sorted(orders, key=lambda order: (order.client_order_id, order.ticket))
    return [list(group) for _, group in groupby(ordered, key=lambda o: o.client_order_id)]


CaseCheck = Callable[[Case, Evidence], Iterable[str]]


def _no_duplicate_broker_orders(case, run):
    # Per tag: a parent and its children are one case, but each tag goes out once.
    for tag, group in groupby(case.orders, key=lambda o: o.client_order_id):
        tickets = [o.ticket for o in group]
        if len(tickets) > 1:
            yield f"{tag}: {len(tickets)} broker orders {tickets}"


def _broker_orders_map_to_executions(case, run):
    e, orders = case.execution, case.orders
    if orders and e is None:
        yield f"broker order {orders[0].ticket} ({case.client_order_id}) belongs to no execution"
    elif orders and e is not None:
        filled = sum(f.units for o in orders for f in o.fills)
        if filled != e.executed_units:
            yield f"{e.execution_id}: broker filled {filled}, engine recorded {e.executed_units}"
        tickets = [o.ticket for o in orders]
        held = {str(t) for t in tickets}
        if e.broker_order_id not in held:
            yield f"{e.execution_id}: engine holds order {e.broker_order_id}, broker has {tickets}"
        unknown = [order_id for order_id in e.order_ids if order_id not in held]
        if unknown:
            yield f"{e.execution_id}: engine holds orders {unknown} the broker never had"
    elif e is not None and e.broker_order_id is not None:
        yield f"{e.execution_id}: engine holds order {e.broker_order_id} the broker never had"


def _every_execution_terminal(case, run):
    e = case.execution
    if e is not None and not e.is_terminal:
        yield f"{e.execution_id} ended {e.status.value if e.status else 'unrecorded'}"


def _no_order_sent_while_halted(case, run):
    e = case.execution
    if e is None or not run.halts:  # without a halt there is nothing to read for
        return
    for event in run.database.events(e.execution_id):
        if isinstance(event, ValidationCompleted) and any(a <= event.at < b for a, b in run.halts):
            yield f"{e.execution_id} passed validation at {event.at:.3f}, inside a halt"


def _no_fill_while_closed(case, run):
    for order in case.orders:
        for fill in order.fills:
            if not run.is_open(fill.time):
                yield f"deal {fill.fill_id} (order {order.ticket}) at {fill.time:.3f}: closed"


def _executed_never_exceeds_intended(case, run):
    """Children included: what the broker filled for an execution and all its child orders
    together, never above what upstream intended; nor any order above its own size."""
    e = case.execution
    if e is not None and e.request:
        intended = e.request.intended_units
        if e.executed_units > intended:
            yield f"{e.execution_id}: {e.executed_units} executed of {intended}"
        filled = sum(f.units for o in case.orders for f in o.fills)
        if filled > intended:
            yield (
                f"{e.execution_id}: broker filled {filled} of {intended} over "
                f"{len(case.orders)} orders (children included)"
            )
    for order in case.orders:
        filled = sum(f.units for f in order.fills)
        if filled > order.units:
            yield f"broker order {order.ticket}: {filled} filled of {order.units}"


def _no_position_left_unprotected(case, run):
    """A position opened for a decision with a stop-loss or take-profit carries them at the
    broker: the engine recorded no failure, and the broker's own position (when the flow
    ended, before any close) has each level upstream asked for."""
    e = case.execution
    if e is None or e.request is None or not e.request.protected:
        return
    for position, why in e.unprotected.items():
        yield f"{e.execution_id}: position {position} left unprotected: {why}"
    wants_sl = e.request.stop_loss is not None or e.request.stop_loss_pips is not None
    wants_tp = e.request.take_profit is not None or e.request.take_profit_pips is not None
    for p in run.positions_at_end_of_flow.get(case.client_order_id, ()):
        missing = [
            name
            for name, wanted, level in (
                ("stop-loss", wants_sl, p.stop_loss),
                ("take-profit", wants_tp, p.take_profit),
            )
            if wanted and level is None
        ]
        if missing:
            lacking = ", ".join(missing)
            yield f"{e.execution_id}: position {p.position_id} at the broker has no {lacking}"


def _no_order_for_unapproved_decision(case, run):
    e = case.execution
    if e is None or e.request is None or not case.orders:
        return
    status = e.request.decision.get("decision", {}).get("status")
    if status != DecisionStatus.APPROVED.value:
        yield f"{e.execution_id}: decision {status} reached the broker"


def _every_position_ends_closed(run):
    """With flatten_at_end, no position our orders opened is still open at the broker."""
    if not run.flatten_at_end:
        return
    for p in run.positions_left:
        if execution_id_of_tag(p.client_order_id) is not None:
            yield (
                f"position {p.position_id} ({p.symbol} {p.units} units, opened by "
                f"{p.client_order_id}) still open"
            )


def _audit_chain_verifies(run):
    result = verify_audit_chain(run.database)
    if not result.ok:
        yield f"record {result.first_bad_seq}: {result.problem}"


CASE_CHECKS: dict[str, CaseCheck] = {
    "no_duplicate_broker_orders": _no_duplicate_broker_orders,
    "broker_orders_map_to_executions": _broker_orders_map_to_executions,
    "every_execution_terminal": _every_execution_terminal,
    "no_order_sent_while_halted": _no_order_sent_while_halted,
    "no_fill_while_closed": _no_fill_while_closed,
    "executed_never_exceeds_intended": _executed_never_exceeds_intended,
    "no_order_for_unapproved_decision": _no_order_for_unapproved_decision,
    "no_position_left_unprotected": _no_position_left_unprotected,
}
RUN_CHECKS: dict[str, Callable[[Evidence], Iterable[str]]] = {
    "audit_chain_verifies": _audit_chain_verifies,
    "every_position_ends_closed": _every_position_ends_closed,
}


class InvariantChecks:
    """The named invariants, checked case by case as a run's cases stream past; each keeps
    its first few problems and a count, never the cases."""

    def __init__(self, names: Iterable[str], run: Evidence) -> None:
        self._names = tuple(names)
        unknown = [name for name in self._names if name not in CASE_CHECKS | RUN_CHECKS]
        if unknown:
            raise ValueError(f"no such invariant: {', '.join(unknown)}")
        self._run = run
        self._per_case = [(name, CASE_CHECKS[name]) for name in self._names if name in CASE_CHECKS]
        self._examples: dict[str, list[str]] = {name: [] for name in self._names}
        self._counts: Counter[str] = Counter()

    def see(self, case: Case) -> None:
        for name, check in self._per_case:
            for detail in check(case, self._run):
                self._found(name, detail)

    def violations(self) -> list[Violation]:
        for name in self._names:
            if name in RUN_CHECKS:
                for detail in RUN_CHECKS[name](self._run):
                    self._found(name, detail)
        violations = []
        for name in self._names:
            violations += [Violation(invariant=name, detail=d) for d in self._examples[name]]
            more = self._counts[name] - len(self._examples[name])
            if more:
                violations.append(Violation(invariant=name, detail=f"... and {more} more"))
        return violations

    def _found(self, name: str, detail: str) -> None:
        self._counts[name] += 1
        if len(self._examples[name]) < MAX_EXAMPLES:
            self._examples[name].append(detail)


def check_invariants(
    names: Iterable[str], run_cases: Iterable[Case], run: Evidence
) -> list[Violation]:
    checks = InvariantChecks(names, run)
    for case in run_cases:
        checks.see(case)
    return checks.violations()
