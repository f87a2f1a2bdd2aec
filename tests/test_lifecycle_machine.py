"""The order lifecycle against a trivial model, step by step (Hypothesis stateful testing)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine.core import events as ev
from engine.core.lifecycle import Execution, IllegalTransition
from engine.core.ports import BrokerOrderState
from engine.schemas import (
    Direction,
    ExecutionRejectionReason,
    ExecutionRequest,
    ExecutionStatus,
    SlippageQuality,
    utc,
)

S = ExecutionStatus
R = ExecutionRejectionReason
TERMINAL = {S.FILLED, S.PARTIALLY_FILLED, S.REJECTED, S.EXPIRED, S.CANCELLED, S.FAILED}
EID = "ex0001"

# The model: what a trader would write on a whiteboard, independent of the engine's table.
SIMPLE_MOVES: dict[tuple[S, str], S] = {
    (S.PENDING, "ValidationFailed"): S.REJECTED,
    (S.PENDING, "ValidationCompleted"): S.SUBMITTING,
    (S.SUBMITTING, "SubmissionAttempted"): S.SUBMITTING,
    (S.SUBMITTING, "SubmissionFailed"): S.SUBMITTING,
    (S.SUBMITTING, "SubmissionUnanswered"): S.UNRESOLVED,
    (S.SUBMITTING, "SubmissionAbandoned"): S.FAILED,
    (S.SUBMITTING, "OrderAcknowledged"): S.SUBMITTED,
    (S.SUBMITTING, "OrderRejected"): S.REJECTED,
    (S.SUBMITTING, "ReconciliationAttempted"): S.UNRESOLVED,
    (S.UNRESOLVED, "ReconciliationAttempted"): S.UNRESOLVED,
    (S.UNRESOLVED, "OrderProvenAbsent"): S.SUBMITTING,
    (S.UNRESOLVED, "OrderAcknowledged"): S.SUBMITTED,
    (S.UNRESOLVED, "ReconciliationDeferred"): S.UNRESOLVED,
    (S.SUBMITTED, "CancelRequested"): S.SUBMITTED,
    (S.SUBMITTED, "OrderExpired"): S.EXPIRED,
    (S.FILLED, "OrderClosed"): S.FILLED,
    (S.FILLED, "SlippageMeasured"): S.FILLED,
    (S.PARTIALLY_FILLED, "SlippageMeasured"): S.PARTIALLY_FILLED,
    (S.EXPIRED, "SlippageMeasured"): S.EXPIRED,
}


def simple_events(at: float) -> dict[str, ev.ExecutionEvent]:
    return {
        "ValidationFailed": ev.ValidationFailed(
            EID, at, "spread_acceptable", R.SPREAD_TOO_WIDE, "wide"
        ),
        "ValidationCompleted": ev.ValidationCompleted(EID, at, ("all",), 1.0, 1.1, 1.1001, None),
        "SubmissionAttempted": ev.SubmissionAttempted(EID, at, 1),
        "SubmissionFailed": ev.SubmissionFailed(EID, at, 1, "refused"),
        "SubmissionUnanswered": ev.SubmissionUnanswered(EID, at, 1, "timeout"),
        "SubmissionAbandoned": ev.SubmissionAbandoned(EID, at, R.NETWORK_ERROR, "down"),
        "OrderAcknowledged": ev.OrderAcknowledged(EID, at, "42"),
        "OrderRejected": ev.OrderRejected(EID, at, R.BROKER_REJECTED, "no", 10006),
        "ReconciliationAttempted": ev.ReconciliationAttempted(EID, at, "lookup"),
        "OrderProvenAbsent": ev.OrderProvenAbsent(EID, at, "absent"),
        "ReconciliationDeferred": ev.ReconciliationDeferred(EID, at, "still down"),
        "CancelRequested": ev.CancelRequested(EID, at, "timeout"),
        "OrderExpired": ev.OrderExpired(EID, at, "timeout"),
        "SlippageMeasured": ev.SlippageMeasured(EID, at, 1.1, 1.1, 0.0, SlippageQuality.EXCELLENT),
    }


class LifecycleMachine(RuleBasedStateMachine):
    @initialize(intended=st.sampled_from([1_000, 50_000, 100_000]))
    def request(self, intended: int) -> None:
        self.at = 0.0
        self.intended = intended
        request = ExecutionRequest(
            execution_id=EID,
            idempotency_key="k",
            client_order_id="AX0001",
            symbol="EURUSD",
            direction=Direction.BUY,
            intended_units=intended,
            max_slippage_pips=None,
            decision={},
            received_at=utc(0.0),
            engine_version="t",
            config_version="t",
            engine_instance="t",
        )
        self.execution = Execution(EID)
        self.execution.apply(ev.ExecutionRequested(EID, 0.0, request))
        self.model_status = S.PENDING
        self.model_fills: dict[str, int] = {}
        self.ever_terminal: S | None = None

    def _tick(self) -> float:
        self.at += 0.5
        return self.at

    def _expect(self, event: ev.ExecutionEvent, next_status: S | None) -> None:
        before = (self.execution.status, self.execution.executed_units)
        if next_status is None:
            with pytest.raises(IllegalTransition):
                self.execution.apply(event)
            assert (self.execution.status, self.execution.executed_units) == before
        else:
            self.execution.apply(event)
            self.model_status = next_status

    @rule(kind=st.sampled_from(sorted(simple_events(0.0))))
    def simple_event(self, kind: str) -> None:
        event = simple_events(self._tick())[kind]
        self._expect(event, SIMPLE_MOVES.get((self.model_status, kind)))

    @rule(data=st.data())
    def legal_event(self, data: st.DataObject) -> None:
        """Walk the happy and unhappy paths often, not only by chance."""
        events = simple_events(self._tick())
        legal = sorted(k for (s, k) in SIMPLE_MOVES if s is self.model_status and k in events)
        if legal:
            kind = data.draw(st.sampled_from(legal))
            self._expect(events[kind], SIMPLE_MOVES[(self.model_status, kind)])

    @rule(units=st.integers(1, 100).map(lambda lots: lots * 1_000), fresh=st.booleans())
    def fill(self, units: int, fresh: bool) -> None:
        if not fresh and self.model_fills:
            fill_id = sorted(self.model_fills)[0]  # the broker repeats a report it sent before
            repeat = ev.OrderFilled(
                EID, self._tick(), fill_id, self.model_fills[fill_id], 1.1, self.at
            )
            assert self.execution.apply(repeat) is False
            return
        fill_id = f"deal-{len(self.model_fills) + 1}"
        event = ev.OrderFilled(EID, self._tick(), fill_id, units, 1.1, self.at)
        filled = sum(self.model_fills.values())
        if self.model_status is not S.SUBMITTED or filled + units > self.intended:
            self._expect(event, None)
            return
        self.model_fills[fill_id] = units
        self._expect(event, S.FILLED if filled + units == self.intended else S.SUBMITTED)

    @rule(state=st.sampled_from(list(BrokerOrderState)))
    def closed(self, state: BrokerOrderState) -> None:
        event = ev.OrderClosed(EID, self._tick(), state)
        filled = sum(self.model_fills.values())
        if self.model_status is S.SUBMITTED:
            after = (
                S.FILLED
                if filled == self.intended
                else S.PARTIALLY_FILLED
                if filled
                else S.CANCELLED
            )
        else:
            after = SIMPLE_MOVES.get((self.model_status, "OrderClosed"))
        self._expect(event, after)

    @invariant()
    def matches_the_model(self) -> None:
        assert self.execution.status is self.model_status
        assert self.execution.executed_units == sum(self.model_fills.values())

    @invariant()
    def executed_never_exceeds_intended(self) -> None:
        assert self.execution.executed_units <= self.execution.intended_units

    @invariant()
    def a_terminal_state_stays_terminal(self) -> None:
        if self.ever_terminal is not None:
            assert self.execution.status is self.ever_terminal
        if self.execution.status in TERMINAL:
            self.ever_terminal = self.execution.status


LifecycleMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=30, deadline=None
)
test_order_lifecycle_agrees_with_a_trivial_model = LifecycleMachine.TestCase
