"""Deterministic identities: the same decision always maps to the same execution and order tag.

No uuid4 and no clock: an id is a hash of the idempotency key, so a restarted engine, a
second process, or a replayed simulation derive the very same ids.
"""

from __future__ import annotations

import hashlib
import json

from engine.schemas import RPMOutput

CLIENT_ORDER_PREFIX = "AX"


def idempotency_key_for(rpm: RPMOutput) -> str:
    """The caller's decision id if it gave one, else a hash of the whole decision."""
    if rpm.decision.decision_id is not None:
        return f"decision:{rpm.decision.decision_id}"
    canonical = json.dumps(rpm.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "rpm:" + hashlib.sha256(canonical.encode()).hexdigest()


def execution_id_for(idempotency_key: str) -> str:
    return "ex" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


def client_order_id_for(execution_id: str) -> str:
    """ASCII letters and digits, 22 characters: safe in an MT5 comment (<= 26)."""
    return CLIENT_ORDER_PREFIX + execution_id[2:]


def child_client_order_id(client_order_id: str, child: int) -> str:
    """The tag of the `child`-th order sent for the remainder of a partial fill: the
    execution's own tag, then C and the child's number (24 characters, still safe in an MT5
    comment), so that a tag found at the broker leads back to its execution."""
    if not 1 <= child <= 9:
        raise ValueError(f"child order {child}: an execution has at most 9")
    return f"{client_order_id}C{child}"


def execution_id_of_tag(tag: str) -> str | None:
    """The execution whose order (or child order) carries this tag; None for a tag that is
    not ours. Brokers may append to a comment, never shorten ours below 22 characters."""
    if not tag.startswith(CLIENT_ORDER_PREFIX) or len(tag) < 22:
        return None
    return "ex" + tag[2:22]
