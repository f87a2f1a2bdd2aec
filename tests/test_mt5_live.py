"""Opt-in: the kit against a real MetaTrader 5 demo account, end to end.

Skipped unless ARBITREX_MT5_E2E=1 and the credentials are set (MT5_LOGIN, MT5_PASSWORD,
MT5_SERVER; MT5_PATH optional). On Windows it loads MetaTrader5; elsewhere set
ARBITREX_MT5_BRIDGE=HOST:PORT for the mt5linux bridge. ARBITREX_MT5_SYMBOL picks the symbol
(default EURUSD). It buys the symbol's smallest lot through the engine and sells it again:
a netting demo account is left flat; a hedging one keeps the two opposite positions until
they are closed by hand (closing by position comes to the engine with issue 16). Never run
it against a live account.
"""

from __future__ import annotations

import os
import time

import pytest

from brokers.mt5 import MT5Broker, MT5Config, MT5Credentials
from engine import create_execution_engine
from engine.core.instruments import lots_to_units
from engine.schemas import ExecutionStatus
from engine.store import InMemoryExecutionDatabase
from tests.builders import decision

WANTED = ("ARBITREX_MT5_E2E", "MT5_LOGIN", "MT5_PASSWORD", "MT5_SERVER")
pytestmark = pytest.mark.skipif(
    os.environ.get("ARBITREX_MT5_E2E") != "1" or not all(os.environ.get(v) for v in WANTED),
    reason="opt-in: set ARBITREX_MT5_E2E=1 and MT5_LOGIN/MT5_PASSWORD/MT5_SERVER of a DEMO account",
)


def connect() -> MT5Broker:
    bridge = os.environ.get("ARBITREX_MT5_BRIDGE")
    host, _, port = (bridge or "localhost:18812").rpartition(":")
    return MT5Broker.connect(
        MT5Credentials.from_env(),
        MT5Config(),
        kind="bridge" if bridge else "native",
        host=host,
        port=int(port),
    )


def test_a_demo_account_fills_the_smallest_lot_both_ways_through_the_engine():
    symbol = os.environ.get("ARBITREX_MT5_SYMBOL", "EURUSD")
    broker = connect()
    try:
        spec = broker.symbol_spec(symbol)
        assert spec is not None, f"the terminal does not list {symbol}"
        units = lots_to_units(spec.volume_min, spec)
        engine = create_execution_engine(broker, InMemoryExecutionDatabase())
        tag = f"e2e-{int(time.time())}"
        opened = engine.execute(decision(symbol, 1, units, decision_id=f"{tag}-buy"))
        assert opened.status is ExecutionStatus.FILLED, opened
        assert broker.find_order(engine.database.request(opened.execution_id).client_order_id)
        # On a netting account the opposite order closes the position; on a hedging one it
        # opens a hedge: either way the account's net exposure is back to zero.
        closed = engine.execute(decision(symbol, -1, units, decision_id=f"{tag}-sell"))
        assert closed.status is ExecutionStatus.FILLED, closed
    finally:
        broker.close()
