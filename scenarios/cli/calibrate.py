"""`arbitrex calibrate`: fit the synthetic market to recorded quotes, write it as a scenario's
`[market]`, and print the stylized-facts report of the data beside a simulated month."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from engine.schemas import SYMBOL_PATTERN
from scenarios.analysis.stylized import (
    Check,
    StylizedFacts,
    compare,
    join_minutes,
    minute_quotes,
    stylized_facts,
)
from scenarios.cli.common import console, fail
from scenarios.limits import MAX_SEED
from scenarios.market_file import MarketFileError, market_toml
from sim.quotes_csv import (
    BadQuotePolicy,
    BarQuotesConfig,
    QuoteSeries,
    TickQuotesConfig,
    load_quotes,
)
from sim.sessions import WEEK
from sim.textfiles import InputFileError, read_text, require_file

# Which rows decide a file's digits: enough to meet a price whose last digit is not zero.
DIGITS_SAMPLE_ROWS = 1_000
_SYMBOL_IN_NAME = re.compile(r"^([A-Za-z]{6})(?![A-Za-z])")
_SIDE_IN_NAME = re.compile(r"(?<![A-Za-z])(bid|ask)(?![A-Za-z])", re.IGNORECASE)
_MONDAY_OFFSET = 3 * 86_400.0  # the epoch fell on a Thursday


@dataclass(frozen=True, slots=True)
class Joined:
    """One symbol's quotes from several files, as the fit reads them (`Quotes`)."""

    symbol: str
    digits: int
    time: np.ndarray
    bid: np.ndarray
    ask: np.ndarray


def calibrate(
    data: Annotated[
        list[Path],
        typer.Argument(
            help="Quote files: tick files (timestamp,bid,ask), or bar files in bid/ask pairs"
            " named alike but for 'bid' and 'ask' (timestamp,open,high,low,close)"
        ),
    ],
    out: Annotated[Path, typer.Option(help="The market file to write (TOML)")],
    symbol: Annotated[
        str | None, typer.Option(help="The symbol; default: the file name's first six letters")
    ] = None,
    digits: Annotated[
        int | None, typer.Option(min=0, max=8, help="Price digits; default: read from the data")
    ] = None,
    bad_quotes: Annotated[
        str, typer.Option(help="Crossed and bad quotes: repair, drop or refuse")
    ] = "repair",
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the simulation")] = 1,
    days: Annotated[
        float, typer.Option(min=1.0, max=366.0, help="Days of market to simulate")
    ] = 30.0,
    check: Annotated[
        bool, typer.Option(help="Exit 1 when the simulation misses a target of the report")
    ] = False,
) -> None:
    """Fit the synthetic market to quotes and write it as a scenario's market section
    (--out); print the stylized facts of the data beside a simulated month."""
    if symbol is not None and not SYMBOL_PATTERN.match(symbol):
        raise typer.BadParameter(
            f"{symbol!r}: six capital letters, e.g. GBPUSD", param_hint="--symbol"
        )
    if bad_quotes not in ("repair", "drop", "refuse"):
        raise typer.BadParameter(
            f"{bad_quotes!r}: use repair, drop or refuse", param_hint="--bad-quotes"
        )
    try:
        series = _load(data, symbol, digits, bad_quotes)  # type: ignore[arg-type]
    except (ValueError, ValidationError) as error:  # InputFileError and BadQuotesError too
        fail(2, error)
    from sim.calibration import fit_market, simulate  # numpy-heavy fitting loads on use

    joined = _join(series)
    try:
        config = fit_market(joined)
        text = market_toml(config, _provenance(data, joined, seed))
    except (ValueError, MarketFileError) as error:
        fail(2, error)
    data_facts = stylized_facts(join_minutes([minute_quotes(s) for s in series]))
    # The simulation starts on the Monday of the data's first week, so its calendar (daylight
    # saving, the hour of the roll) is the data's.
    start = float(joined.time[0] - (joined.time[0] + _MONDAY_OFFSET) % WEEK)
    simulated = simulate(config, seed, days, symbol=joined.symbol, start=start)
    sim_facts = stylized_facts(minute_quotes(simulated))
    checks = compare(data_facts, sim_facts)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print_report(data_facts, sim_facts, checks, f"simulated {days:g} days, seed {seed}")
    console.print(f"market written to {out}", soft_wrap=True)
    if check and not all(c.passed is not False for c in checks):
        raise typer.Exit(1)


def print_report(
    data: StylizedFacts, simulated: StylizedFacts, checks: tuple[Check, ...], title: str
) -> None:
    """The stylized-facts report: data and simulation side by side, then the hourly profile."""
    table = Table(title=f"stylized facts of {data.symbol}: data vs {title}")
    for column in ("fact", "data", "simulated", "target", "result"):
        table.add_column(column, justify="left" if column == "fact" else "right")
    for c in checks:
        verdict = {True: Text("pass", "green"), False: Text("FAIL", "red"), None: Text("-")}
        table.add_row(c.fact, _num(c.data), _num(c.simulated), c.target, verdict[c.passed])
    console.print(table)
    console.print(
        f"data: {data.minutes} minutes, {data.returns} one-minute returns, reopen gaps "
        f"{_pips(data.reopen_gaps_pips)}; simulated: {simulated.minutes} minutes, "
        f"{simulated.returns} returns, reopen gaps {_pips(simulated.reopen_gaps_pips)}",
        soft_wrap=True,
    )
    hourly = Table(title="by UTC hour: median spread and 1-minute volatility (pips)")
    for column in ("hour", "spread data", "spread sim", "vol data", "vol sim"):
        hourly.add_column(column, justify="right")
    for hour in range(24):
        hourly.add_row(
            f"{hour:02d}",
            _num(data.hourly_spread_pips[hour]),
            _num(simulated.hourly_spread_pips[hour]),
            _num(data.hourly_volatility_pips[hour]),
            _num(simulated.hourly_volatility_pips[hour]),
        )
    console.print(hourly)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pips(gaps: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{g:+.1f}" for g in gaps) + "] pips"


def _provenance(files: list[Path], joined: Joined, seed: int) -> list[str]:
    first, last = (datetime.fromtimestamp(float(t), UTC) for t in joined.time[[0, -1]])
    return [
        f"{joined.symbol} market fitted by `arbitrex calibrate` (seed {seed}) from",
        *(f"  {path.name}" for path in files),
        f"quotes {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC;"
        " use it as a scenario's [market] section.",
    ]


def _load(
    paths: list[Path], symbol: str | None, digits: int | None, policy: BadQuotePolicy
) -> list[QuoteSeries]:
    """Every source named on the command line, read and cleaned by the project's loader."""
    sources: list[BarQuotesConfig | TickQuotesConfig] = []
    bars: dict[str, dict[str, Path]] = {}
    for path in paths:
        require_file(path, "quote file")
        header = _header(path)
        name = _symbol(path, symbol)
        n = digits if digits is not None else _digits(path)
        if {"bid", "ask"} <= set(header):
            sources.append(TickQuotesConfig(symbol=name, digits=n, path=path, bad_quotes=policy))
        elif {"open", "high", "low", "close"} <= set(header):
            side = _SIDE_IN_NAME.findall(path.name)
            if len(side) != 1:
                raise InputFileError(path, None, "a bar file's name must say 'bid' or 'ask' (once)")
            partner = _SIDE_IN_NAME.sub("{}", path.name)
            bars.setdefault(str(path.parent / partner), {})[side[0].lower()] = path
        else:
            raise InputFileError(
                path, 1, "neither ticks (timestamp,bid,ask) nor bars (timestamp,open,high,..)"
            )
    for pattern, pair in bars.items():
        if set(pair) != {"bid", "ask"}:
            have = next(iter(pair.values()))
            missing = pattern.format("ask" if "bid" in pair else "bid")
            raise InputFileError(have, None, f"its {Path(missing).name} is not among the data")
        sources.append(
            BarQuotesConfig(
                symbol=_symbol(pair["bid"], symbol),
                digits=digits if digits is not None else _digits(pair["bid"]),
                bid_path=pair["bid"],
                ask_path=pair["ask"],
                bad_quotes=policy,
                # The minute's quote is its close, which every intra-bar path ends on.
                intra_bar="close",
            )
        )
    loaded = [load_quotes(source) for source in sources]
    if len({s.symbol for s in loaded}) > 1:
        raise ValueError("the data holds several symbols; calibrate one symbol at a time")
    if len({s.digits for s in loaded}) > 1:
        raise ValueError("the files disagree on the symbol's digits; give --digits")
    return loaded


def _header(path: Path) -> list[str]:
    text = read_text(path, "quote file")
    first = next(csv.reader(io.StringIO(text[: text.find("\n") + 1 or None])), [])
    return [name.strip() for name in first]


def _symbol(path: Path, given: str | None) -> str:
    if given is not None:
        return given
    found = _SYMBOL_IN_NAME.match(path.name)
    if found is None:
        raise InputFileError(path, None, "no symbol in the file's name: give --symbol")
    return found.group(1).upper()


def _digits(path: Path) -> int:
    """The most decimals any price of the first rows carries: a file of 5-digit quotes has
    some price whose fifth decimal is not 0, and none with a sixth."""
    reader = csv.reader(io.StringIO(read_text(path, "quote file")))
    header = [name.strip() for name in next(reader, [])]
    prices = [i for i, name in enumerate(header) if name in ("open", "high", "low", "close")]
    prices = prices or [i for i, name in enumerate(header) if name in ("bid", "ask")]
    most = 0
    for row, fields in enumerate(reader):
        if row >= DIGITS_SAMPLE_ROWS:
            break
        for i in prices:
            if i < len(fields) and "." in fields[i]:
                most = max(most, len(fields[i].strip().split(".", 1)[1]))
    return most


def _join(series: list[QuoteSeries]) -> Joined:
    time = np.concatenate([s.time for s in series])
    order = np.argsort(time, kind="stable")
    return Joined(
        symbol=series[0].symbol,
        digits=series[0].digits,
        time=time[order],
        bid=np.concatenate([s.bid for s in series])[order],
        ask=np.concatenate([s.ask for s in series])[order],
    )
