"""What slippage and shortfall cost, in basis points of the arrival mid and in the account
currency (positive = a cost to us, as in pips).

A price difference is in the symbol's quote currency (JPY for USDJPY); it becomes account
currency at the rate prevailing when the decision came in. The symbol's own arrival mid
gives that rate when the account currency is one of its two (EURUSD or USDJPY in a USD
account); a cross (EURGBP in a USD account) needs another pair's mid (GBPUSD or USDGBP)
from the quote tape at that time, and its cost stays unknown, with the reason said in
`account_cost_note`, when the tape has neither.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

BPS = 10_000.0
DEFAULT_ACCOUNT_CURRENCY = "USD"

# The mid of `symbols` (one per row, indexed like the rows) when each row's decision came in.
LegMid = Callable[[pd.Series], pd.Series]


def add_costs(frame: pd.DataFrame, leg_mid: LegMid) -> pd.DataFrame:
    """Spread in pips, slippage and shortfall in bps and in the account currency; needs the
    columns `enrich` computes before (pip, arrival_mid, slippage_vs_side_pips,
    shortfall_pips) and `account_currency`."""
    pip, mid = frame["pip"], frame["arrival_mid"]
    frame["spread_pips"] = (frame["arrival_ask"] - frame["arrival_bid"]) / pip
    frame["slippage_bps"] = frame["slippage_vs_side_pips"] * pip / mid * BPS
    frame["shortfall_bps"] = frame["shortfall_pips"] * pip / mid * BPS
    rate, note = account_rates(frame, leg_mid)
    # Slippage is paid on the units that filled; shortfall is per intended unit already.
    filled = frame["executed_units"].astype(float)
    frame["slippage_account"] = frame["slippage_vs_side_pips"] * pip * filled * rate
    intended = frame["intended_units"].astype(float)
    frame["shortfall_account"] = frame["shortfall_pips"] * pip * intended * rate
    frame["account_cost_note"] = note
    return frame


def account_rates(frame: pd.DataFrame, leg_mid: LegMid) -> tuple[pd.Series, pd.Series]:
    """Per execution: account currency per unit of the symbol's quote currency, and why it
    is missing (None where it is known)."""
    rate = pd.Series(np.nan, index=frame.index)
    note = pd.Series(None, index=frame.index, dtype=object)
    symbols = frame["symbol"].fillna("")
    by_pair = frame.groupby([symbols, frame["account_currency"]]).groups
    for (symbol, account), rows in by_pair.items():
        base, quote = symbol[:3], symbol[3:6]
        if quote == account:
            rate.loc[rows] = 1.0
        elif base == account:  # USDJPY in USD: a yen is worth 1 / mid dollars
            rate.loc[rows] = 1.0 / frame.loc[rows, "arrival_mid"]
        elif symbol:  # a cross: another pair's mid, if the tape has it
            rate.loc[rows] = _cross_rate(rows, quote, account, leg_mid)
            missing = rows[rate.loc[rows].isna().to_numpy()]
            note.loc[missing] = (
                f"no {quote}{account} or {account}{quote} quote when the decision came in, "
                f"to convert {quote} into {account}"
            )
    return rate, note


def _cross_rate(rows: pd.Index, quote: str, account: str, leg_mid: LegMid) -> pd.Series:
    direct = leg_mid(pd.Series(quote + account, index=rows))
    inverse = 1.0 / leg_mid(pd.Series(account + quote, index=rows))
    return direct.fillna(inverse)
