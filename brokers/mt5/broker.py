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
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

from brokers import mt5_codes as codes
from brokers.mt5.calls import TerminalError, record_time
from brokers.mt5.config import MT5Config
from brokers.mt5.loading import (
    MT5Credentials,
    load_mt5_module,
)
from brokers.mt5.server_clock import ServerClock
from brokers.mt5.terminal import Terminal, raise_if_unreachable
from brokers.mt5_codes import Outcome
from engine.clock import Clock, WallClock
from engine.core.instruments import (
    SymbolSpec,
    TradeMode,
    VolumeError,
    lots_to_units,
    units_to_lots,
)
from engine.core.ports import (
    AccountState,
    BrokerFill,
    BrokerInterface,
    BrokerOrderState,
    BrokerRejected,
    FillPolicy,
    OrderReport,
    OrderRequest,
    OutcomeUnknown,
    RequestNotSent,
)
from engine.schemas import Direction, ExecutionRejectionReason, MarketSnapshot

log = logging.getLogger(__name__)
R = ExecutionRejectionReason

# SymbolInfo.filling_mode bits. The module exports no names for them, and they are not the
# ORDER_FILLING values a request carries: passing the bitmask itself is the classic 10030.
SYMBOL_FILLING_FOK = 1
SYMBOL_FILLING_IOC = 2

# What a comment may safely hold at any broker (mt5-reference.md, pitfall 2).
_TAG = re.compile(r"[A-Za-z0-9]+")


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
            self.config.server_time_offset_seconds,
            self.config.server_offset_tolerance_seconds,
            self.config.learn_server_offset,
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
        request = self._deal_request(order)
        self._preflight(request)
        log.info(
            "order_send %s %s %s lots, tag %s",
            order.symbol,
            order.direction.name,
            request["volume"],
            order.client_order_id,
        )
        result, error = self._terminal.call("order_send", request)
        if error is not None:
            self._raise_refused_call(error)
        retcode = int(result["retcode"])
        outcome = codes.outcome_of(retcode)
        log.info("order_send tag %s: retcode %s (%s)", order.client_order_id, retcode, outcome)
        if outcome in (Outcome.DONE, Outcome.PARTIAL):
            ticket = int(result["order"])
            if ticket <= 0:
                raise OutcomeUnknown(f"retcode {retcode} without an order ticket")
            return self._report_after_send(ticket, order)
        self._raise_for_retcode(retcode, result)

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
            raise BrokerRejected(
                codes.reason_for(retcode), f"order_check: {comment}", retcode
            )

    def _deal_request(self, order: OrderRequest) -> dict[str, Any]:
        """The order as a request dict, or a final rejection for what no broker could take."""
        tag = order.client_order_id
        if not _TAG.fullmatch(tag) or len(tag) > self.config.comment_max_length:
            raise BrokerRejected(
                R.BROKER_REJECTED,
                f"client order id {tag!r} cannot travel in an MT5 comment: ASCII letters and "
                f"digits only, at most {self.config.comment_max_length} characters",
            )
        info = self._symbol_info(order.symbol)
        if info is None:
            raise BrokerRejected(
                R.SYMBOL_NOT_TRADABLE, f"the terminal does not list {order.symbol}"
            )
        spec = self._spec_from(order.symbol, info)
        try:
            lots = units_to_lots(order.units, spec)
        except VolumeError as exc:
            raise BrokerRejected(R.INVALID_VOLUME, str(exc)) from exc
        if abs(lots - order.lots) > 1e-12:
            raise BrokerRejected(R.INVALID_VOLUME, f"{order.lots} lots != {order.units} units")
        request = {
            "action": self._terminal.k.deal,
            "symbol": self._terminal.broker_symbol(order.symbol),
            "volume": lots,
            "type": self._side(order.direction),
            "magic": self.config.magic,
            "comment": tag,
            "type_time": self._terminal.k.time_gtc,
            "type_filling": self._filling(order, int(info["filling_mode"])),
        }
        if int(info["trade_exemode"]) in self._terminal.k.server_sets_price:
            # Market and exchange execution: the server sets the price and `deviation` is no
            # bound (a request may carry price 0; MqlTradeRequest). The engine measures the
            # fill against the decision's bound afterwards (SlippageBoundBreached).
            return request | {"price": 0.0}
        deviation = order.deviation_points
        return request | {
            "price": float(order.price),
            "deviation": deviation
            if deviation is not None
            else self.config.unbounded_deviation_points,
        }

    def _filling(self, order: OrderRequest, filling_mode: int) -> int:
        """The request's ORDER_FILLING value, from the symbol's filling_mode bitmask."""
        if order.fill_policy is FillPolicy.IOC and filling_mode & SYMBOL_FILLING_IOC:
            return self._terminal.k.filling_ioc
        # All or nothing never fills more than IOC would: it may stand in for IOC.
        if filling_mode & SYMBOL_FILLING_FOK:
            return self._terminal.k.filling_fok
        raise BrokerRejected(
            R.BROKER_REJECTED,
            f"{order.symbol} allows no {order.fill_policy.value} filling "
            f"(filling_mode bitmask {filling_mode}): the broker would answer 10030",
        )

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

    def _raise_refused_call(self, error: TerminalError) -> NoReturn:
        """order_send returned None: by last_error, unknown, never sent, or refused."""
        outcome = codes.refused_call_outcome(error.code)
        if outcome is Outcome.UNKNOWN:
            raise OutcomeUnknown(f"order_send got no answer from the terminal: {error}")
        if outcome is Outcome.NOT_SENT:
            raise RequestNotSent(f"order_send could not reach the terminal: {error}")
        raise BrokerRejected(
            R.BROKER_REJECTED, f"the terminal refused the request: {error}", error.code
        )

    @staticmethod
    def _raise_for_retcode(retcode: int, result: Mapping[str, Any]) -> NoReturn:
        comment = str(result.get("comment") or "")
        detail = codes.describe(retcode) + (f" ({comment})" if comment else "")
        outcome = codes.outcome_of(retcode)
        if outcome is Outcome.UNKNOWN:
            raise OutcomeUnknown(f"{detail}: the order may have executed")
        # RESEND_SAFE codes (10004, 10020, 10021, 10023, 10024, 10028) promise that nothing
        # executed, so a fresh request would be safe; but the engine never retries a
        # rejection on its own (it would trade at a price nobody approved), so they are
        # rejections too, with the code kept for whoever decides to send again.
        raise BrokerRejected(codes.reason_for(retcode), detail, retcode)

    def order_status(self, order_id: str) -> OrderReport:
        ticket = self._ticket(order_id)
        report = self._lookup(ticket, None)
        if report is None:
            raise OutcomeUnknown(f"order {ticket} is not in the terminal's orders or history yet")
        return report

    def cancel_order(self, order_id: str) -> OrderReport:
        """Remove a working order; one already done just reports how it ended."""
        ticket = self._ticket(order_id)
        if self._terminal.query("orders_get", ticket=ticket):
            result, error = self._terminal.call(
                "order_send",
                {"action": self._terminal.k.remove, "order": ticket, "magic": self.config.magic},
            )
            if error is not None:
                self._raise_refused_call(error)
            retcode = int(result["retcode"])
            if codes.outcome_of(retcode) is not Outcome.DONE:
                self._raise_for_retcode(retcode, result)
        return self.order_status(order_id)

    def find_order(
        self, client_order_id: str, sent_at: float | None = None
    ) -> OrderReport | None:
        """Our order by its tag: in open orders, positions, and the history of orders and
        deals since it was sent. Only a terminal connected to its trade server, with its
        history synchronised since, can prove an order absent."""
        tag = client_order_id
        if not _TAG.fullmatch(tag) or len(tag) > self.config.comment_max_length:
            return None  # could never have been sent
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
        if state in self._terminal.k.done_states:
            return BrokerOrderState.DONE
        if state in self._terminal.k.cancelled_states:
            return BrokerOrderState.CANCELLED
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

    @staticmethod
    def _ticket(order_id: str) -> int:
        if not order_id.isdigit():
            raise BrokerRejected(R.BROKER_REJECTED, f"{order_id!r} is not an MT5 order ticket")
        return int(order_id)

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
