"""GET /positions: the account's open positions, as the broker reports them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from engine.api.auth import ApiError
from engine.api.dependencies import Reader, Service
from engine.api.errors import GUARDED, error_responses
from engine.core.ids import execution_id_of_tag
from engine.core.ports import BrokerError, Position
from engine.schemas import Direction, utc

router = APIRouter()


class PositionView(BaseModel):
    """One open position; `execution_id` is the execution that opened it, when ours."""

    model_config = ConfigDict(frozen=True)

    position_id: str
    symbol: str
    direction: Direction
    units: int
    open_price: float
    opened_at: datetime
    stop_loss: float | None
    take_profit: float | None
    execution_id: str | None

    @classmethod
    def of(cls, position: Position) -> PositionView:
        return cls(
            position_id=position.position_id,
            symbol=position.symbol,
            direction=position.direction,
            units=position.units,
            open_price=position.open_price,
            opened_at=utc(position.opened_at),
            stop_loss=position.stop_loss,
            take_profit=position.take_profit,
            execution_id=execution_id_of_tag(position.client_order_id),
        )


class Positions(BaseModel):
    model_config = ConfigDict(frozen=True)

    positions: list[PositionView]


@router.get(
    "/positions",
    response_model=Positions,
    responses=error_responses(*GUARDED),
    summary="Open positions at the broker, oldest first (roles: auditor, admin)",
)
async def positions(
    service: Service,
    _key: Reader,
    symbol: Annotated[str | None, Query(pattern=r"^[A-Za-z]{6}$")] = None,
) -> Positions:
    try:
        held = await anyio.to_thread.run_sync(
            service.engine.broker.positions, symbol.upper() if symbol else None
        )
    except BrokerError as error:
        raise ApiError(
            503, "broker_unavailable", f"the broker could not be asked: {error}"
        ) from None
    return Positions(positions=[PositionView.of(position) for position in held])
