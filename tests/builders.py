"""Builders the tests share: decisions as RPM sends them, running them in a world, and
a still market for the MT5 tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.core.lifecycle import Execution
from engine.core.ports import FillPolicy
from sim.market import MarketConfig, SymbolConfig
from sim.world import SimulatedWorld

# The real FX quotes beside the checkout (../shared/data/fx), as on every machine and in CI.
FX_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fx"


def decision(
    symbol: str = "EURUSD",
    direction: int = 1,
    units: int = 100_000,
    decision_id: str | None = "d-1",
    status: str = "APPROVED",
    halted: bool = False,
    **trade: Any,
) -> dict[str, Any]:
    """An RPM output as upstream sends it over the wire (plain JSON-like data)."""
    body: dict[str, Any] = {
        "decision": {
            "status": status,
            "approved_trade": {
                "symbol": symbol,
                "direction": direction,
                "position_units": units,
                "confidence_score": 0.8,
                **trade,
            },
        },
        "portfolio_state": {"trading_halted": halted},
    }
    if decision_id is not None:
        body["decision"]["decision_id"] = decision_id
    return body


def run_one(world: SimulatedWorld, rpm: dict[str, Any], key: str | None = None) -> Execution:
    process = world.engine.submit(rpm, key)
    world.env.run()
    return process.value


# Still prices on three symbols, each with the fill policies a broker may offer: EURUSD
# both, GBPUSD all or nothing only, USDJPY immediate-or-cancel only.
STILL_THREE_SYMBOLS = MarketConfig(
    symbols=(
        SymbolConfig(symbol="EURUSD", start_mid=1.085, volatility_pips=0.0),
        SymbolConfig(
            symbol="GBPUSD",
            start_mid=1.27,
            volatility_pips=0.0,
            fill_policies=(FillPolicy.FOK,),
        ),
        SymbolConfig(
            symbol="USDJPY",
            start_mid=145.0,
            digits=3,
            volatility_pips=0.0,
            fill_policies=(FillPolicy.IOC,),
        ),
    )
)
