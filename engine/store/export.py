"""Audit trail files for people and tools outside the engine: CSV, JSON Lines, Parquet.

Every file has the same columns whatever the store: the hash-chain columns are simply
empty for a store that keeps no chain (the in-memory one), so downstream readers see one
shape. In CSV and Parquet the payload is its canonical JSON text; JSON Lines nests it.
A row is an event: the events of one record (one append, engine.store.records) share its
seq and hashes, and `records.stored_record` rebuilds what the record hashed from them.

`at` is ISO 8601 UTC (to the microsecond) in CSV, the file people open; JSON Lines and
Parquet keep the stored POSIX seconds exactly, because the hash chain hashes that exact
number (`repr(at)`): a tool re-verifying the chain from the file needs it to the last bit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from engine.clock import iso_utc
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
    rows_per_chunk: int = 10_000,
) -> int:
    """Write the records stamped in [start, end) to `path`; returns how many were written.

    Records are read and written a chunk at a time, so a trail of millions fits in the
    memory of one chunk; the file appears whole, under its name, only once it is complete."""
    if fmt not in get_args(ExportFormat):
        raise ValueError(f"unknown export format {fmt!r}: use one of {get_args(ExportFormat)}")
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    rows = (
        {column: row.get(column) for column in COLUMNS} for row in db.iter_audit_trail(start, end)
    )
    written = 0
    try:
        with _Writer(partial, fmt) as write:
            while chunk := list(islice(rows, rows_per_chunk)):
                write(chunk)
                written += len(chunk)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return written


class _Writer:
    """One export file, written a chunk of rows at a time; with no rows, still a file with
    its columns (CSV header, Parquet schema)."""

    def __init__(self, path: Path, fmt: ExportFormat) -> None:
        self._path, self._fmt = path, fmt
        self._chunks = 0
        self._parquet: Any = None

    def __enter__(self) -> Callable[[list[dict[str, Any]]], None]:
        self._path.write_bytes(b"")
        return self._write

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None and not self._chunks and self._fmt != "jsonl":
            self._write([])
        if self._parquet is not None:
            self._parquet.close()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        first = not self._chunks
        self._chunks += 1
        if self._fmt == "jsonl":
            with self._path.open("a", encoding="utf-8") as out:
                out.writelines(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
        elif self._fmt == "csv":
            _frame(rows, iso_times=True).to_csv(self._path, mode="a", header=first, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(
                _frame(rows), schema=_parquet_schema(), preserve_index=False
            )
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._path, table.schema)
            self._parquet.write_table(table)


def _parquet_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            (
                column,
                pa.int64() if column == "seq" else pa.float64() if column == "at" else pa.string(),
            )
            for column in COLUMNS
        ]
    )


def _frame(rows: list[dict[str, Any]], iso_times: bool = False) -> pd.DataFrame:
    # Imported here: pandas costs a third of a second, and only exports need it.
    import pandas as pd

    def cell(row: dict[str, Any], column: str) -> Any:
        if column == "payload":
            return canonical_json(row[column])
        if column == "at" and iso_times:
            return iso_utc(row[column])
        return row[column]

    return pd.DataFrame(
        {
            column: pd.array(
                [cell(row, column) for row in rows],
                dtype="string" if column == "at" and iso_times else _DTYPES.get(column, "string"),
            )
            for column in COLUMNS
        }
    )
