"""Positions at the broker as the engine reads them: the open ones, their stops, and the deals
that closed those our orders opened.

- `positions()` reads `positions_get`: every position of the account, ours or not — a close
  decision may name any (a desk closes what a person opened too). A position's
  `client_order_id` is the tag of the order that opened it, read from its comment (MT5 gives
  a position the opening order's comment and magic), for positions of our magic only:
  another system's comment is not one of our tags, so it reads "".
- `set_protection()` sends TRADE_ACTION_SLTP and reads the position back; 10025 NO_CHANGES
  means the levels are already there, which is what was asked.
- `exits(since)` reads `history_deals_get` over a server-time window (positional dates, as
  reconciliation does) for deals that left a position (DEAL_ENTRY_OUT, DEAL_ENTRY_OUT_BY) of
  one our orders opened (the position's opening deal carries our magic), with DEAL_REASON
  telling a stop-loss (4), a take-profit (5) and a stop-out (6) from an order (MQL5
  reference, Deal Properties: ENUM_DEAL_REASON lists CLIENT, MOBILE, WEB, EXPERT, SL, TP, SO,
  ... in that order, from 0). The level that triggered is the server's comment on the deal,
  "[sl 1.08500]" or "[tp 1.09000]", which practitioners parse; without one, the closing
  order's price.

Tags come back as the server stored them, perhaps with a rewritten tail: a comment is read
as the tag this broker sent or looked up that shares its first `tag_match_chars`
characters, as reconciliation matches them (`TagMemory`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from brokers import mt5_codes as codes
from brokers.mt5.calls import record_time
from brokers.mt5.config import MT5Config
from brokers.mt5.requests import Requests, raise_for_retcode, send, ticket_of
from brokers.mt5.server_clock import ServerClock
from brokers.mt5.terminal import Terminal
from brokers.mt5_codes import Outcome
from engine.clock import Clock
from engine.core.instruments import SymbolSpec
from engine.core.ports import BrokerRejected, ExitReason, Position, PositionExit
from engine.schemas import Direction, ExecutionRejectionReason

R = ExecutionRejectionReason

# The trade server's comment on a deal its stop or target made: "[sl 1.08500]", "[tp 1.09]".
_LEVEL = re.compile(r"\[(sl|tp)\s+([0-9]+(?:\.[0-9]+)?)\]", re.IGNORECASE)
_LEADING_TAG = re.compile(r"[A-Za-z0-9]+")


class TagMemory:
    """Our tags by their first characters: how a stored comment is read back as our tag.

    One prefix may stand for several tags: a partial fill's child orders carry their
    parent's tag plus C<n>, the same on the first characters."""

    def __init__(self, config: MT5Config) -> None:
        self._chars = config.tag_match_chars
        self._tags: dict[str, list[str]] = {}

    def remember(self, tag: str) -> None:
        known = self._tags.setdefault(tag[: self._chars], [])
        if tag not in known:
            known.append(tag)

    def read(self, comment: str) -> str:
        """The tag a comment stands for: the longest known tag it holds whole (a server may
        add a suffix), else one known by its prefix (the parent's, when a cut comment
        cannot tell a parent from its children: either leads to the execution), or else the
        comment's leading letters and digits (a suffix a broker added is never ours)."""
        known = self._tags.get(comment[: self._chars], []) if len(comment) >= self._chars else []
        if known:
            whole = [tag for tag in known if comment.startswith(tag)]
            return max(whole, key=len) if whole else min(known, key=len)
        match = _LEADING_TAG.match(comment)
        return match.group(0) if match else ""


class Positions:
    """Open positions, their stops, and the exits of positions our orders opened."""

    def __init__(
        self,
        terminal: Terminal,
        config: MT5Config,
        server_clock: ServerClock,
        requests: Requests,
        tags: TagMemory,
        spec: Callable[[str], SymbolSpec],
        units: Callable[[Any, SymbolSpec], int],
        clock: Clock,
    ) -> None:
        """`spec(symbol)`: the engine symbol's contract; `units(volume, spec)`: lots read;
        `clock`: POSIX seconds, for the end of history windows."""
        self._terminal = terminal
        self._clock = clock
        self._config = config
        self._server_clock = server_clock
        self._requests = requests
        self._tags = tags
        self._spec = spec
        self._units = units

    # -- open positions ------------------------------------------------------------------------

    def positions(self, symbol: str | None = None) -> tuple[Position, ...]:
        query = self._terminal.query
        records = (
            query("positions_get", symbol=self._terminal.broker_symbol(symbol))
            if symbol is not None
            else query("positions_get")
        )
        read = [self._position(record) for record in records]
        return tuple(sorted(read, key=lambda p: (p.opened_at, int(p.position_id))))

    def _position(self, record: Mapping[str, Any]) -> Position:
        symbol = self._terminal.engine_symbol(str(record["symbol"]))
        sl, tp = float(record["sl"]), float(record["tp"])
        buy = int(record["type"]) == self._terminal.k.position_buy
        ours = int(record["magic"]) == self._config.magic
        return Position(
            position_id=str(int(record["ticket"])),
            symbol=symbol,
            direction=Direction.BUY if buy else Direction.SELL,
            units=self._units(record["volume"], self._spec(symbol)),
            open_price=float(record["price_open"]),
            opened_at=self._server_clock.utc(record_time(record)),
            stop_loss=sl or None,
            take_profit=tp or None,
            client_order_id=self._tags.read(str(record["comment"])) if ours else "",
        )

    def _open(self, ticket: int) -> Mapping[str, Any] | None:
        found = self._terminal.query("positions_get", ticket=ticket)
        return found[0] if found else None

    # -- stops -----------------------------------------------------------------------------------

    def set_protection(
        self, position_id: str, stop_loss: float | None, take_profit: float | None
    ) -> Position:
        ticket = ticket_of(position_id, "position")
        record = self._open(ticket)
        if record is None:
            raise BrokerRejected(R.NO_POSITION, f"no open position {ticket}", codes.POSITION_CLOSED)
        request = self._requests.protection(ticket, str(record["symbol"]), stop_loss, take_profit)
        retcode, result = send(self._terminal, request)
        if codes.outcome_of(retcode) is not Outcome.DONE and retcode != codes.NO_CHANGES:
            raise_for_retcode(retcode, result)
        changed = self._open(ticket)
        if changed is None:  # closed in between (its stop, a stop-out): no levels to show
            raise BrokerRejected(R.NO_POSITION, f"position {ticket} closed", codes.POSITION_CLOSED)
        return self._position(changed)

    # -- exits -------------------------------------------------------------------------------------

    def exits(self, since: float) -> tuple[PositionExit, ...]:
        """Exits since `since` (driver time), in time order."""
        window = self._window(since)
        openers: dict[int, Mapping[str, Any] | None] = {}
        found = []
        for deal in self._terminal.query("history_deals_get", *window):
            if int(deal["entry"]) not in self._terminal.k.exit_entries:
                continue
            time = self._server_clock.utc(record_time(deal))
            if time < since:
                continue
            identifier = int(deal["position_id"])
            if identifier not in openers:
                openers[identifier] = self._opener(identifier)
            opener = openers[identifier]
            if opener is None:  # not a position our orders opened
                continue
            found.append(self._exit(deal, opener, time))
        return tuple(sorted(found, key=lambda e: (e.time, int(e.deal_id))))

    def _window(self, since: float) -> tuple[datetime, datetime]:
        server, config = self._server_clock, self._config
        margin = (
            config.history_margin_seconds
            if server.learned
            else config.unlearnt_offset_margin_seconds
        )
        end = server.server(max(since, self._clock.now())) + config.history_padding_seconds
        return (
            datetime.fromtimestamp(server.server(since) - margin, UTC),
            datetime.fromtimestamp(end, UTC),
        )

    def _opener(self, identifier: int) -> Mapping[str, Any] | None:
        """The deal that opened the position — or, while the history still lacks it, the
        order that did (a position's identifier is its opening order's ticket) — if one of
        our orders made it: our magic."""
        k = self._terminal.k
        query = self._terminal.query
        opening = next(
            (
                deal
                for deal in query("history_deals_get", position=identifier)
                if int(deal["entry"]) not in k.exit_entries
            ),
            None,
        )
        if opening is None:
            orders = query("history_orders_get", ticket=identifier)
            opening = orders[0] if orders else None
        if opening is None or int(opening["magic"]) != self._config.magic:
            return None
        return opening

    def _exit(
        self, deal: Mapping[str, Any], opener: Mapping[str, Any], time: float
    ) -> PositionExit:
        k = self._terminal.k
        symbol = self._terminal.engine_symbol(str(deal["symbol"]))
        reason = {
            k.deal_reason_sl: ExitReason.STOP_LOSS,
            k.deal_reason_tp: ExitReason.TAKE_PROFIT,
            k.deal_reason_so: ExitReason.STOP_OUT,
        }.get(int(deal["reason"]), ExitReason.ORDER)
        return PositionExit(
            deal_id=str(int(deal["ticket"])),
            position_id=str(int(deal["position_id"])),
            client_order_id=self._tags.read(str(opener["comment"])),
            reason=reason,
            symbol=symbol,
            direction=Direction.BUY if int(deal["type"]) == k.deal_buy else Direction.SELL,
            units=self._units(deal["volume"], self._spec(symbol)),
            price=float(deal["price"]),
            level=self._level(deal) if reason in _TRIGGERED else None,
            time=time,
        )

    def _level(self, deal: Mapping[str, Any]) -> float | None:
        """The level that triggered: the server's "[sl 1.08500]" comment, or the price of
        the order the server made to close the position."""
        match = _LEVEL.search(str(deal["comment"]))
        if match is not None:
            return float(match.group(2))
        orders = self._terminal.query("history_orders_get", ticket=int(deal["order"]))
        price = float(orders[0]["price_open"]) if orders else 0.0
        return price or None


_TRIGGERED = (ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT)
