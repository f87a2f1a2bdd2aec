"""What must hold after every run, whatever the faults: checked against the broker's own
ledger, not against what the engine believes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from engine.core.events import ValidationCompleted
from engine.core.lifecycle import Execution
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
    """What a run left behind: the broker's ledger, the audit store, the market's hours."""

    orders: list[LedgerOrder]
    database: ExecutionDatabase
    is_open: Callable[[float], bool]
    halts: list[tuple[float, float]]

    def orders_by_client_id(self) -> dict[str, list[LedgerOrder]]:
        grouped: dict[str, list[LedgerOrder]] = {}
        for order in self.orders:
            grouped.setdefault(order.client_order_id, []).append(order)
        return grouped


Check = Callable[[list[Execution], Evidence], Iterable[str]]


def _no_duplicate_broker_orders(executions, run):
    for client_id, orders in run.orders_by_client_id().items():
        if len(orders) > 1:
            yield f"{client_id}: {len(orders)} broker orders {[o.ticket for o in orders]}"


def _broker_orders_map_to_executions(executions, run):
    by_client = {e.request.client_order_id: e for e in executions if e.request}
    for client_id, orders in run.orders_by_client_id().items():
        execution = by_client.get(client_id)
        if execution is None:
            yield f"broker order {orders[0].ticket} ({client_id}) belongs to no execution"
            continue
        filled = sum(f.units for o in orders for f in o.fills)
        eid, recorded = execution.execution_id, execution.executed_units
        if filled != recorded:
            yield f"{eid}: broker filled {filled}, engine recorded {recorded}"
        tickets = [o.ticket for o in orders]
        if execution.broker_order_id not in {str(t) for t in tickets}:
            yield f"{eid}: engine holds order {execution.broker_order_id}, broker has {tickets}"
    ledger = run.orders_by_client_id()
    for e in executions:
        if e.broker_order_id is not None and e.request and e.request.client_order_id not in ledger:
            yield f"{e.execution_id}: engine holds order {e.broker_order_id} the broker never had"


def _every_execution_terminal(executions, run):
    for e in executions:
        if not e.is_terminal:
            yield f"{e.execution_id} ended {e.status.value if e.status else 'unrecorded'}"


def _audit_chain_verifies(executions, run):
    result = verify_audit_chain(run.database)
    if not result.ok:
        yield f"record {result.first_bad_seq}: {result.problem}"


def _no_order_sent_while_halted(executions, run):
    database = run.database
    for e in executions:
        for event in database.events(e.execution_id):
            if isinstance(event, ValidationCompleted) and any(
                a <= event.at < b for a, b in run.halts
            ):
                yield f"{e.execution_id} passed validation at {event.at:.3f}, inside a halt"


def _no_fill_while_closed(executions, run):
    for order in run.orders:
        for fill in order.fills:
            if not run.is_open(fill.time):
                yield f"deal {fill.fill_id} (order {order.ticket}) at {fill.time:.3f}: closed"


def _executed_never_exceeds_intended(executions, run):
    for e in executions:
        if e.request and e.executed_units > e.request.intended_units:
            yield f"{e.execution_id}: {e.executed_units} executed of {e.request.intended_units}"
    for order in run.orders:
        filled = sum(f.units for f in order.fills)
        if filled > order.units:
            yield f"broker order {order.ticket}: {filled} filled of {order.units}"


def _no_order_for_unapproved_decision(executions, run):
    ledger = run.orders_by_client_id()
    for e in executions:
        if e.request is None:
            continue
        status = e.request.decision.get("decision", {}).get("status")
        if status != DecisionStatus.APPROVED.value and e.request.client_order_id in ledger:
            yield f"{e.execution_id}: decision {status} reached the broker"


CHECKS: dict[str, Check] = {
    "no_duplicate_broker_orders": _no_duplicate_broker_orders,
    "broker_orders_map_to_executions": _broker_orders_map_to_executions,
    "every_execution_terminal": _every_execution_terminal,
    "audit_chain_verifies": _audit_chain_verifies,
    "no_order_sent_while_halted": _no_order_sent_while_halted,
    "no_fill_while_closed": _no_fill_while_closed,
    "executed_never_exceeds_intended": _executed_never_exceeds_intended,
    "no_order_for_unapproved_decision": _no_order_for_unapproved_decision,
}


def check_invariants(
    names: Iterable[str], executions: list[Execution], run: Evidence
) -> list[Violation]:
    violations = []
    for name in names:
        problems = list(CHECKS[name](executions, run))
        for detail in problems[:MAX_EXAMPLES]:
            violations.append(Violation(invariant=name, detail=detail))
        if len(problems) > MAX_EXAMPLES:
            more = len(problems) - MAX_EXAMPLES
            violations.append(Violation(invariant=name, detail=f"... and {more} more"))
    return violations
