"""Real FX quotes from CSV files: reading, data-quality checks and a declared cleaning policy.

Two shapes are read. One-minute bars of the bid and of the ask, in two files whose rows carry
the same timestamps (`timestamp,open,high,low,close`; the timestamp is the bar's open), and
ticks (`timestamp,bid,ask`, and optionally `bid_size,ask_size`, the volume quoted at each
side). Timestamps are ISO 8601 with a UTC offset; prices are decimal strings. Further columns
are ignored; blank lines are skipped. Bars become quotes as `sim.bars` says: at their close,
or along a declared intra-bar path.

The symbol's digits are the most decimals any price of the file is written with (files write
prices to the point: GBP/USD 1.32100, USD/JPY 86.655). A source that declares other digits
is refused with `DigitsError`: pips would be 10^n times off, and every spread check with them.

A file that cannot be read as quotes raises `QuoteFileError` naming the file, the line and the
problem: a missing column, a row whose field count differs from the header's, a timestamp that
is not ISO 8601 or lacks its offset, a price that is not a finite number or is above
`MAX_PRICE`, bid and ask bars whose timestamps do not line up row by row, or bars less than a
minute apart. An empty price field is not a malformed file but a missing price: a
data-quality problem like the others.

Data-quality problems are counted in a `DataQualityReport`, judged on the rows as read, and
handled by the declared policy `bad_quotes`, never silently:

- crossed: a quote whose ask is below its bid. A bar replayed at its close is judged on its
  closes; one replayed along a bridge on its four anchors (the open, the two extremes in
  path order, the close: bid and ask paired at one instant), crossed if any of them is.
- missing / non_positive: a row with an empty or a zero or negative price on either side.
- duplicates: rows sharing their timestamp with a later row. The last row at an instant is
  taken as the quote at that instant, being the later update; the earlier ones are the problem.
- out_of_order: a row stamped earlier than some row above it.
- gaps: no quote for longer than `max_gap_minutes` of open market, as `FxWeek` defines it,
  so a weekend is no gap. Gaps are reported under every policy and never acted on: nothing
  can fill them honestly, and a market holds its last quote through them.

Policies:

- "refuse" raises `BadQuotesError` listing the first rows of each problem found.
- "drop" removes every problem row (a bridge cannot pass through a missing anchor, so a
  crossed bar goes whole). An out-of-order row is the one stamped late, so it goes; note
  that a single row stamped far in the future would take every row below it along, which
  the report's counts make visible.
- "repair" sets both sides of a crossed quote to its mid, rounded to the symbol's digits, and
  stably sorts out-of-order rows into place. The mid, not a swap of the sides: a crossed pair
  of bars comes from bid and ask prices sampled at different ticks, so the mid is the best
  estimate of where the price was, while a swap would invent a spread the size of that timing
  error and pass a bid off as an ask. A zero spread also leaves the distribution of spreads
  above it, median and upper percentiles included, exactly as in the file. Duplicates are
  resolved as under "drop"; missing and non-positive prices cannot be repaired without
  inventing a price, so those rows are dropped.

Row numbers are line numbers of the file, the header being line 1: `sed -n 42p` shows row 42.
For a pair of bar files they are the bid file's, which equal the ask file's when the rows
line up.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, FilePath, model_validator

from engine.schemas import SYMBOL_PATTERN
from sim.bars import BAR_SECONDS, BridgeConfig, BridgePath, IntraBarPath, anchors
from sim.quote_report import (
    EXAMPLE_ROWS,
    BadQuotePolicy,
    DataQualityReport,
    GapReport,
    ProblemRows,
)
from sim.quote_store import ArrayQuotes, FloatArray, QuoteStore
from sim.sessions import FxWeek
from sim.textfiles import InputFileError, read_text

# No currency has traded above a billion units of another (the bolivar before its
# redenominations came nearest, in millions): a larger number is a corrupt field, and one
# near the float's limit would overflow the spreads measured from it.
MAX_PRICE = 1e9

_BAR_COLUMNS = ("open", "high", "low", "close")
_TICK_COLUMNS = ("bid", "ask")
_SIZE_COLUMNS = ("bid_size", "ask_size")

Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN.pattern)]
Digits = Annotated[int, Field(ge=0, le=8)]
GapMinutes = Annotated[float, Field(gt=0.0)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BarQuotesConfig(_Config):
    """One-minute bid and ask bars in two files. The policy and the path have no default:
    both change what is replayed, so a caller declares them. `digits` None: as the data
    has them; declared, it must agree with the data. `seed` and `bridge` shape the
    "bridge" path only."""

    kind: Literal["bars"] = "bars"
    symbol: Symbol
    digits: Digits | None = None
    bid_path: FilePath
    ask_path: FilePath
    bad_quotes: BadQuotePolicy
    intra_bar: IntraBarPath
    bridge: BridgeConfig = BridgeConfig()
    seed: Annotated[int, Field(ge=0)] = 0
    max_gap_minutes: GapMinutes = 5.0

    @model_validator(mode="after")
    def _two_files(self) -> BarQuotesConfig:
        if self.bid_path.resolve() == self.ask_path.resolve():
            raise ValueError("bid_path and ask_path must be two different files")
        return self

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.bid_path, self.ask_path)


class TickQuotesConfig(_Config):
    """Bid and ask ticks in one file, with `bid_size` and `ask_size` columns or without.
    The policy has no default; `digits` as in `BarQuotesConfig`."""

    kind: Literal["ticks"] = "ticks"
    symbol: Symbol
    digits: Digits | None = None
    path: FilePath
    bad_quotes: BadQuotePolicy
    max_gap_minutes: GapMinutes = 5.0

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.path,)


QuoteSource = Annotated[BarQuotesConfig | TickQuotesConfig, Field(discriminator="kind")]


class QuoteFileError(InputFileError):
    """A file that cannot be read as quotes; the message reads `path:line: problem`."""


class DigitsError(ValueError):
    """A source whose declared digits the data contradicts; the message is one line."""


class BadQuotesError(ValueError):
    """Quotes that the declared policy will not replay; `report` says what was found."""

    def __init__(self, report: DataQualityReport, problem: str) -> None:
        self.report = report
        super().__init__(f"{report.symbol} ({' + '.join(report.files)}): {problem}")


IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class QuoteSeries:
    """One symbol's cleaned quotes, read through `quotes`, and the data-quality report.
    `time`, `bid`, `ask`: every quote at once (for tests: a long bridge takes gigabytes)."""

    symbol: str
    digits: int
    quotes: QuoteStore
    report: DataQualityReport

    @property
    def time(self) -> FloatArray:
        return self.quotes.arrays()[0]

    @property
    def bid(self) -> FloatArray:
        return self.quotes.arrays()[1]

    @property
    def ask(self) -> FloatArray:
        return self.quotes.arrays()[2]

    @property
    def sizes(self) -> tuple[FloatArray | None, FloatArray | None]:
        """The volumes quoted at bid and ask, for ticks whose file has them."""
        if isinstance(self.quotes, ArrayQuotes):
            return self.quotes.bid_size, self.quotes.ask_size
        return None, None


@dataclass(frozen=True, slots=True)
class _Table:
    """A file's rows: line numbers, times, prices (NaN where a field was empty), the most
    decimals a price was written with, and the optional columns if the file has them."""

    path: Path
    lines: IntArray
    time: FloatArray
    prices: FloatArray  # one column per price column asked for
    decimals: int
    extra: FloatArray | None = None


def load_quotes(
    source: BarQuotesConfig | TickQuotesConfig, week: FxWeek | None = None
) -> QuoteSeries:
    """Read, check and clean one source; gaps are measured against `week` (default FxWeek())."""
    week = week if week is not None else FxWeek()
    if isinstance(source, BarQuotesConfig):
        bid_bars = _read(source.bid_path, _BAR_COLUMNS)
        ask_bars = _read(source.ask_path, _BAR_COLUMNS)
        _check_aligned(bid_bars, ask_bars)
        digits = _digits(
            source, max(bid_bars.decimals, ask_bars.decimals), 2 * bid_bars.prices.size
        )
        if source.intra_bar == "close":
            bid, ask = bid_bars.prices[:, 3:], ask_bars.prices[:, 3:]
        else:
            bid, ask = anchors(bid_bars.prices, ask_bars.prices)
        return _clean(source, digits, bid_bars, bid, ask, source.intra_bar, week)
    rows = _read(source.path, _TICK_COLUMNS, _SIZE_COLUMNS)
    digits = _digits(source, rows.decimals, rows.prices.size)
    return _clean(source, digits, rows, rows.prices[:, :1], rows.prices[:, 1:], None, week)


# Prices on a grid of d digits end in a zero at the d-th decimal one time in ten: with this
# many prices and none using it, the grid is coarser than declared (p < 1e-100).
_ENOUGH_PRICES = 100


def _digits(source: BarQuotesConfig | TickQuotesConfig, in_data: int, prices: int) -> int:
    """The data's digits, or a DigitsError if the source declares others: fewer than the
    data needs, or more than enough prices ever use."""
    declared = source.digits
    if declared is None:
        return in_data
    if declared > in_data and prices < _ENOUGH_PRICES:
        return declared
    if declared != in_data:
        files = " + ".join(path.name for path in source.files)
        raise DigitsError(
            f"{source.symbol}: digits = {declared} contradicts the data: {files} give"
            f" prices to {in_data} decimals (a point of {10.0**-in_data:g}); declare"
            f" digits = {in_data} or leave it out"
        )
    return declared


def _read(path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()) -> _Table:
    text = read_text(path, "quote file", QuoteFileError)
    lines: list[int] = []
    times: list[float] = []
    prices: list[float] = []
    extra: list[float] = []
    decimals = 0
    with io.StringIO(text, newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader, [])]
            if not header:
                raise QuoteFileError(path, 1, "empty file: no header line")
            missing = [name for name in ("timestamp", *columns) if name not in header]
            if missing:
                raise QuoteFileError(
                    path,
                    1,
                    f"missing column(s) {', '.join(missing)}; the header is {','.join(header)}",
                )
            time_at = header.index("timestamp")
            price_at = [header.index(name) for name in columns]
            # Optional columns count only all together: sizes for one side are no depth.
            extra_at = (
                [header.index(name) for name in optional]
                if optional and all(name in header for name in optional)
                else []
            )
            for fields in reader:
                if not fields:
                    continue
                # The reader's own count stays a line number even past a quoted line break.
                line = reader.line_num
                if len(fields) != len(header):
                    raise QuoteFileError(
                        path, line, f"{len(fields)} fields, the header has {len(header)}"
                    )
                lines.append(line)
                times.append(_timestamp(path, line, fields[time_at].strip()))
                for name, at in zip(columns, price_at, strict=True):
                    text = fields[at].strip()
                    prices.append(_price(path, line, name, text))
                    decimals = max(decimals, _decimals(text))
                for name, at in zip(optional, extra_at, strict=False):
                    extra.append(_price(path, line, name, fields[at].strip()))
        except csv.Error as exc:
            raise QuoteFileError(path, reader.line_num, f"not valid CSV: {exc}") from None
        if not lines:
            raise QuoteFileError(path, reader.line_num + 1, "no data rows after the header")
    return _Table(
        path,
        np.array(lines, dtype=np.int64),
        np.array(times, dtype=np.float64),
        np.array(prices, dtype=np.float64).reshape(len(lines), len(columns)),
        decimals,
        np.array(extra, dtype=np.float64).reshape(len(lines), -1) if extra_at else None,
    )


def _timestamp(path: Path, line: int, text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise QuoteFileError(path, line, f"timestamp {text!r} is not ISO 8601") from None
    # A naive time could be any zone's: the replay would be shifted by hours, silently.
    if moment.tzinfo is None:
        raise QuoteFileError(path, line, f"timestamp {text!r} has no UTC offset")
    return moment.timestamp()


def _price(path: Path, line: int, column: str, text: str) -> float:
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise QuoteFileError(path, line, f"{column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise QuoteFileError(path, line, f"{column} {text!r} is not a finite price")
    if value > MAX_PRICE:
        raise QuoteFileError(path, line, f"{column} {text!r} is above any price ({MAX_PRICE:g})")
    return value


def _decimals(text: str) -> int:
    """Decimals a price needs: 5 in 1.32101, 3 in 1.32100, 0 in 86."""
    mantissa = text.lower().partition("e")[0]
    # Trailing zeros say nothing: 1.10020 and 1.1002 are one price on either grid.
    return len(mantissa.partition(".")[2].rstrip("0"))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _check_aligned(bid: _Table, ask: _Table) -> None:
    common = min(len(bid.time), len(ask.time))
    differ = np.flatnonzero(bid.time[:common] != ask.time[:common])
    if differ.size:
        i = int(differ[0])
        raise QuoteFileError(
            ask.path,
            int(ask.lines[i]),
            f"timestamp {_iso(ask.time[i])} differs from {bid.path.name} line"
            f" {bid.lines[i]} ({_iso(bid.time[i])}); bid and ask bars must share timestamps"
            " row by row",
        )
    if len(bid.time) != len(ask.time):
        longer = bid if len(bid.time) > len(ask.time) else ask
        raise QuoteFileError(
            longer.path,
            int(longer.lines[common]),
            f"{len(longer.time)} bars, but the other file has {common}; bid and ask bars must"
            " share timestamps row by row",
        )


def _problem(mask: BoolArray, lines: IntArray) -> ProblemRows:
    return ProblemRows(
        count=int(mask.sum()), rows=tuple(int(n) for n in lines[mask][:EXAMPLE_ROWS])
    )


def _duplicated_keep_last(times: FloatArray) -> BoolArray:
    """Rows whose timestamp a later row repeats."""
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    flagged = np.zeros(len(times), dtype=bool)
    flagged[order[:-1]] = ordered[:-1] == ordered[1:]
    return flagged


def _clean(
    source: BarQuotesConfig | TickQuotesConfig,
    digits: int,
    rows: _Table,
    bid: FloatArray,
    ask: FloatArray,
    intra_bar: IntraBarPath | None,
    week: FxWeek,
) -> QuoteSeries:
    """Judge the rows, apply the policy, and turn the rows into quotes.

    `bid` and `ask` hold one column per price of a row that is judged (a bar's closes, or
    its four anchors in path order; a tick's prices)."""
    lines, times = rows.lines, rows.time
    both = np.concatenate([bid, ask], axis=1)
    missing = np.isnan(both).any(axis=1)
    non_positive = (both <= 0.0).any(axis=1)
    earlier_max = np.maximum.accumulate(np.concatenate([[-np.inf], times[:-1]]))
    out_of_order = times < earlier_max
    duplicates = _duplicated_keep_last(times)
    crossed_quotes = ask < bid
    crossed = crossed_quotes.any(axis=1)

    policy = source.bad_quotes
    problems = {
        "crossed": _problem(crossed, lines),
        "missing": _problem(missing, lines),
        "non_positive": _problem(non_positive, lines),
        "duplicates": _problem(duplicates, lines),
        "out_of_order": _problem(out_of_order, lines),
    }

    def report(used_rows: int, quotes: int, gaps: GapReport | None) -> DataQualityReport:
        return DataQualityReport(
            symbol=source.symbol,
            files=tuple(path.name for path in source.files),
            policy=policy,
            intra_bar=intra_bar,
            rows_read=len(times),
            rows_used=used_rows,
            quotes_used=quotes,
            crossed_quotes=int(crossed_quotes.sum()),
            gaps=gaps,
            **problems,
        )

    keep_rows = ~(missing | non_positive | duplicates)
    if policy == "drop":
        keep_rows &= ~(out_of_order | crossed)
    elif policy == "repair":
        mid = np.round((bid + ask) / 2.0, digits)
        bid = np.where(crossed_quotes, mid, bid)
        ask = np.where(crossed_quotes, mid, ask)

    if policy == "refuse" and any(problem.count for problem in problems.values()):
        found = "; ".join(
            f"{name} {problem.describe()}" for name, problem in problems.items() if problem.count
        )
        raise BadQuotesError(report(0, 0, None), f"refused: {found}")

    # Drop leaves the kept rows in order already, so one stable sort serves both policies.
    order = np.flatnonzero(keep_rows)[np.argsort(times[keep_rows], kind="stable")]
    if not order.size:
        raise BadQuotesError(report(0, 0, None), f"no usable quote left under {policy!r}")
    sizes = rows.extra[order] if rows.extra is not None else None
    quotes: QuoteStore
    if intra_bar is None:
        quotes = ArrayQuotes(
            times[order],
            bid[order, 0],
            ask[order, 0],
            sizes[:, 0] if sizes is not None else None,
            sizes[:, 1] if sizes is not None else None,
        )
    else:
        _check_bar_spacing(rows.path, lines[order], times[order])
        if intra_bar == "close":
            quotes = ArrayQuotes(times[order] + BAR_SECONDS, bid[order, 0], ask[order, 0])
        else:
            assert isinstance(source, BarQuotesConfig)
            quotes = BridgePath(
                times[order], bid[order], ask[order], digits, source.bridge, source.seed
            )
    # A bridge fills each bar's minute, so its gaps are those between bars, which close at
    # their open + 60 s: measured on the bars, not on millions of ticks.
    ends = times[order] + BAR_SECONDS if intra_bar == "bridge" else quotes.arrays()[0]
    gaps = _gaps(ends, lines[order], source.max_gap_minutes, week)
    return QuoteSeries(
        symbol=source.symbol,
        digits=digits,
        quotes=quotes,
        report=report(len(order), quotes.count, gaps),
    )


def _check_bar_spacing(path: Path, lines: IntArray, times: FloatArray) -> None:
    close = np.flatnonzero(np.diff(times) < BAR_SECONDS)
    if close.size:
        i = int(close[0])
        raise QuoteFileError(
            path,
            int(lines[i + 1]),
            f"bar starts {times[i + 1] - times[i]:g} s after the bar at line {lines[i]};"
            f" one-minute bars must be at least {BAR_SECONDS:g} s apart",
        )


def _gaps(times: FloatArray, lines: IntArray, threshold_minutes: float, week: FxWeek) -> GapReport:
    quiet = (np.diff(times) - np.diff(week.closed_seconds_until(times))) / 60.0
    gap = np.concatenate([[False], quiet > threshold_minutes])
    return GapReport(
        threshold_minutes=threshold_minutes,
        count=int(gap.sum()),
        longest_minutes=float(quiet.max(initial=0.0)),
        rows=tuple(int(n) for n in lines[gap][:EXAMPLE_ROWS]),
    )
