"""What a run is, as a tear sheet's header states it: which engine and configuration, which
broker, which period, what the invariants said and how many decisions came in.

The runner writes these into summary.json; the analysis reads them back (and works them out
for an audit database, which has no summary), so both sides share the definitions here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import metadata

from pydantic import BaseModel, ConfigDict

from scenarios.spec import Scenario

DISTRIBUTION = "arbitrex-execution"
UNKNOWN = "unknown"
NOT_APPROVED = "DECISION_NOT_APPROVED"


class DecisionCounts(BaseModel):
    """Every decision that came in, approved or not: an unapproved decision is recorded (and
    refused) like any other, so dropping it from the counts would hide it."""

    model_config = ConfigDict(frozen=True)

    decisions: int = 0
    approved: int = 0
    unapproved: int = 0
    rejected: int = 0  # approved, then refused by the engine's checks or the broker

    @classmethod
    def of(cls, by_status: Mapping[str, int], by_reason: Mapping[str, int]) -> DecisionCounts:
        decisions = sum(by_status.values())
        unapproved = by_reason.get(NOT_APPROVED, 0)
        return cls(
            decisions=decisions,
            approved=decisions - unapproved,
            unapproved=unapproved,
            # An unapproved decision ends REJECTED too; it is counted apart.
            rejected=by_status.get("REJECTED", 0) - unapproved,
        )


def engine_version() -> str:
    """The installed package's version: the code that ran."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def config_version(scenario: Scenario) -> str:
    """A digest of the resolved scenario (overrides applied), the same for every seed of it:
    two runs with one config version differ only by their seed. Keys sorted, so the order a
    file writes a table in does not matter."""
    resolved = scenario.model_dump(mode="json", exclude={"seed"})
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def broker_name(scenario: Scenario) -> str:
    """The broker and its execution policy's profile, e.g. "sim (retail_dealing_desk)"."""
    profile = scenario.broker_policy.profile
    return f"{scenario.broker} ({profile})" if profile else scenario.broker


def invariant_verdict(checked: Iterable[str], failed: Iterable[str]) -> str:
    """The verdict: "passed", "failed: name, name" or "not checked"."""
    failed = sorted(set(failed))
    if failed:
        return "failed: " + ", ".join(failed)
    return "passed" if tuple(checked) else "not checked"


def iso_utc(epoch_seconds: float | None) -> str | None:
    if epoch_seconds is None:
        return None
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).isoformat(timespec="milliseconds")
