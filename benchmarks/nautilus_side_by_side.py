"""Market-order throughput, ours beside NautilusTrader's backtester, in one sitting (issue 21).

    python benchmarks/nautilus_side_by_side.py                       # 10k orders, 5 rounds
    python benchmarks/nautilus_side_by_side.py --orders 50000 --repeat 3
    python benchmarks/nautilus_side_by_side.py --ours-only --orders 20 --repeat 1

Ours: `workloads.simulated_run` (the 9-stage flow, the SimPy simulator and the audit store,
batched: a SQLite file, then `memory://`). Nautilus: a `BacktestEngine` with a simulated FX
venue filling one market order per EUR/USD quote tick. Each measurement runs in a fresh
process of this same interpreter, alternately (ours on SQLite, Nautilus, ours in memory, and
again), so that both sides meet the same load on a shared machine and the same cold start.

NautilusTrader is not a dependency of the project: it is imported only in the process that
measures it, and its absence is said in one line (exit code 2) unless `--ours-only`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The checkout this script stands in, not an installed copy: so that a worktree of another
# commit measures its own code.
sys.path.insert(0, str(ROOT))

from benchmarks.suite import figure  # noqa: E402 (importable once the checkout is on the path)

MISSING = (
    "NautilusTrader is not installed: pip install nautilus_trader "
    "(a benchmark-only comparison, not a dependency)"
)
CONTENDERS = ("ours_sqlite", "nautilus", "ours_memory")  # one round, in this order
SEED = 1
# 50 quotes, so 50 orders, a second of market time: under the 100 a second Nautilus's risk
# engine lets through by default (`max_order_submit_rate`); faster, it holds orders back and
# the run ends with most of them unsent. Its defaults stay as they are.
TICK_NS = 20_000_000
# What the Nautilus side was given: reported with its numbers.
NAUTILUS_SETUP = {
    "venue": "SIM, OmsType.NETTING, AccountType.MARGIN, USD base, 1,000,000 USD, leverage 50",
    "instrument": "TestInstrumentProvider.default_fx_ccy('EUR/USD')",
    "data": f"N synthetic QuoteTicks {TICK_NS // 10**6} ms apart, seeded walk, 0.5-1 pip spread",
    "strategy": "one market order (100,000 units) per quote tick, buy and sell alternating",
    "logging": "LoggingConfig(log_level='ERROR', bypass_logging=True)",
    "run_analysis": False,
    "risk_engine": "default (pre-trade checks and the 100/s submit throttle on)",
    "fill_model": "default (fills at the touch, no latency model)",
    "timed": "engine.run() only: kernel start, the data loop, end(); setup excluded",
}


# -- one measurement, in the process that runs it ----------------------------------------------


def ours(orders: int, store: str) -> float:
    """Executions per second of `simulated_run`, on a fresh SQLite file or in memory."""
    from benchmarks.workloads import simulated_run

    if store == "memory":
        return simulated_run(orders, "memory://", SEED)
    with tempfile.TemporaryDirectory() as folder:
        return simulated_run(orders, f"sqlite:///{Path(folder) / 'audit.db'}", SEED)


def nautilus(orders: int) -> float:
    """Market orders filled per second of `engine.run()`, one per EUR/USD quote tick."""
    import numpy as np
    import pandas as pd
    from nautilus_trader.backtest.config import BacktestEngineConfig
    from nautilus_trader.backtest.engine import BacktestEngine
    from nautilus_trader.config import LoggingConfig, StrategyConfig
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.objects import Money
    from nautilus_trader.persistence.wranglers import QuoteTickDataWrangler
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.trading.strategy import Strategy

    instrument = TestInstrumentProvider.default_fx_ccy("EUR/USD")

    class MarketOrderPerQuote(Strategy):
        """A market order on every quote, sides alternating so that NETTING keeps the
        position between flat and one lot (no margin grows with the run)."""

        def __init__(self) -> None:
            super().__init__(StrategyConfig(strategy_id="MARKET-001"))
            self.submitted = 0
            self.filled = 0

        def on_start(self) -> None:
            self.subscribe_quote_ticks(instrument.id)

        def on_quote_tick(self, tick: Any) -> None:
            if self.submitted == orders:
                return
            side = OrderSide.BUY if self.submitted % 2 == 0 else OrderSide.SELL
            quantity = instrument.make_qty(100_000)
            self.submit_order(self.order_factory.market(instrument.id, side, quantity))
            self.submitted += 1

        def on_order_filled(self, event: Any) -> None:
            self.filled += 1

    # The quotes: a seeded walk in tenths of a pip, spread 5 to 10 tenths; only their count
    # and shape matter here (a market order fills at the touch, whatever the price).
    rng = np.random.default_rng(SEED)
    bid_tenths = 110_000 + np.cumsum(rng.integers(-3, 4, orders))
    spread_tenths = rng.integers(5, 11, orders)
    quotes = pd.DataFrame(
        {"bid_price": bid_tenths / 100_000, "ask_price": (bid_tenths + spread_tenths) / 100_000},
        index=pd.to_datetime(1_700_000_000 * 10**9 + np.arange(orders) * TICK_NS, utc=True),
    )
    ticks = QuoteTickDataWrangler(instrument).process(quotes)

    engine = BacktestEngine(
        BacktestEngineConfig(
            # Logging off: what is measured is the backtester, not its log lines.
            logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
            # The post-run report (P&L statistics) is not order processing: left out.
            run_analysis=False,
        )
    )
    engine.add_venue(
        venue=Venue("SIM"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(1_000_000, USD)],
        base_currency=USD,
        default_leverage=Decimal(50),
    )
    engine.add_instrument(instrument)
    engine.add_data(ticks)
    strategy = MarketOrderPerQuote()
    engine.add_strategy(strategy)

    started = time.perf_counter()
    engine.run()
    elapsed = time.perf_counter() - started
    if strategy.filled != orders:
        raise RuntimeError(f"Nautilus filled {strategy.filled} of {orders} market orders")
    engine.dispose()
    return orders / elapsed


def measure_one(contender: str, orders: int) -> dict[str, float]:
    from benchmarks.workloads import peak_rss_mb

    if contender == "nautilus":
        value = nautilus(orders)
    else:
        value = ours(orders, contender.removeprefix("ours_"))
    return {"per_second": value, "peak_rss_mb": peak_rss_mb()}


# -- the comparison ---------------------------------------------------------------------------


def in_fresh_process(contender: str, orders: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--one", contender, "--orders", str(orders)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{contender} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summary(samples: list[float]) -> dict[str, Any]:
    """The suite's figure of the samples, and the samples themselves."""
    return {**figure(samples), "samples": samples}


def compare(orders: int, repeat: int, ours_only: bool) -> dict[str, Any]:
    contenders = [c for c in CONTENDERS if not (ours_only and c == "nautilus")]
    per_second: dict[str, list[float]] = {c: [] for c in contenders}
    rss: dict[str, list[float]] = {c: [] for c in contenders}
    for round_ in range(repeat):
        for contender in contenders:
            print(f"round {round_ + 1}/{repeat}: {contender}, {orders:,} orders", file=sys.stderr)
            measured = in_fresh_process(contender, orders)
            per_second[contender].append(measured["per_second"])
            rss[contender].append(measured["peak_rss_mb"])
    results: dict[str, Any] = {
        "orders": orders,
        "repeat": repeat,
        "unit": "market orders executed (filled) per second of real time",
        "python": sys.version.split()[0],
        "nautilus_trader": None,
        **{c: summary(per_second[c]) for c in contenders},
        "peak_rss_mb": {c: summary(rss[c]) for c in contenders},
        "ours_includes": "9-stage flow, SimPy simulator, audit store writing hash-chained "
        "records (batched durability); Nautilus keeps its cache in memory and writes nothing",
    }
    if not ours_only:
        results["nautilus_trader"] = importlib.metadata.version("nautilus_trader")
        results["nautilus_setup"] = NAUTILUS_SETUP
        nautilus_median = results["nautilus"]["median"]
        results["ratio_ours_over_nautilus"] = {
            store: results[f"ours_{store}"]["median"] / nautilus_median
            for store in ("sqlite", "memory")
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="rounds of alternating runs")
    parser.add_argument("--ours-only", action="store_true", help="skip NautilusTrader")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--one",
        choices=CONTENDERS,
        help="measure one contender in this process and print it (what each round runs)",
    )
    args = parser.parse_args()
    if args.orders < 1 or args.repeat < 1:
        parser.error("--orders and --repeat must be at least 1")
    needs_nautilus = args.one == "nautilus" or (args.one is None and not args.ours_only)
    if needs_nautilus and importlib.util.find_spec("nautilus_trader") is None:
        print(MISSING, file=sys.stderr)
        raise SystemExit(2)
    if args.one:
        print(json.dumps(measure_one(args.one, args.orders)))
        return
    results = compare(args.orders, args.repeat, args.ours_only)
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
