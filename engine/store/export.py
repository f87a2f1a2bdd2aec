"""Audit trail files for people and tools outside the engine: CSV, JSON Lines, Parquet.

Every file has the same columns whatever the store: the hash-chain columns are simply
empty for a store that keeps no chain (the in-memory one), so downstream readers see one
shape. In CSV and Parquet the payload is its canonical JSON text; JSON Lines nests it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from engine.store.base import ExecutionDatabase
from engine.store.chain import canonical_json

if TYPE_CHECKING:
    import pandas as pd

ExportFormat = Literal["csv", "jsonl", "parquet"]

COLUMNS = (
    "seq",
    "execution_id",
    "at",
    "kind",
    "payload",
    "engine_version",
    "config_version",
    "prev_hash",
    "hash",
)
_DTYPES = {"seq": "Int64", "at": "float64"}  # every other column is text


def export_audit_trail_to(
    db: ExecutionDatabase,
    path: str | Path,
    fmt: ExportFormat,
    start: datetime,
    end: datetime,
) -> int:
    """Write the records stamped in [start, end) to `path`; returns how many were written."""
    if fmt not in get_args(ExportFormat):
        raise ValueError(f"unknown export format {fmt!r}: use one of {get_args(ExportFormat)}")
    rows = [
        {column: row.get(column) for column in COLUMNS} for row in db.export_audit_trail(start, end)
    ]
    target = Path(path)
    if fmt == "jsonl":
        with target.open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, separators=(",", ":")) + "\n")
    elif fmt == "csv":
        _frame(rows).to_csv(target, index=False)
    else:
        _frame(rows).to_parquet(target, engine="pyarrow", index=False)
    return len(rows)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    # Imported here: pandas costs a third of a second, and only exports need it.
    import pandas as pd

    return pd.DataFrame(
        {
            column: pd.array(
                [
                    canonical_json(row[column]) if column == "payload" else row[column]
                    for row in rows
                ],
                dtype=_DTYPES.get(column, "string"),
            )
            for column in COLUMNS
        }
    )
