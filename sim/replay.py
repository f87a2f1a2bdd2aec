"""A market that replays recorded quotes, duck-typed like `sim.market.SyntheticMarket`.

Each symbol's quotes are loaded and cleaned by `sim.quotes_csv` under a declared policy and
read through a `sim.quote_store.QuoteStore`: recorded quotes in read-only arrays, the data's
own size; a path between bars drawn a chunk at a time (`sim.bars.BridgePath`), so memory
stays bounded however long the file. A look-up is a binary search; a quote becomes a Python
object only when asked for.

At t the market returns the latest quote at or before t, stamped with its own time, so a
caller can see how old it is; before a symbol's first quote it returns None. While the week
is closed the search stops at the close: the last quote before it stays and goes stale, as
at a broker. Once the market has reopened, a quote from before the closure is no price at
all: until the first quote after the reopening arrives the market returns None, so the
venue refuses (MT5 10021, PRICE_OFF) instead of filling on Friday's price, and the engine
finds no market data. Data reopen later than the calendar's 22:00 (the GBP/USD sample's
first Sunday quote comes at 22:00 or a few minutes after, the thin ones later still).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import numpy as np

from engine.core.instruments import pip_size
from engine.schemas import MarketSnapshot
from sim.market import SymbolConfig
from sim.quote_store import Quote
from sim.quotes_csv import QuoteSeries, QuoteSource, load_quotes
from sim.sessions import FxWeek


def _symbol_config(series: QuoteSeries) -> SymbolConfig:
    """Digits from the source, the first quote's mid, and the data's median spread.

    The spread is filled in so that the config describes the replayed symbol rather than
    carrying the synthetic model's default; the other synthetic-model fields keep theirs."""
    point = 10.0**-series.digits
    spreads = series.quotes.typical_spreads() / pip_size(series.digits, point)
    first = series.quotes.first
    return SymbolConfig(
        symbol=series.symbol,
        digits=series.digits,
        start_mid=(first.bid + first.ask) / 2.0,
        spread_pips=round(max(float(np.median(spreads)), 0.0), 2),
    )


def _snapshot(symbol: str, quote: Quote) -> MarketSnapshot:
    """A recorded or generated quote, with the volume quoted at each side if the file had
    it. Valid by construction: the loader kept only positive, uncrossed prices."""
    return MarketSnapshot.model_construct(
        symbol=symbol,
        bid=quote.bid,
        ask=quote.ask,
        time=quote.time,
        bid_depth_units=quote.bid_size,
        ask_depth_units=quote.ask_size,
    )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _holiday_start(day: date) -> float:
    """The closure of a holiday's trading day begins at 22:00 UTC the evening before."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() - 7_200.0


class ReplayMarket:
    def __init__(self, sources: Sequence[QuoteSource], week: FxWeek | None = None) -> None:
        """Load every source, measuring gaps against `week` (default FxWeek()).

        Raises QuoteFileError for a malformed file and BadQuotesError for quotes its policy
        refuses; two sources for one symbol, or none at all, are a ValueError."""
        if not sources:
            raise ValueError("a replay needs at least one quote source")
        self.week = week if week is not None else FxWeek()
        self._series: dict[str, QuoteSeries] = {}
        for source in sources:
            if source.symbol in self._series:
                raise ValueError(f"two quote sources for {source.symbol}")
            self._series[source.symbol] = load_quotes(source, self.week)
        self._configs = {symbol: _symbol_config(s) for symbol, s in self._series.items()}

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._series)

    @property
    def start(self) -> float:
        """The time of the earliest quote of any symbol."""
        return min(s.quotes.first.time for s in self._series.values())

    @property
    def end(self) -> float:
        """The time of the latest quote of any symbol."""
        return max(s.quotes.last.time for s in self._series.values())

    def series(self, symbol: str) -> QuoteSeries:
        """The cleaned quotes and their data-quality report; KeyError for an unknown symbol."""
        return self._series[symbol]

    def symbol_config(self, symbol: str) -> SymbolConfig | None:
        return self._configs.get(symbol)

    def is_open(self, t: float) -> bool:
        return self.week.is_open(t)

    def volatility(self, t: float) -> float:
        """Replayed prices carry their own volatility; latency is not scaled on top of it."""
        return 1.0

    def quote(self, symbol: str, t: float) -> MarketSnapshot | None:
        """The quote prevailing at t, with its own time; None before the first or if unknown."""
        series = self._series.get(symbol)
        if series is None:
            return None
        effective = self.week.last_open_instant(t)
        quote = series.quotes.latest(effective)
        if quote is None or self.closed_between(quote.time, effective):
            return None
        return _snapshot(symbol, quote)

    def closed_between(self, t0: float, t1: float) -> bool:
        """Whether the market closed (a weekend or a holiday) at some moment in (t0, t1]:
        a quote from t0 is then from before the reopening, no price at t1."""
        week = self.week
        if t1 <= t0:
            return False
        weekends = week.closed_seconds_until(np.array([t0, t1]))
        if weekends[1] > weekends[0]:
            return True
        # Holidays are whole trading days (22:00 the day before to 22:00): one starts or
        # is in force in (t0, t1] only if its closure meets that span.
        return any(
            (start := _holiday_start(day)) < t1 and start + 86_400.0 > t0 for day in week.holidays
        )

    def quotes_between(self, symbol: str, t0: float, t1: float) -> Iterator[MarketSnapshot]:
        """The recorded quotes stamped in (t0, t1], oldest first (none while closed)."""
        series = self._series.get(symbol)
        if series is None:
            return
        week = self.week
        for quote in series.quotes.between(week.last_open_instant(t0), week.last_open_instant(t1)):
            yield _snapshot(symbol, quote)

    def liquidity(self, symbol: str, t: float) -> float:
        """All of it: replayed depth is what the data quoted (tick sizes), not a model."""
        return 1.0

    def no_quote_reason(self, symbol: str, t: float) -> str:
        series = self._series.get(symbol)
        if series is None:
            return f"no quote for {symbol}: not a symbol of this replay"
        latest = series.quotes.latest(self.week.last_open_instant(t))
        if latest is None:
            first = _iso(series.quotes.first.time)
            return f"no quote for {symbol} yet: the data's first is at {first}"
        # The broker would otherwise fill on a price from before the weekend or holiday.
        return (
            f"no fresh quote for {symbol} since the market reopened: the last one, at"
            f" {_iso(latest.time)}, is from before the closure"
        )

    def mid(self, symbol: str, t: float) -> float:
        snapshot = self.quote(symbol, t)
        if snapshot is None:
            raise KeyError(self.no_quote_reason(symbol, t))
        return snapshot.mid
