"""Positions over the REST API: decisions with stops, limits and closes through POST
/execute, the open positions through GET /positions, and both in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.api import Role
from tests.api_support import PaperApi, approved, paper_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[PaperApi]:
    with paper_api(tmp_path) as paper:
        yield paper


def trade(decision_id: str, **terms: Any) -> dict[str, Any]:
    """An approved decision whose trade carries these extra terms."""
    rpm = approved(
        decision_id, direction=terms.pop("direction", 1), units=terms.pop("units", 100_000)
    )
    rpm["decision"]["approved_trade"].update(terms)
    return rpm


def test_a_decision_with_stops_in_pips_opens_a_position_that_get_positions_shows_protected(api):
    done = api.execute(trade("protected", stop_loss_pips=20, take_profit_pips=40)).json()
    assert done["status"] == "FILLED"

    [position] = api.read("/positions").json()["positions"]

    assert position["execution_id"] == done["execution_id"]
    assert (position["direction"], position["units"]) == (1, 100_000)
    pip = 0.0001
    assert position["stop_loss"] == pytest.approx(position["open_price"] - 20 * pip, abs=1e-5)
    assert position["take_profit"] == pytest.approx(position["open_price"] + 40 * pip, abs=1e-5)
    log = api.read(f"/executions/{done['execution_id']}").json()
    assert log["unprotected_positions"] == [] and log["protection"]


def test_a_close_decision_naming_the_position_flattens_it(api):
    api.execute(trade("open"))
    [position] = api.read("/positions").json()["positions"]

    closed = api.execute(
        trade("close", direction=-1, intent="close", position_id=position["position_id"])
    ).json()

    assert closed["status"] == "FILLED" and closed["executed_units"] == 100_000
    assert api.read("/positions").json()["positions"] == []


def test_a_reduce_above_the_position_is_refused_with_its_reason_and_sends_nothing(api):
    api.execute(trade("open"))
    refused = api.execute(trade("too-much", direction=-1, units=200_000, intent="reduce")).json()

    assert (refused["status"], refused["rejection_reason"]) == ("REJECTED", "EXCEEDS_POSITION")
    assert len(api.orders_at_the_broker()) == 1


def test_contradictory_terms_are_a_422_naming_what_contradicts(api):
    answer = api.execute(trade("bad", limit_price=1.08))

    assert answer.status_code == 422
    assert "limit_price" in answer.text and "Traceback" not in answer.text
    assert api.orders_at_the_broker() == {}


def test_positions_are_read_by_auditors_and_admins_and_refused_to_traders(api):
    for role, expected in ((Role.AUDITOR, 200), (Role.ADMIN, 200), (Role.TRADER, 403)):
        assert api.client.get("/positions", headers=api.as_role(role)).status_code == expected
    assert api.client.get("/positions").status_code == 401


def test_a_malformed_symbol_filter_is_a_422_naming_the_parameter(api):
    answer = api.read("/positions", symbol="EUR/USD")

    assert answer.status_code == 422 and "symbol" in answer.text


def test_the_openapi_document_declares_the_new_decision_terms_and_the_positions_route(api):
    document = api.read("/openapi.json").json()
    trade_schema = document["components"]["schemas"]["ApprovedTrade"]["properties"]

    for term in (
        "intent",
        "position_id",
        "order_type",
        "limit_price",
        "expires_at",
        "stop_loss",
        "stop_loss_pips",
        "take_profit",
        "take_profit_pips",
        "partial_fills",
    ):
        assert term in trade_schema, term
    assert "get" in document["paths"]["/positions"]
    assert "PositionView" in document["components"]["schemas"]
