"""Real FX quotes from CSV files: reading, data-quality checks and a declared cleaning policy.

Two shapes are read. One-minute bars of the bid and of the ask, in two files whose rows carry
the same timestamps (`timestamp,open,high,low,close`; the timestamp is the bar's open), and
ticks (`timestamp,bid,ask`). Timestamps are ISO 8601 with a UTC offset; prices are decimal
strings. Further columns are ignored; blank lines are skipped.

A file that cannot be read as quotes raises `QuoteFileError` naming the file, the line and the
problem: a missing column, a row whose field count differs from the header's, a timestamp that
is not ISO 8601 or lacks its offset, a price that is not a finite number or is above
`MAX_PRICE`, bid and ask bars whose timestamps do not line up row by row, or bars less than a
minute apart. An empty price field is not a malformed file but a missing price: a
data-quality problem like the others.

Data-quality problems are counted in a `DataQualityReport`, judged on the rows as read, and
handled by the declared policy `bad_quotes`, never silently:

- crossed: a quote whose ask is below its bid. Bars are judged after their expansion into
  quotes (see `BAR_QUOTE_OFFSETS`), one bar being crossed if any of its four quotes is.
- missing / non_positive: a row with an empty or a zero or negative price on either side.
- duplicates: rows sharing their timestamp with a later row. The last row at an instant is
  taken as the quote at that instant, being the later update; the earlier ones are the problem.
- out_of_order: a row stamped earlier than some row above it.
- gaps: no quote for longer than `max_gap_minutes` of open market, as `FxWeek` defines it,
  so a weekend is no gap. Gaps are reported under every policy and never acted on: nothing
  can fill them honestly, and a market holds its last quote through them.

Policies:

- "refuse" raises `BadQuotesError` listing the first rows of each problem found.
- "drop" removes every problem row (for bars, a crossed quote, not its whole bar). An
  out-of-order row is the one stamped late, so it goes; note that a single row stamped far
  in the future would take every row below it along, which the report's counts make visible.
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
from sim.sessions import FxWeek
from sim.textfiles import InputFileError, read_text

BadQuotePolicy = Literal["drop", "repair", "refuse"]
IntraBarPath = Literal["OHLC", "OLHC", "bar-direction"]

# Where inside its minute each of a bar's four quotes is placed, in seconds after the bar's
# open: the open at once, the first extreme at +15 s, the second at +30 s, the close at +45 s.
# The close comes before the minute ends so that a sample taken at the close point sees the
# close, and it prevails for the last quarter of the minute until the next bar opens at +60 s.
BAR_QUOTE_OFFSETS = (0.0, 15.0, 30.0, 45.0)
BAR_SECONDS = 60.0
EXAMPLE_ROWS = 10
# No currency has traded above a billion units of another (the bolivar before its
# redenominations came nearest, in millions): a larger number is a corrupt field, and one
# near the float's limit would overflow the spreads measured from it.
MAX_PRICE = 1e9

_BAR_COLUMNS = ("open", "high", "low", "close")
_TICK_COLUMNS = ("bid", "ask")
# Column indices into (open, high, low, close) for the two orders of the extremes.
_HIGH_FIRST = np.array([0, 1, 2, 3])
_LOW_FIRST = np.array([0, 2, 1, 3])

Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN.pattern)]
Digits = Annotated[int, Field(ge=0, le=8)]
GapMinutes = Annotated[float, Field(gt=0.0)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BarQuotesConfig(_Config):
    """One-minute bid and ask bars in two files. The policy and the path have no default:
    both change what is replayed, so a caller declares them."""

    kind: Literal["bars"] = "bars"
    symbol: Symbol
    digits: Digits
    bid_path: FilePath
    ask_path: FilePath
    bad_quotes: BadQuotePolicy
    intra_bar: IntraBarPath
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
    """Bid and ask ticks in one file. The policy has no default; see `BarQuotesConfig`."""

    kind: Literal["ticks"] = "ticks"
    symbol: Symbol
    digits: Digits
    path: FilePath
    bad_quotes: BadQuotePolicy
    max_gap_minutes: GapMinutes = 5.0

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.path,)


QuoteSource = Annotated[BarQuotesConfig | TickQuotesConfig, Field(discriminator="kind")]


class ProblemRows(_Config):
    count: Annotated[int, Field(ge=0)] = 0
    rows: tuple[int, ...] = Field(
        default=(), description=f"the first {EXAMPLE_ROWS} line numbers with the problem"
    )

    def describe(self) -> str:
        if not self.count:
            return "0"
        more = ", ..." if self.count > len(self.rows) else ""
        return f"{self.count} (lines {', '.join(map(str, self.rows))}{more})"


class GapReport(_Config):
    threshold_minutes: float
    count: Annotated[int, Field(ge=0)]
    longest_minutes: float = Field(
        description="the longest stretch of open market without a quote, a gap or not"
    )
    rows: tuple[int, ...] = Field(
        description=f"line of the first quote after each of the first {EXAMPLE_ROWS} gaps"
    )


class DataQualityReport(_Config):
    """What was wrong with a source, judged on its rows as read, and what the policy did.

    `rows_used` counts rows of which at least one quote was kept; `quotes_used` counts the
    quotes replayed (four per bar, one per tick). `crossed` counts rows, `crossed_quotes` the
    crossed quotes within them. Printing the report gives a summary a person can read.
    """

    symbol: str
    files: tuple[str, ...]
    policy: BadQuotePolicy
    intra_bar: IntraBarPath | None
    rows_read: Annotated[int, Field(ge=0)]
    rows_used: Annotated[int, Field(ge=0)]
    quotes_used: Annotated[int, Field(ge=0)]
    crossed: ProblemRows
    crossed_quotes: Annotated[int, Field(ge=0)]
    missing: ProblemRows
    non_positive: ProblemRows
    duplicates: ProblemRows
    out_of_order: ProblemRows
    gaps: GapReport | None = Field(description="None when nothing is replayed to measure")

    def problems(self) -> dict[str, ProblemRows]:
        """The problems a policy acts on, by name."""
        return {
            "crossed": self.crossed,
            "missing": self.missing,
            "non_positive": self.non_positive,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
        }

    def __str__(self) -> str:
        lines = [
            f"{self.symbol}: {' + '.join(self.files)}",
            f"  policy {self.policy}"
            + (f", intra-bar path {self.intra_bar}" if self.intra_bar else ""),
            f"  rows read {self.rows_read}, used {self.rows_used}; quotes used {self.quotes_used}",
        ]
        for name, problem in self.problems().items():
            extra = f"; {self.crossed_quotes} crossed quotes in them" if name == "crossed" else ""
            lines.append(f"  {name:<13}{problem.describe()}{extra}")
        gaps = self.gaps
        if gaps is None:
            lines.append(f"  {'gaps':<13}not measured: nothing is replayed")
        else:
            found = ProblemRows(count=gaps.count, rows=gaps.rows).describe()
            lines.append(
                f"  {'gaps':<13}{found} longer than {gaps.threshold_minutes:g} min of open"
                f" market; longest quiet stretch {gaps.longest_minutes:.2f} min"
            )
        return "\n".join(lines)


class QuoteFileError(InputFileError):
    """A file that cannot be read as quotes; the message reads `path:line: problem`."""


class BadQuotesError(ValueError):
    """Quotes that the declared policy will not replay; `report` says what was found."""

    def __init__(self, report: DataQualityReport, problem: str) -> None:
        self.report = report
        super().__init__(f"{report.symbol} ({' + '.join(report.files)}): {problem}")


FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class QuoteSeries:
    """One symbol's cleaned quotes: times strictly increasing, POSIX seconds; read-only."""

    symbol: str
    digits: int
    time: FloatArray
    bid: FloatArray
    ask: FloatArray
    report: DataQualityReport


@dataclass(frozen=True, slots=True)
class _Table:
    """A file's rows: line numbers, times, and prices (NaN where a field was empty)."""

    path: Path
    lines: IntArray
    time: FloatArray
    prices: FloatArray  # one column per price column asked for


def load_quotes(
    source: BarQuotesConfig | TickQuotesConfig, week: FxWeek | None = None
) -> QuoteSeries:
    """Read, check and clean one source; gaps are measured against `week` (default FxWeek())."""
    week = week if week is not None else FxWeek()
    if isinstance(source, BarQuotesConfig):
        bid_bars = _read(source.bid_path, _BAR_COLUMNS)
        ask_bars = _read(source.ask_path, _BAR_COLUMNS)
        _check_aligned(bid_bars, ask_bars)
        bid, ask = _intra_bar_path(bid_bars.prices, ask_bars.prices, source.intra_bar)
        rows = bid_bars
        offsets = np.array(BAR_QUOTE_OFFSETS)
        intra_bar: IntraBarPath | None = source.intra_bar
    else:
        rows = _read(source.path, _TICK_COLUMNS)
        bid, ask = rows.prices[:, :1], rows.prices[:, 1:]
        offsets = np.zeros(1)
        intra_bar = None
    return _clean(source, rows, bid, ask, offsets, intra_bar, week)


def _read(path: Path, columns: tuple[str, ...]) -> _Table:
    text = read_text(path, "quote file", QuoteFileError)
    lines: list[int] = []
    times: list[float] = []
    prices: list[float] = []
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
                    prices.append(_price(path, line, name, fields[at].strip()))
        except csv.Error as exc:
            raise QuoteFileError(path, reader.line_num, f"not valid CSV: {exc}") from None
        if not lines:
            raise QuoteFileError(path, reader.line_num + 1, "no data rows after the header")
    return _Table(
        path,
        np.array(lines, dtype=np.int64),
        np.array(times, dtype=np.float64),
        np.array(prices, dtype=np.float64).reshape(len(lines), len(columns)),
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


def _intra_bar_path(
    bid: FloatArray, ask: FloatArray, order: IntraBarPath
) -> tuple[FloatArray, FloatArray]:
    """Reorder (open, high, low, close) columns into the declared order of quotes.

    "bar-direction" reads the direction from the mid, so that bid and ask, which may disagree
    on a flat bar, follow one path: a bar that closed at or above its open is taken to have
    made its low first, one that closed below to have made its high first.
    """
    if order == "OHLC":
        index = np.broadcast_to(_HIGH_FIRST, bid.shape)
    elif order == "OLHC":
        index = np.broadcast_to(_LOW_FIRST, bid.shape)
    else:
        rising = (bid[:, 3] + ask[:, 3]) >= (bid[:, 0] + ask[:, 0])
        index = np.where(rising[:, None], _LOW_FIRST, _HIGH_FIRST)
    return np.take_along_axis(bid, index, axis=1), np.take_along_axis(ask, index, axis=1)


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
    rows: _Table,
    bid: FloatArray,
    ask: FloatArray,
    offsets: FloatArray,
    intra_bar: IntraBarPath | None,
    week: FxWeek,
) -> QuoteSeries:
    """Judge the rows, apply the policy, and flatten the rows into quotes.

    `bid` and `ask` hold one column per quote of a row, in time order (four for a bar)."""
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

    def report(used: BoolArray, gaps: GapReport | None) -> DataQualityReport:
        return DataQualityReport(
            symbol=source.symbol,
            files=tuple(path.name for path in source.files),
            policy=policy,
            intra_bar=intra_bar,
            rows_read=len(times),
            rows_used=int(used.any(axis=1).sum()),
            quotes_used=int(used.sum()),
            crossed_quotes=int(crossed_quotes.sum()),
            gaps=gaps,
            **problems,
        )

    keep_rows = ~(missing | non_positive | duplicates)
    if policy == "drop":
        keep_rows &= ~out_of_order
    keep = np.repeat(keep_rows[:, None], bid.shape[1], axis=1)
    if policy == "drop":
        keep &= ~crossed_quotes
    elif policy == "repair":
        mid = np.round((bid + ask) / 2.0, source.digits)
        bid = np.where(crossed_quotes, mid, bid)
        ask = np.where(crossed_quotes, mid, ask)

    if policy == "refuse" and any(problem.count for problem in problems.values()):
        found = "; ".join(
            f"{name} {problem.describe()}" for name, problem in problems.items() if problem.count
        )
        raise BadQuotesError(report(np.zeros_like(keep), None), f"refused: {found}")

    # Drop leaves the kept rows in order already, so one stable sort serves both policies.
    order = np.flatnonzero(keep_rows)[np.argsort(times[keep_rows], kind="stable")]
    if len(offsets) > 1:
        _check_bar_spacing(rows.path, lines[order], times[order])
    kept = keep[order]
    quote_time = (times[order, None] + offsets[None, :])[kept]
    quote_lines = np.repeat(lines[order, None], len(offsets), axis=1)[kept]
    used = np.zeros_like(keep)
    used[order] = kept
    if not quote_time.size:
        raise BadQuotesError(report(used, None), f"no usable quote left under {policy!r}")
    return QuoteSeries(
        symbol=source.symbol,
        digits=source.digits,
        time=_frozen(quote_time),
        bid=_frozen(bid[order][kept]),
        ask=_frozen(ask[order][kept]),
        report=report(used, _gaps(quote_time, quote_lines, source.max_gap_minutes, week)),
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


def _frozen(values: FloatArray) -> FloatArray:
    values = np.ascontiguousarray(values, dtype=np.float64)
    values.setflags(write=False)
    return values


def _gaps(times: FloatArray, lines: IntArray, threshold_minutes: float, week: FxWeek) -> GapReport:
    quiet = (np.diff(times) - np.diff(week.closed_seconds_until(times))) / 60.0
    gap = np.concatenate([[False], quiet > threshold_minutes])
    return GapReport(
        threshold_minutes=threshold_minutes,
        count=int(gap.sum()),
        longest_minutes=float(quiet.max(initial=0.0)),
        rows=tuple(int(n) for n in lines[gap][:EXAMPLE_ROWS]),
    )
