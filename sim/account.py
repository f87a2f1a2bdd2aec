"""The trading account at the simulated broker: balance, positions, margin.

Positions are built from fills. On a netting account a symbol has one position and a fill
against it realises P&L; on a hedging account every fill opens its own position (opposite
positions coexist, each needing margin) unless it closes one named position. Margin is in
the account currency, so the engine's margin check meets a real number and a run can
squeeze its own margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from engine.core.ports import AccountState
from sim.market import PriceSource


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


class Account:
    def __init__(self, config: AccountConfig, prices: PriceSource) -> None:
        self.config = config
        self.prices = prices
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
