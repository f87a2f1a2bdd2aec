"""The trading account at the simulated broker: balance, positions, margin.

Positions are built from fills. On a netting account a symbol has one position and a fill
against it realises P&L; on a hedging account every fill opens its own position (opposite
positions coexist, each needing margin) unless it closes one named position. Margin is in
the account currency, so the engine's margin check meets a real number and a run can
squeeze its own margin.

With a policy that charges (`sim.policies.ExecutionPolicy`), each deal pays commission per
lot and every open position pays or earns swap at the daily rollover, 17:00 New York time
(the FX value date rolls then, in summer and winter alike), three nights' worth on the
policy's triple-swap weekday. Both move the balance and are kept as `charges`, which the
venue's ledger offers to analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from engine.core.ports import AccountState
from sim.market import PriceSource

if TYPE_CHECKING:
    from sim.policies import ExecutionPolicy

NEW_YORK = ZoneInfo("America/New_York")


class MarginMode(StrEnum):
    NETTING = "netting"
    HEDGING = "hedging"


class AccountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    balance: Annotated[float, Field(gt=0.0)] = 1_000_000.0
    leverage: Annotated[int, Field(ge=1, le=3000)] = 100
    margin_mode: MarginMode = MarginMode.NETTING


@dataclass(slots=True)
class Exposure:
    """One symbol's open positions, aggregated: what margin and P&L need, in O(1)."""

    gross: int = 0  # units carrying margin: |net| when netting, the sum of all when hedging
    net: int = 0  # signed: + long, - short
    cost: float = 0.0  # sum of signed units x open price of what is open


@dataclass(frozen=True, slots=True)
class Charge:
    """A cost booked to the balance: commission on a deal, or a position's swap."""

    kind: Literal["commission", "swap"]
    symbol: str
    time: float
    amount: float  # in the account currency: negative, paid; positive, earned
    ticket: int = 0  # the order whose deal paid the commission; 0 for swap
    units: int = 0  # signed units the swap was charged on; the deal's for commission
    deal: int = 0  # the deal that paid the commission; 0 for swap
    # Whose cost it is: the tag of the order that paid, or for a deal the server made (a
    # stop-loss or take-profit), of the order that opened its position; "" for swap.
    client_order_id: str = ""


def rollover_after(t: float) -> float:
    """The first daily rollover (17:00 New York, Monday to Friday) after t."""
    local = datetime.fromtimestamp(t, NEW_YORK)
    day = local.replace(hour=17, minute=0, second=0, microsecond=0)
    if day.timestamp() <= t:
        day += timedelta(days=1)
    while day.weekday() > 4:
        day += timedelta(days=1)
    # Re-anchored on the wall clock: the day's offset may differ across a change of time.
    return day.replace(tzinfo=None).replace(tzinfo=NEW_YORK).timestamp()


class Account:
    def __init__(
        self, config: AccountConfig, prices: PriceSource, costs: ExecutionPolicy | None = None
    ) -> None:
        self.config = config
        self.prices = prices
        # Commission and swap; None: a neutral account that pays neither (and checks once).
        self.costs = costs
        self.charges: list[Charge] = []
        self._next_rollover: float | None = None
        self.balance = config.balance
        self.exposures: dict[str, Exposure] = {}
        # currency -> (the pair that converts it, whether it is quoted in the home currency);
        # None for the home currency. A market's symbols never change, so neither do these.
        self._routes: dict[str, tuple[str, bool] | None] = {config.currency: None}

    def _route(self, currency: str) -> tuple[str, bool] | None:
        home = self.config.currency
        if self.prices.symbol_config(currency + home):
            route = (currency + home, True)
        elif self.prices.symbol_config(home + currency):
            route = (home + currency, False)
        else:
            raise KeyError(f"no rate to convert {currency} into {home}")
        self._routes[currency] = route
        return route

    def to_account_currency(self, amount: float, currency: str, t: float) -> float:
        route = self._routes[currency] if currency in self._routes else self._route(currency)
        if route is None:
            return amount
        pair, quoted_in_home = route
        rate = self.prices.mid(pair, t)
        return amount * rate if quoted_in_home else amount / rate

    def margin_for(self, symbol: str, units: int, t: float) -> float:
        """Margin of `units` of symbol: their notional in the base currency, over leverage."""
        return self.to_account_currency(abs(units), symbol[:3], t) / self.config.leverage

    def state(self, t: float) -> AccountState:
        if self.costs is not None:
            self.accrue_swaps(t)
        margin = unrealised = 0.0
        for symbol, exposure in self.exposures.items():
            if exposure.gross == 0:
                continue
            margin += self.margin_for(symbol, exposure.gross, t)
            value = exposure.net * self.prices.mid(symbol, t) - exposure.cost
            unrealised += self.to_account_currency(value, symbol[3:], t)
        equity = self.balance + unrealised
        return AccountState(
            currency=self.config.currency,
            balance=self.balance,
            equity=equity,
            margin_used=margin,
            free_margin=equity - margin,
            leverage=self.config.leverage,
            hedging=self.config.margin_mode is MarginMode.HEDGING,
        )

    def net_units(self, symbol: str) -> int:
        exposure = self.exposures.get(symbol)
        return exposure.net if exposure else 0

    def book(
        self, symbol: str, signed_units: int, price: float, t: float, closes_at: float | None = None
    ) -> None:
        """A fill into the exposure. On a hedging account, `closes_at` is the open price of
        the position the fill closes (in part): its units leave the exposure and their P&L
        is realised, instead of opening an opposite position beside it."""
        if self.costs is not None:
            self.accrue_swaps(t)  # on the positions as they stood before this fill
        exposure = self.exposures.setdefault(symbol, Exposure())
        if self.config.margin_mode is MarginMode.HEDGING:
            exposure.net += signed_units
            if closes_at is None:
                exposure.gross += abs(signed_units)
                exposure.cost += signed_units * price
            else:
                exposure.gross -= abs(signed_units)
                exposure.cost += signed_units * closes_at
                self.balance += self.to_account_currency(
                    -signed_units * (price - closes_at), symbol[3:], t
                )
            return
        if exposure.net == 0 or (exposure.net > 0) == (signed_units > 0):
            exposure.net += signed_units
            exposure.cost += signed_units * price
        else:
            average = exposure.cost / exposure.net
            closing = min(abs(signed_units), abs(exposure.net))
            sign = 1 if exposure.net > 0 else -1
            self.balance += self.to_account_currency(
                sign * closing * (price - average), symbol[3:], t
            )
            remaining = exposure.net + signed_units
            flipped = remaining != 0 and (remaining > 0) != (exposure.net > 0)
            exposure.cost = remaining * (price if flipped else average)
            exposure.net = remaining
        exposure.gross = abs(exposure.net)

    # -- costs -----------------------------------------------------------------------------

    def charge_commission(
        self, symbol: str, units: int, t: float, ticket: int, deal: int, client_order_id: str
    ) -> None:
        """A deal's commission: per lot, per side, in the account currency."""
        assert self.costs is not None
        config = self.prices.symbol_config(symbol)
        contract = config.contract_size if config is not None else 100_000
        amount = -self.costs.commission_per_lot * units / contract
        if amount:
            self.balance += amount
            self.charges.append(
                Charge("commission", symbol, t, amount, ticket, units, deal, client_order_id)
            )

    def accrue_swaps(self, t: float) -> None:
        """Book the swap of every rollover passed by t on the positions open then: each
        entry point accrues before it changes a position, so those are the ones held."""
        assert self.costs is not None
        if self._next_rollover is None:
            self._next_rollover = rollover_after(t)
        while self._next_rollover <= t:
            rollover = self._next_rollover
            local = datetime.fromtimestamp(rollover, NEW_YORK)
            nights = 3 if local.weekday() == self.costs.triple_swap_weekday else 1
            for symbol, exposure in self.exposures.items():
                self._swap(symbol, exposure, nights, rollover)
            self._next_rollover = rollover_after(rollover)

    def _swap(self, symbol: str, exposure: Exposure, nights: int, t: float) -> None:
        assert self.costs is not None
        if exposure.gross == 0:
            return
        config = self.prices.symbol_config(symbol)
        if config is None:
            return
        rates = self.costs.swap_rates(symbol)
        # Longs and shorts apart: a hedging account may hold both at once.
        long_units = (exposure.gross + exposure.net) // 2
        short_units = (exposure.gross - exposure.net) // 2
        for units, points in ((long_units, rates.long_points), (-short_units, rates.short_points)):
            if not units or not points:
                continue
            # MT5 SYMBOL_SWAP_MODE_POINTS: points x point x units, in the quote currency.
            in_quote = nights * points * config.point * abs(units)
            amount = self.to_account_currency(in_quote, symbol[3:], t)
            self.balance += amount
            self.charges.append(Charge("swap", symbol, t, amount, 0, units))
