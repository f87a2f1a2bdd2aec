"""A run's outputs, built as its executions stream past: nothing per execution stays in memory.

Counts are counters; percentiles are exact, read back in order from values spilled to a
scratch SQLite file; the Parquet tables are written a row group at a time. A run of a
million orders then needs the memory of a run of a thousand.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from engine.core.ids import execution_id_of_tag
from engine.core.lifecycle import Execution
from sim.account import Charge
from sim.spilled import scratch_database

ROWS_PER_GROUP = 8192

EXECUTION_COLUMNS = pa.schema(
    [
        ("execution_id", pa.string()),
        ("client_order_id", pa.string()),
        ("broker_order_id", pa.string()),
        ("symbol", pa.string()),
        ("direction", pa.int64()),
        ("intended_units", pa.int64()),
        ("executed_units", pa.int64()),
        ("status", pa.string()),
        ("outcome_reason", pa.string()),
        ("broker_code", pa.int64()),
        ("arrival_bid", pa.float64()),
        ("arrival_ask", pa.float64()),
        ("average_fill_price", pa.float64()),
        ("slippage_pips", pa.float64()),
        ("slippage_quality", pa.string()),
        ("attempts", pa.int64()),
        ("fills", pa.int64()),
        ("created_at", pa.float64()),
        ("submitted_at", pa.float64()),
        ("last_fill_at", pa.float64()),
        ("completed_at", pa.float64()),
        ("fill_time_seconds", pa.float64()),
        ("intent", pa.string()),
        ("order_type", pa.string()),
        ("limit_price", pa.float64()),
        ("child_orders", pa.int64()),
        ("protection_gap_seconds", pa.float64()),
        ("unprotected_positions", pa.int64()),  # how many the broker left without stops
        # Commission in the account currency, negative when paid: on the execution's own
        # deals and on the stops and targets that closed the positions it opened (its round
        # trip). A close decision is an execution of its own and pays its own.
        ("commission", pa.float64()),
        # The execution policy the decision carried, beyond its order type: what a cost
        # model reads (engine.core.costing), so a run's table replays its features.
        ("max_slippage_pips", pa.float64()),
        ("partial_fills", pa.string()),
        # The attached cost model's estimate at validation (CostEstimated), pips vs the
        # quoted side, + adverse; null when no model was attached or it had no estimate.
        ("estimated_slippage_p10_pips", pa.float64()),
        ("estimated_slippage_p50_pips", pa.float64()),
        ("estimated_slippage_p90_pips", pa.float64()),
    ]
)
# One row per deal that closed (part of) a position an execution opened: by its stop-loss,
# its take-profit, a stop-out or a close decision. Slippage is against the level that
# triggered it (stops and targets only), adverse positive: a gap stop fills beyond it.
EXIT_COLUMNS = pa.schema(
    [
        ("execution_id", pa.string()),
        ("symbol", pa.string()),
        ("direction", pa.int64()),  # the position's side: +1 long
        ("deal_id", pa.string()),
        ("position_id", pa.string()),
        ("reason", pa.string()),
        ("units", pa.int64()),
        ("price", pa.float64()),
        ("level", pa.float64()),
        ("time", pa.float64()),
        ("slippage_pips", pa.float64()),
    ]
)
# One row per cost the broker booked (`sim.account.Charge`): commission on a deal, swap on
# a symbol's open positions at a rollover. Amounts in the account currency, negative: paid.
CHARGE_COLUMNS = pa.schema(
    [
        ("kind", pa.string()),
        ("symbol", pa.string()),
        ("time", pa.float64()),
        ("amount", pa.float64()),
        ("execution_id", pa.string()),  # whose commission; null for swap
        ("ticket", pa.int64()),  # the order that paid the commission; 0 for swap
        ("deal_id", pa.string()),  # joins exits.parquet; null for swap
        ("units", pa.int64()),  # the deal's units; signed units held, for swap
    ]
)
QUOTE_COLUMNS = pa.schema(
    [("symbol", pa.string()), ("time", pa.float64()), ("bid", pa.float64()), ("ask", pa.float64())]
)


def execution_row(e: Execution, commission: float = 0.0) -> dict[str, Any]:
    """One execution as the row executions.parquet holds (EXECUTION_COLUMNS); `commission`
    is the broker's to tell (`commission_by_execution`), not the engine's."""
    request = e.request
    assert request is not None
    estimate = e.estimated_slippage_pips or (None, None, None)
    return {
        "execution_id": e.execution_id,
        "client_order_id": request.client_order_id,
        "broker_order_id": e.broker_order_id,
        "symbol": request.symbol,
        "direction": int(request.direction) if request.direction is not None else None,
        "intended_units": request.intended_units,
        "executed_units": e.executed_units,
        "status": e.status.value if e.status else None,
        "outcome_reason": e.outcome_reason.value if e.outcome_reason else None,
        "broker_code": e.broker_code,
        "arrival_bid": e.arrival_bid,
        "arrival_ask": e.arrival_ask,
        "average_fill_price": e.average_fill_price,
        "slippage_pips": e.slippage_pips,
        "slippage_quality": e.slippage_quality.value if e.slippage_quality else None,
        "attempts": e.attempts,
        "fills": len(e.fills),
        "created_at": e.created_at,
        "submitted_at": e.submitted_at,
        "last_fill_at": e.last_fill_at,
        "completed_at": e.completed_at,
        "fill_time_seconds": e.fill_time_seconds,
        "intent": request.intent.value,
        "order_type": request.order_type.value,
        "limit_price": request.limit_price,
        "child_orders": e.child_orders,
        "protection_gap_seconds": e.protection_gap_seconds,
        "unprotected_positions": len(e.unprotected),
        "commission": commission,
        "max_slippage_pips": request.max_slippage_pips,
        "partial_fills": request.partial_fills.value,
        "estimated_slippage_p10_pips": estimate[0],
        "estimated_slippage_p50_pips": estimate[1],
        "estimated_slippage_p90_pips": estimate[2],
    }


def charge_row(charge: Charge) -> dict[str, Any]:
    """One charge as charges.parquet holds it (CHARGE_COLUMNS)."""
    commission = charge.kind == "commission"
    return {
        "kind": charge.kind,
        "symbol": charge.symbol,
        "time": charge.time,
        "amount": charge.amount,
        "execution_id": execution_id_of_tag(charge.client_order_id) if commission else None,
        "ticket": charge.ticket,
        "deal_id": str(charge.deal) if commission else None,
        "units": charge.units,
    }


def commission_by_execution(charges: Iterable[Charge]) -> dict[str, float]:
    """The commission each execution paid, by execution id (the tag of the order that paid,
    or of the order that opened the position a stop or target closed). Summed with fsum:
    the same total whatever order the deals came in."""
    amounts: dict[str, list[float]] = {}
    for charge in charges:
        if charge.kind != "commission":
            continue
        execution_id = execution_id_of_tag(charge.client_order_id)
        if execution_id is not None:
            amounts.setdefault(execution_id, []).append(charge.amount)
    return {execution_id: math.fsum(paid) for execution_id, paid in amounts.items()}


def exit_slippage_pips(
    direction: int, price: float, level: float | None, pip: float
) -> float | None:
    """How far beyond its level a stop or target filled, in pips, adverse positive: a long
    closes by selling, so a fill below the level is adverse; a short, above it."""
    if level is None:
        return None
    return round(direction * (level - price) / pip, 6)


def exit_rows(e: Execution, pip: float) -> Iterator[dict[str, Any]]:
    """The execution's exits as exits.parquet holds them (EXIT_COLUMNS)."""
    request = e.request
    assert request is not None and request.direction is not None
    direction = int(request.direction)
    for exit_ in e.exits:
        yield {
            "execution_id": e.execution_id,
            "symbol": request.symbol,
            "direction": direction,
            "deal_id": exit_.deal_id,
            "position_id": exit_.position_id,
            "reason": exit_.reason.value,
            "units": exit_.units,
            "price": exit_.price,
            "level": exit_.level,
            "time": exit_.time.timestamp(),
            "slippage_pips": exit_slippage_pips(direction, exit_.price, exit_.level, pip),
        }


def execution_rows(executions: Iterable[Execution]) -> pd.DataFrame:
    return pd.DataFrame([execution_row(e) for e in executions])


class ParquetRows:
    """Rows appended to a Parquet file one row group at a time; with no path, none kept.

    Written under a temporary name and renamed on close: a reader never sees half a table,
    and a run that dies leaves the previous run's file, not a torn one."""

    def __init__(self, path: Path | None, schema: pa.Schema) -> None:
        self._path = path
        self._schema = schema
        self._pending: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None

    def add(self, row: dict[str, Any]) -> None:
        if self._path is None:
            return
        self._pending.append(row)
        if len(self._pending) >= ROWS_PER_GROUP:
            self._write()

    def close(self) -> None:
        """Write what is pending; a table with no rows is still written, with its columns."""
        if self._path is None:
            return
        if self._pending or self._writer is None:
            self._write()
        assert self._writer is not None
        self._writer.close()
        os.replace(self._partial(), self._path)

    def _partial(self) -> Path:
        assert self._path is not None
        return self._path.with_name(self._path.name + ".partial")

    def _write(self) -> None:
        assert self._path is not None
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._partial(), self._schema)
        self._writer.write_table(pa.Table.from_pylist(self._pending, schema=self._schema))
        self._pending = []


class Percentiles(BaseModel):
    model_config = ConfigDict(frozen=True)

    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None


class SpilledSamples:
    """Series of numbers kept in a scratch SQLite file of their own (deleted on close), so
    that exact percentiles of a million fills take no memory per fill."""

    def __init__(self) -> None:
        self._db = scratch_database(
            "CREATE TABLE sample (series TEXT NOT NULL, value REAL NOT NULL)"
        )
        self._pending: list[tuple[str, float]] = []
        self._indexed = False

    def add(self, series: str, value: float) -> None:
        if self._indexed:
            raise RuntimeError("samples are read: no more may be added")
        self._pending.append((series, value))
        if len(self._pending) >= ROWS_PER_GROUP:
            self._flush()

    def percentiles(self, series: str) -> Percentiles:
        """p50, p95, p99 exactly as numpy's default (linear) method gives them, and the
        mean, each rounded to 6 places."""
        if not self._indexed:
            self._flush()
            # Sorted once, on disk: each percentile then walks the index, not the memory.
            self._db.execute("CREATE INDEX sample_in_order ON sample (series, value)")
            self._indexed = True
        (count,) = self._db.execute(
            "SELECT count(*) FROM sample WHERE series = ?", (series,)
        ).fetchone()
        if not count:
            return Percentiles(p50=None, p95=None, p99=None, mean=None)
        # fsum: the exactly rounded sum, the same whatever order the values come in.
        values = self._db.execute("SELECT value FROM sample WHERE series = ?", (series,))
        mean = math.fsum(value for (value,) in values) / count
        p50, p95, p99 = (self._percentile(series, count, q) for q in (50, 95, 99))
        return Percentiles(
            p50=round(p50, 6), p95=round(p95, 6), p99=round(p99, 6), mean=round(mean, 6)
        )

    def close(self) -> None:
        self._db.close()

    def _percentile(self, series: str, count: int, q: int) -> float:
        position = q / 100 * (count - 1)
        below = math.floor(position)
        pair = self._db.execute(
            "SELECT value FROM sample WHERE series = ? ORDER BY value LIMIT 2 OFFSET ?",
            (series, below),
        ).fetchall()
        values = np.array([pair[0][0], pair[-1][0]])
        return float(np.quantile(values, position - below))  # numpy's own interpolation

    def _flush(self) -> None:
        with self._db:
            self._db.executemany("INSERT INTO sample VALUES (?, ?)", self._pending)
        self._pending = []


def write_text_atomically(path: Path, text: str) -> None:
    """The file whole or not at all: written aside, then renamed over the old one."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
