"""The live MetaTrader 5 broker: the broker port over an injected MetaTrader5-like module.

The module is whatever offers MetaTrader5's functions and constants: `import MetaTrader5`
on Windows, the `mt5linux` bridge to a terminal under Wine, or the emulator in
`sim.mt5`. It is imported lazily (`load_mt5_module`), never at import time.

What the terminal demands of a careful client (mt5-reference.md):
- one call at a time: every call goes through one lock, and a refusal's `last_error()` is
  read under the same hold, before another thread's call can overwrite it;
- results read by field name, converted to plain dicts under the lock, so named tuples and
  a bridge's proxies read alike;
- orders tagged with a fixed `magic` per system and our client order id in `comment`, so a
  lost reply is reconciled by looking the tag up in orders, positions and history;
- every answer classified (brokers/mt5_codes.py): done, resend-safe, outcome unknown, final.
  Only what provably never reached the terminal is `RequestNotSent`; a request that may
  have executed is `OutcomeUnknown`, and the engine reconciles it before any resend.
Credentials are passed through to the terminal and never kept, logged or put in a message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

from brokers import mt5_codes as codes
from brokers.mt5.calls import record_time
from brokers.mt5.config import MT5Config
from brokers.mt5.loading import (
    MT5Credentials,
    load_mt5_module,
)
from brokers.mt5.positions import Positions, TagMemory
from brokers.mt5.requests import (
    SYMBOL_ORDER_SL,
    SYMBOL_ORDER_TP,
    Requests,
    raise_for_retcode,
    send,
    ticket_of,
)
from brokers.mt5.server_clock import ServerClock, ServerTime
from brokers.mt5.terminal import Terminal, raise_if_unreachable
from brokers.mt5.ticks import TickTape
from brokers.mt5_codes import Outcome
from engine.clock import Clock, WallClock
from engine.core.instruments import (
    SymbolSpec,
    TradeMode,
    VolumeError,
    lots_to_units,
)
from engine.core.ports import (
    AccountState,
    BrokerFill,
    BrokerInterface,
    BrokerOrderState,
    BrokerRejected,
    OrderReport,
    OrderRequest,
    OutcomeUnknown,
    Position,
    PositionExit,
    RequestNotSent,
)
from engine.schemas import Direction, ExecutionRejectionReason, MarketSnapshot
from engine.store.quotes import QuoteSample

log = logging.getLogger(__name__)
R = ExecutionRejectionReason


class MT5Broker(BrokerInterface):
    def __init__(
        self,
        mt5: Any,
        config: MT5Config | None = None,
        *,
        clock: Clock | None = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        """`mt5`: the module, or any object with its functions and constants. `clock`:
        POSIX seconds, for history windows. `lock`: shared by every call into `mt5`."""
        self.config = config or MT5Config()
        self._clock: Clock = clock if clock is not None else WallClock()
        self._terminal = Terminal(mt5, self.config, self._clock, lock)
        self._specs: dict[str, SymbolSpec] = {}
        self._server_clock = ServerClock(
            ServerTime(self.config.server_time_zone, self.config.server_time_offset_seconds),
            self.config.server_offset_tolerance_seconds,
            self.config.learn_server_offset,
        )
        self._requests = Requests(self._terminal, self.config, self._server_clock)
        clock, quote = self._clock, self.market_snapshot
        self._ticks = TickTape(self._terminal, self._server_clock, clock, quote)
        self._tags = TagMemory(self.config)
        self._positions = Positions(
            self._terminal,
            self.config,
            self._server_clock,
            self._requests,
            self._tags,
            self._contract_spec,
            self._units,
            self._clock,
        )

    def __repr__(self) -> str:
        return f"MT5Broker(magic={self.config.magic})"

    # -- opening and closing the terminal ------------------------------------------------

    @classmethod
    def connect(
        cls,
        credentials: MT5Credentials | None = None,
        config: MT5Config | None = None,
        *,
        kind: Literal["native", "bridge"] = "native",
        host: str = "localhost",
        port: int = 18812,
    ) -> MT5Broker:
        """Load the module, open the terminal and log in (credentials default to MT5_*
        environment variables)."""
        broker = cls(load_mt5_module(kind, host, port), config)
        broker.start(credentials if credentials is not None else MT5Credentials.from_env())
        return broker

    def start(self, credentials: MT5Credentials | None = None) -> None:
        """Open the terminal, then log in when credentials are given (else the terminal's
        current account is used)."""
        self._terminal.start(credentials)

    def close(self) -> None:
        self._terminal.close()

    # -- market data and the account -------------------------------------------------------

    def _symbol_info(self, symbol: str) -> dict[str, Any] | None:
        name = self._terminal.broker_symbol(symbol)
        info, error = self._terminal.call("symbol_info", name)
        if error is not None:
            raise_if_unreachable(error, "symbol_info")
            return None
        if not info["visible"]:  # quotes come only for symbols in the Market Watch
            _, error = self._terminal.call("symbol_select", name, True)
            if error is not None:
                raise_if_unreachable(error, "symbol_select")
        return info

    def _spec_from(self, symbol: str, info: Mapping[str, Any]) -> SymbolSpec:
        contract = float(info["trade_contract_size"])
        if contract != int(contract):
            raise BrokerRejected(
                R.SYMBOL_NOT_TRADABLE, f"{symbol} contract size {contract} is not whole units"
            )
        try:
            mode = TradeMode(int(info["trade_mode"]))
        except ValueError:
            mode = TradeMode.DISABLED  # a mode this kit does not know is not one to trade in
        spec = SymbolSpec(
            symbol=symbol,
            digits=int(info["digits"]),
            point=float(info["point"]),
            contract_size=int(contract),
            volume_min=float(info["volume_min"]),
            volume_max=float(info["volume_max"]),
            volume_step=float(info["volume_step"]),
            trade_mode=mode,
            stops_level_points=int(info["trade_stops_level"]),
            freeze_level_points=int(info["trade_freeze_level"]),
            # Where the symbol's order_mode lacks them, an order may not carry its stops:
            # the engine sets them on the position after the fill (TRADE_ACTION_SLTP).
            stops_on_order=int(info["order_mode"]) & (SYMBOL_ORDER_SL | SYMBOL_ORDER_TP)
            == SYMBOL_ORDER_SL | SYMBOL_ORDER_TP,
        )
        self._specs[symbol] = spec
        return spec

    def symbol_spec(self, symbol: str) -> SymbolSpec | None:
        info = self._symbol_info(symbol)
        return self._spec_from(symbol, info) if info is not None else None

    def market_snapshot(self, symbol: str) -> MarketSnapshot | None:
        """The latest tick; its time (server time, made UTC) lets the engine judge whether
        the market is open, as MT5 has no session-time function."""
        tick, error = self._terminal.call("symbol_info_tick", self._terminal.broker_symbol(symbol))
        if error is not None:
            raise_if_unreachable(error, "symbol_info_tick")
        if tick is None:  # a symbol out of the Market Watch has no tick until selected
            info = self._symbol_info(symbol)
            if info is None:
                return None
            tick, _ = self._terminal.call("symbol_info_tick", self._terminal.broker_symbol(symbol))
        quote = tick if tick is not None and tick["bid"] > 0 and tick["ask"] > 0 else None
        if quote is not None:
            self._server_clock.observe(symbol, record_time(quote), self._clock.now())
        else:
            info = self._symbol_info(symbol)
            if info is None or info["bid"] <= 0 or info["ask"] <= 0:
                return None
            quote = info
        return MarketSnapshot(
            symbol=symbol,
            bid=float(quote["bid"]),
            ask=float(quote["ask"]),
            time=self._server_clock.utc(record_time(quote)),
        )

    def quote_samples(self, symbol: str, start: float, end: float) -> list[QuoteSample]:
        """The terminal's ticks of [start, end) (POSIX seconds, UTC), the last of each second
        (brokers/mt5/ticks.py). A symbol the broker does not list is refused."""
        if self._symbol_info(symbol) is None:  # selected into the Market Watch if need be
            raise BrokerRejected(R.SYMBOL_NOT_TRADABLE, f"the terminal does not list {symbol}")
        return self._ticks.samples(symbol, start, end)

    def learn_server_offset(self, symbols: Sequence[str], patience_seconds: float = 5.0) -> bool:
        """Watch the symbols' quotes (at most `patience_seconds`) until a fresh tick shows the
        trade server's offset from UTC; whether it is known (else the configured one holds)."""
        return self._ticks.learn_server_offset(symbols, patience_seconds)

    def account(self) -> AccountState:
        info, error = self._terminal.call("account_info")
        if error is not None:
            raise RequestNotSent(f"account_info failed: {error}")
        return AccountState(
            currency=str(info["currency"]),
            balance=float(info["balance"]),
            equity=float(info["equity"]),
            margin_used=float(info["margin"]),
            free_margin=float(info["margin_free"]),
            leverage=int(info["leverage"]),
            hedging=int(info["margin_mode"]) == self._terminal.k.hedging,
        )

    def margin_required(
        self, symbol: str, direction: Direction, lots: float, price: float
    ) -> float:
        order_type = self._side(direction)
        margin, error = self._terminal.call(
            "order_calc_margin",
            order_type,
            self._terminal.broker_symbol(symbol),
            float(lots),
            float(price),
        )
        if error is not None:
            raise_if_unreachable(error, "order_calc_margin")
            raise BrokerRejected(R.BROKER_REJECTED, f"order_calc_margin refused: {error}")
        return float(margin)

    def is_connected(self) -> bool:
        """Connected to the trade server, on our account, every trading switch on (else
        every order is refused)."""
        return self._terminal.may_trade()

    # -- orders ------------------------------------------------------------------------------

    def place_order(self, order: OrderRequest) -> OrderReport:
        self._terminal.ensure_may_trade()
        request = self._order_request(order)
        self._preflight(request)
        log.info(
            "order_send %s %s %s %s lots, tag %s",
            order.symbol,
            order.order_type.value,
            order.direction.name,
            request["volume"],
            order.client_order_id,
        )
        retcode, result = send(self._terminal, request)
        outcome = codes.outcome_of(retcode)
        log.info("order_send tag %s: retcode %s (%s)", order.client_order_id, retcode, outcome)
        if outcome in (Outcome.DONE, Outcome.PARTIAL):
            ticket = int(result["order"])
            if ticket <= 0:
                raise OutcomeUnknown(f"retcode {retcode} without an order ticket")
            return self._report_after_send(ticket, order)
        raise_for_retcode(retcode, result)

    def _side(self, direction: Direction) -> int:
        return self._terminal.k.buy if direction is Direction.BUY else self._terminal.k.sell

    def _preflight(self, request: Mapping[str, Any]) -> None:
        """order_check first: what the terminal already knows the server would refuse
        (margin, volume, filling, market closed) is refused here, final, and never sent."""
        check, error = self._terminal.call("order_check", dict(request))
        if error is not None:
            raise_if_unreachable(error, "order_check")
            raise BrokerRejected(R.BROKER_REJECTED, f"order_check refused: {error}", error.code)
        retcode = int(check["retcode"])
        if retcode != 0:
            comment = str(check.get("comment") or codes.describe(retcode))
            raise BrokerRejected(codes.reason_for(retcode), f"order_check: {comment}", retcode)

    def _order_request(self, order: OrderRequest) -> dict[str, Any]:
        """The request dict for the order (brokers/mt5/requests.py). A reduce-only order
        that names no position names the symbol's one (netting): MT5 then closes or reduces
        it and never goes through zero (10038 for more than it holds)."""
        info = self._symbol_info(order.symbol)
        if info is None:
            raise BrokerRejected(
                R.SYMBOL_NOT_TRADABLE, f"the terminal does not list {order.symbol}"
            )
        spec = self._spec_from(order.symbol, info)
        if order.reduce_only and order.position_id is None:
            order = replace(order, position_id=self._only_position(order.symbol))
        request = self._requests.order(order, info, spec)
        self._tags.remember(order.client_order_id)
        return request

    def _only_position(self, symbol: str) -> str:
        held = self._positions.positions(symbol)
        if not held:
            raise BrokerRejected(
                R.NO_POSITION, f"no {symbol} position to reduce", codes.POSITION_CLOSED
            )
        if len(held) > 1:
            raise BrokerRejected(
                R.POSITION_MISMATCH,
                f"{len(held)} {symbol} positions (a hedging account): a reduce must name one",
            )
        return held[0].position_id

    def _report_after_send(self, ticket: int, order: OrderRequest) -> OrderReport:
        """The order as the terminal's history shows it once the send is done. The order is
        out: a failed look-up must not read as 'not sent', so it yields a working report
        that the engine polls until the history shows the deals."""
        try:
            report = self._lookup(ticket, order.client_order_id)
        except (RequestNotSent, OutcomeUnknown) as unreadable:
            log.warning("order %s sent, its history unreadable for now: %s", ticket, unreadable)
            report = None
        return report or OrderReport(
            str(ticket), order.client_order_id, BrokerOrderState.WORKING, order.units
        )

    def order_status(self, order_id: str) -> OrderReport:
        ticket = ticket_of(order_id)
        report = self._lookup(ticket, None)
        if report is None:
            raise OutcomeUnknown(f"order {ticket} is not in the terminal's orders or history yet")
        return report

    def cancel_order(self, order_id: str) -> OrderReport:
        """Remove a working order; one already done just reports how it ended."""
        ticket = ticket_of(order_id)
        if self._terminal.query("orders_get", ticket=ticket):
            retcode, result = send(self._terminal, self._requests.removal(ticket))
            if codes.outcome_of(retcode) is not Outcome.DONE:
                raise_for_retcode(retcode, result)
        return self.order_status(order_id)

    def find_order(
        self,
        client_order_id: str,
        sent_at: float | None = None,
        known_order_ids: Sequence[str] = (),
    ) -> OrderReport | None:
        """Our order by its tag: in open orders, positions, and the history of orders and
        deals since it was sent. Only a terminal connected to its trade server, with its
        history synchronised since, can prove an order absent.

        Tags match on their first `tag_match_chars` characters (a server may cut or rewrite
        a comment's tail), and a child order's tag is its parent's plus a suffix: the
        execution's orders already known are left out, or a child lost in flight would be
        "found" as its own parent."""
        tag = client_order_id
        if not self._requests.valid_tag(tag):
            return None  # could never have been sent
        self._tags.remember(tag)
        synced_since = self._terminal.connected_since()
        prefix = tag[: self.config.tag_match_chars]
        magic = self.config.magic

        def ours(record: Mapping[str, Any]) -> bool:
            return int(record["magic"]) == magic and str(record["comment"]).startswith(prefix)

        window = self._history_window(sent_at)
        query = self._terminal.query
        tickets = {int(r["ticket"]) for r in query("orders_get") if ours(r)}
        # A position's identifier is the ticket of the order that opened it.
        tickets |= {int(r["identifier"]) for r in query("positions_get") if ours(r)}
        tickets |= {int(r["ticket"]) for r in query("history_orders_get", *window) if ours(r)}
        tickets |= {int(r["order"]) for r in query("history_deals_get", *window) if ours(r)}
        tickets = {ticket for ticket in tickets if str(ticket) not in known_order_ids}
        if not tickets:
            if self._clock.now() - synced_since < self.config.history_sync_seconds:
                raise RequestNotSent(
                    "the terminal cannot prove an order absent yet: its history is still "
                    "synchronising after the connection"
                )
            return None
        if len(tickets) > 1:
            log.error(
                "%d orders at the broker carry the tag %s (tickets %s): adopting the first",
                len(tickets),
                tag,
                sorted(tickets),
            )
        ticket = min(tickets)
        report = self._lookup(ticket, client_order_id)
        if report is None:
            raise OutcomeUnknown(f"order {ticket} tagged {tag} is not in the history yet")
        return report

    # -- reading an order back -----------------------------------------------------------

    def _lookup(self, ticket: int, client_order_id: str | None) -> OrderReport | None:
        """An order and its fills from the terminal, or None if it knows no such order."""
        active = self._terminal.query("orders_get", ticket=ticket)
        state = BrokerOrderState.WORKING
        if active:
            record = active[0]
        else:
            history = self._terminal.query("history_orders_get", ticket=ticket)
            if not history:
                return None
            record = history[0]
            state = self._history_state(int(record["state"]))
        spec = self._contract_spec(self._terminal.engine_symbol(str(record["symbol"])))
        fills: dict[str, BrokerFill] = {}  # one fill per deal ticket, however often seen
        for deal in self._terminal.query("history_deals_get", ticket=ticket):
            if int(deal["order"]) != ticket:
                continue
            fill_id = str(deal["ticket"])
            fills.setdefault(
                fill_id,
                BrokerFill(
                    fill_id,
                    self._units(deal["volume"], spec),
                    float(deal["price"]),
                    self._server_clock.utc(record_time(deal)),
                    str(int(deal["position_id"])),
                ),
            )
        return OrderReport(
            order_id=str(ticket),
            client_order_id=client_order_id or str(record["comment"]),
            state=state,
            requested_units=self._units(record["volume_initial"], spec),
            fills=tuple(sorted(fills.values(), key=lambda f: (f.time, int(f.fill_id)))),
        )

    def _history_state(self, state: int) -> BrokerOrderState:
        """An order in the history: filled (or partly, the rest dropped), cancelled or
        rejected, or removed by the server at its expiry (ORDER_STATE_EXPIRED)."""
        if state in self._terminal.k.done_states:
            return BrokerOrderState.DONE
        if state in self._terminal.k.cancelled_states:
            return BrokerOrderState.CANCELLED
        if state == self._terminal.k.expired_state:
            return BrokerOrderState.EXPIRED
        return BrokerOrderState.WORKING  # still being processed: look again later

    def _contract_spec(self, symbol: str) -> SymbolSpec:
        spec = self._specs.get(symbol) or self.symbol_spec(symbol)
        if spec is None:
            raise OutcomeUnknown(f"the terminal no longer lists {symbol}")
        return spec

    @staticmethod
    def _units(volume: float, spec: SymbolSpec) -> int:
        # The terminal's volumes are doubles: to 1e-8 lot they are the decimal it meant.
        try:
            return lots_to_units(round(float(volume), 8), spec)
        except VolumeError as exc:
            raise OutcomeUnknown(f"broker reported a volume this kit cannot read: {exc}") from exc

    def _history_window(self, sent_at: float | None) -> tuple[datetime, datetime]:
        """The history to search, in server time: from the send (less the margin for the
        server's clock) to now, padded — so a search costs what the order's own time does,
        not what the account's whole history does."""
        server, config = self._server_clock, self.config
        now = server.server(self._clock.now())
        margin = (
            config.history_margin_seconds
            if server.learned
            else config.unlearnt_offset_margin_seconds
        )
        start = (
            server.server(sent_at) - margin
            if sent_at is not None
            else now - config.history_lookback_seconds
        )
        return (
            datetime.fromtimestamp(start, UTC),
            datetime.fromtimestamp(now + self.config.history_padding_seconds, UTC),
        )

    # -- positions: brokers/mt5/positions.py ------------------------------------------------

    def positions(self, symbol: str | None = None) -> tuple[Position, ...]:
        return self._positions.positions(symbol)

    def set_protection(
        self, position_id: str, stop_loss: float | None, take_profit: float | None
    ) -> Position:
        self._terminal.ensure_may_trade()
        return self._positions.set_protection(position_id, stop_loss, take_profit)

    def exits(self, since: float) -> tuple[PositionExit, ...]:
        return self._positions.exits(since)
