"""The request dicts MT5Broker sends, and how an answer to one is read.

What each kind of order becomes (MqlTradeRequest, mt5-reference.md):
- a market order: TRADE_ACTION_DEAL, BUY or SELL, with `position` when it closes a named
  position (MQL5 book, "Closing a position: full and partial": on a hedging account an
  opposite order without it opens a second position);
- a limit order: TRADE_ACTION_PENDING, BUY_LIMIT or SELL_LIMIT at the limit price, good till
  its expiry (ORDER_TIME_SPECIFIED with `expiration` in the trade server's seconds) where the
  symbol's expiration_mode allows a specified time — else good till cancelled, and the engine
  cancels it at its expiry;
- either may carry `sl` and `tp` (prices);
- a stop change: TRADE_ACTION_SLTP on a position's ticket, 0 for a level removed;
- a removal: TRADE_ACTION_REMOVE on a pending order's ticket.
Every order carries our `magic` and our tag in `comment`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from brokers import mt5_codes as codes
from brokers.mt5.calls import TerminalError
from brokers.mt5.config import MT5Config
from brokers.mt5.server_clock import ServerClock
from brokers.mt5.terminal import Terminal
from brokers.mt5_codes import Outcome
from engine.core.instruments import SymbolSpec, VolumeError, units_to_lots
from engine.core.ports import (
    BrokerRejected,
    FillPolicy,
    OrderRequest,
    OutcomeUnknown,
    RequestNotSent,
)
from engine.core.vocabulary import OrderType
from engine.schemas import Direction, ExecutionRejectionReason

R = ExecutionRejectionReason

# SymbolInfo.filling_mode bits. The module exports no names for them, and they are not the
# ORDER_FILLING values a request carries: passing the bitmask itself is the classic 10030.
SYMBOL_FILLING_FOK = 1
SYMBOL_FILLING_IOC = 2
# SymbolInfo.expiration_mode's bit for ORDER_TIME_SPECIFIED (GTC 1, DAY 2, SPECIFIED 4,
# SPECIFIED_DAY 8), and order_mode's for orders carrying a stop-loss and a take-profit.
SYMBOL_EXPIRATION_SPECIFIED = 4
SYMBOL_ORDER_SL = 16
SYMBOL_ORDER_TP = 32

# What a comment may safely hold at any broker (mt5-reference.md, pitfall 2).
TAG = re.compile(r"[A-Za-z0-9]+")


class Requests:
    """Builds this broker's request dicts from the engine's orders."""

    def __init__(self, terminal: Terminal, config: MT5Config, server_clock: ServerClock) -> None:
        self._terminal = terminal
        self._config = config
        self._server_clock = server_clock

    def valid_tag(self, tag: str) -> bool:
        """Whether a client order id can travel in an MT5 comment."""
        return bool(TAG.fullmatch(tag)) and len(tag) <= self._config.comment_max_length

    def order(
        self, order: OrderRequest, info: Mapping[str, Any], spec: SymbolSpec
    ) -> dict[str, Any]:
        """The order as a request dict, or a final rejection for what no broker could take."""
        tag = order.client_order_id
        if not self.valid_tag(tag):
            raise BrokerRejected(
                R.BROKER_REJECTED,
                f"client order id {tag!r} cannot travel in an MT5 comment: ASCII letters and "
                f"digits only, at most {self._config.comment_max_length} characters",
            )
        try:
            lots = units_to_lots(order.units, spec)
        except VolumeError as exc:
            raise BrokerRejected(R.INVALID_VOLUME, str(exc)) from exc
        if abs(lots - order.lots) > 1e-12:
            raise BrokerRejected(R.INVALID_VOLUME, f"{order.lots} lots != {order.units} units")
        request: dict[str, Any] = {
            "symbol": self._terminal.broker_symbol(order.symbol),
            "volume": lots,
            "magic": self._config.magic,
            "comment": tag,
        }
        if order.position_id is not None:
            request["position"] = ticket_of(order.position_id, "position")
        # Protection rides on the order; 0 means none, as in MqlTradeRequest.
        if order.stop_loss is not None:
            request["sl"] = float(order.stop_loss)
        if order.take_profit is not None:
            request["tp"] = float(order.take_profit)
        if order.order_type is OrderType.LIMIT:
            return request | self._pending(order, info)
        return request | self._deal(order, info)

    def _deal(self, order: OrderRequest, info: Mapping[str, Any]) -> dict[str, Any]:
        k = self._terminal.k
        request = {
            "action": k.deal,
            "type": k.buy if order.direction is Direction.BUY else k.sell,
            "type_time": k.time_gtc,
            "type_filling": self._filling(order, int(info["filling_mode"])),
        }
        if int(info["trade_exemode"]) in k.server_sets_price:
            # Market and exchange execution: the server sets the price and `deviation` is no
            # bound (a request may carry price 0; MqlTradeRequest). The engine measures the
            # fill against the decision's bound afterwards (SlippageBoundBreached).
            return request | {"price": 0.0}
        deviation = order.deviation_points
        return request | {
            "price": float(order.price),
            "deviation": deviation
            if deviation is not None
            else self._config.unbounded_deviation_points,
        }

    def _pending(self, order: OrderRequest, info: Mapping[str, Any]) -> dict[str, Any]:
        """A limit order rests at its price until its expiry.

        Its filling: Return — the rest of a partial fill keeps resting — which the
        metatrader5.com help ("Fill Policy") gives limit orders in Market and Exchange
        execution; in Request and Instant execution, where that table allows Fill or Kill
        only, the type the symbol's bitmask allows, as for a market order."""
        k = self._terminal.k
        if order.limit_price is None:
            raise BrokerRejected(R.INVALID_PRICE, "a limit order without a limit price")
        exemode = int(info["trade_exemode"])
        filling = (
            k.filling_return
            if exemode in k.server_sets_price
            else self._filling(order, int(info["filling_mode"]))
        )
        request = {
            "action": k.pending,
            "type": k.buy_limit if order.direction is Direction.BUY else k.sell_limit,
            "price": float(order.limit_price),
            "type_filling": filling,
        }
        if order.expires_at is not None and (
            int(info["expiration_mode"]) & SYMBOL_EXPIRATION_SPECIFIED
        ):
            # The trade server's seconds (a datetime's whole seconds in MQL5): rounded down,
            # so the order never rests past the time the engine gave it.
            expiration = math.floor(self._server_clock.server(order.expires_at))
            return request | {"type_time": k.time_specified, "expiration": expiration}
        # No expiry, or none the symbol allows: good till cancelled, and the engine cancels
        # it at its expiry (it monitors every working order until its deadline).
        return request | {"type_time": k.time_gtc}

    def _filling(self, order: OrderRequest, filling_mode: int) -> int:
        """The request's ORDER_FILLING value, from the symbol's filling_mode bitmask."""
        k = self._terminal.k
        if order.fill_policy is FillPolicy.IOC and filling_mode & SYMBOL_FILLING_IOC:
            return k.filling_ioc
        # All or nothing never fills more than IOC would: it may stand in for IOC.
        if filling_mode & SYMBOL_FILLING_FOK:
            return k.filling_fok
        raise BrokerRejected(
            R.BROKER_REJECTED,
            f"{order.symbol} allows no {order.fill_policy.value} filling "
            f"(filling_mode bitmask {filling_mode}): the broker would answer 10030",
        )

    def protection(
        self, ticket: int, symbol: str, stop_loss: float | None, take_profit: float | None
    ) -> dict[str, Any]:
        """TRADE_ACTION_SLTP: both levels as they are to be, 0 removing one (MqlTradeRequest:
        the request sets the position's SL and TP, not the one named alone)."""
        return {
            "action": self._terminal.k.sltp,
            "position": ticket,
            "symbol": symbol,
            "sl": float(stop_loss) if stop_loss is not None else 0.0,
            "tp": float(take_profit) if take_profit is not None else 0.0,
            "magic": self._config.magic,
        }

    def removal(self, ticket: int) -> dict[str, Any]:
        return {"action": self._terminal.k.remove, "order": ticket, "magic": self._config.magic}


def ticket_of(identifier: str, what: str = "order") -> int:
    """An engine id as an MT5 ticket; anything else is not one this broker gave out."""
    if not identifier.isdigit():
        raise BrokerRejected(R.BROKER_REJECTED, f"{identifier!r} is not an MT5 {what} ticket")
    return int(identifier)


def raise_refused_call(error: TerminalError) -> NoReturn:
    """order_send returned None: by last_error, unknown, never sent, or refused."""
    outcome = codes.refused_call_outcome(error.code)
    if outcome is Outcome.UNKNOWN:
        raise OutcomeUnknown(f"order_send got no answer from the terminal: {error}")
    if outcome is Outcome.NOT_SENT:
        raise RequestNotSent(f"order_send could not reach the terminal: {error}")
    raise BrokerRejected(
        R.BROKER_REJECTED, f"the terminal refused the request: {error}", error.code
    )


def raise_for_retcode(retcode: int, result: Mapping[str, Any]) -> NoReturn:
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


def send(terminal: Terminal, request: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """order_send: its retcode and result; a call the terminal refused raises."""
    result, error = terminal.call("order_send", dict(request))
    if error is not None:
        raise_refused_call(error)
    return int(result["retcode"]), result
