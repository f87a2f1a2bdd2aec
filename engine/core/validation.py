"""Stage 1: the pre-execution checks, as pure functions of what the broker told us.

Checks run in the seed's order and the first failure stops the execution; trading_halted
comes first and needs nothing from the broker. A check that lacks the data it judges
passes it on to the check whose job that data is (a missing quote is market_data's fault,
not market_open's), so every refusal names its true cause.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.core.config import EngineConfig
from engine.core.instruments import SymbolSpec, TradeMode
from engine.core.ports import AccountState, Position
from engine.core.positions import NO_LEVELS, Levels, PositionFailure, stops_problem
from engine.core.vocabulary import Direction, ExecutionRejectionReason, OrderType, TradeIntent
from engine.schemas import DecisionStatus, MarketSnapshot, RPMOutput

R = ExecutionRejectionReason


@dataclass(frozen=True, slots=True)
class CheckFailure:
    check: str
    reason: ExecutionRejectionReason
    detail: str


@dataclass(frozen=True, slots=True)
class MarketContext:
    """Everything the broker-dependent checks judge, fetched once per execution."""

    symbol: str
    direction: Direction
    units: int
    now: float
    spec: SymbolSpec | None
    snapshot: MarketSnapshot | None
    lots: float | None
    volume_problem: str | None
    account: AccountState | None
    margin_required: float | None
    # What the decision asks beyond a market order that opens (defaults: exactly that).
    intent: TradeIntent = TradeIntent.OPEN
    position: Position | PositionFailure | None = None  # for reduce, close, modify_stops
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    expires_at: float | None = None
    levels: Levels = NO_LEVELS


def decision_approved(rpm: RPMOutput) -> CheckFailure | None:
    decision = rpm.decision
    if decision.status is not DecisionStatus.APPROVED:
        why = f": {decision.reason}" if decision.reason else ""
        return CheckFailure(
            "decision_approved",
            R.DECISION_NOT_APPROVED,
            f"decision status is {decision.status.value}, not APPROVED{why}",
        )
    return None


def trading_halted(rpm: RPMOutput, engine_halted: bool) -> CheckFailure | None:
    if rpm.portfolio_state.trading_halted:
        why = rpm.portfolio_state.halt_reason or "no reason given"
        return CheckFailure("trading_halted", R.TRADING_HALTED, f"halted by RPM: {why}")
    if engine_halted:
        return CheckFailure(
            "trading_halted", R.TRADING_HALTED, "halted by the engine's kill switch"
        )
    return None


def market_open(ctx: MarketContext, config: EngineConfig) -> CheckFailure | None:
    if ctx.snapshot is None:
        return None
    age, limit = ctx.now - ctx.snapshot.time, config.max_quote_age_seconds
    if age > limit:
        return CheckFailure(
            "market_open",
            R.MARKET_CLOSED,
            f"last {ctx.symbol} quote is {age:.0f}s old (limit {limit:.0f}s)",
        )
    return None


def symbol_tradable(ctx: MarketContext, config: EngineConfig) -> CheckFailure | None:
    spec = ctx.spec
    if spec is None:
        return CheckFailure(
            "symbol_tradable", R.SYMBOL_NOT_TRADABLE, f"broker does not list {ctx.symbol}"
        )
    mode = spec.trade_mode
    if ctx.intent is not TradeIntent.OPEN:
        # Closing is what close-only and one-sided modes still allow; only disabled refuses.
        refused = mode is TradeMode.DISABLED
    else:
        refused = (
            mode in (TradeMode.DISABLED, TradeMode.CLOSE_ONLY)
            or (mode is TradeMode.LONG_ONLY and ctx.direction is Direction.SELL)
            or (mode is TradeMode.SHORT_ONLY and ctx.direction is Direction.BUY)
        )
    if refused:
        side = "buy" if ctx.direction is Direction.BUY else "sell"
        return CheckFailure(
            "symbol_tradable",
            R.SYMBOL_NOT_TRADABLE,
            f"{ctx.symbol} trade mode {mode.name} refuses a {side}",
        )
    return None


def volume_representable(ctx: MarketContext, config: EngineConfig) -> CheckFailure | None:
    if ctx.volume_problem is not None:
        return CheckFailure("volume_representable", R.INVALID_VOLUME, ctx.volume_problem)
    return None


def market_data_available(ctx: MarketContext, config: EngineConfig) -> CheckFailure | None:
    snap = ctx.snapshot
    if snap is None:
        return CheckFailure("market_data_available", R.NO_MARKET_DATA, f"no quote for {ctx.symbol}")
    if snap.ask < snap.bid:
        return CheckFailure(
            "market_data_available",
            R.NO_MARKET_DATA,
            f"crossed quote: bid {snap.bid} > ask {snap.ask}",
        )
    return None


def spread_acceptable(ctx: MarketContext, config: EngineConfig) -> CheckFailure | None:
    assert ctx.snapshot is not None and ctx.spec is not None
    spread = (ctx.snapshot.ask - ctx.snapshot.bid) / ctx.spec.pip
    limit = config.max_spread_for(ctx.symbol)
    if spread > limit + 1e-9:
        return CheckFailure(
            "spread_acceptable",
            R.SPREAD_TOO_WIDE,
            f"spread {spread:.1f} pips exceeds {limit:g} pips",
        )
    return None


def position_matches(ctx: MarketContext, config: EngineConfig) -> CheckFailure | None:
    if isinstance(ctx.position, PositionFailure):
        return CheckFailure("position_matches", ctx.position.reason, ctx.position.detail)
    return None


def order_terms_valid(ctx: MarketContext, config: EngineConfig) -> CheckFailure | None:
    """A limit order's price and expiry, as the broker would judge them: a buy limit at or
    above the ask (a sell limit at or below the bid) would fill at once, and one nearer the
    market than the stops level is refused (MT5 10015); an expiry already past, 10022."""
    if ctx.order_type is not OrderType.LIMIT:
        return None
    assert ctx.snapshot is not None and ctx.spec is not None and ctx.limit_price is not None
    if ctx.expires_at is not None and ctx.expires_at <= ctx.now:
        return CheckFailure(
            "order_terms_valid", R.INVALID_EXPIRATION, "the limit order's expiry has passed"
        )
    buy = ctx.direction is Direction.BUY
    touch = ctx.snapshot.ask if buy else ctx.snapshot.bid
    room = (touch - ctx.limit_price) if buy else (ctx.limit_price - touch)
    minimum = max(ctx.spec.stops_level_points, 1) * ctx.spec.point
    if room < minimum - ctx.spec.point / 2:
        side = "below the ask" if buy else "above the bid"
        return CheckFailure(
            "order_terms_valid",
            R.INVALID_PRICE,
            f"limit {ctx.limit_price} must be {side} {touch} by at least "
            f"{max(ctx.spec.stops_level_points, 1)} points",
        )
    return None


def stops_valid(ctx: MarketContext, config: EngineConfig) -> CheckFailure | None:
    """Stops the broker would refuse (MT5 10016) are refused before anything is sent. A
    long's stops are judged against the bid, a short's against the ask (where they trigger);
    a limit order's against its limit price."""
    if ctx.levels == NO_LEVELS:
        return None
    assert ctx.snapshot is not None and ctx.spec is not None
    side = ctx.direction
    if isinstance(ctx.position, Position):
        side = ctx.position.direction
    if ctx.order_type is OrderType.LIMIT and ctx.limit_price is not None:
        reference = ctx.limit_price
    else:
        reference = ctx.snapshot.bid if side is Direction.BUY else ctx.snapshot.ask
    problem = stops_problem(ctx.levels, side, reference, ctx.spec)
    if problem is not None:
        return CheckFailure("stops_valid", R.INVALID_STOPS, problem)
    return None


def margin_sufficient(ctx: MarketContext, config: EngineConfig) -> CheckFailure | None:
    if ctx.intent is not TradeIntent.OPEN:
        return None  # a reduce or close frees margin; a stop change uses none
    assert ctx.account is not None and ctx.margin_required is not None
    needed = ctx.margin_required * config.margin_safety_factor
    free = ctx.account.free_margin
    if needed > free:
        return CheckFailure(
            "margin_sufficient",
            R.INSUFFICIENT_MARGIN,
            f"required margin {ctx.margin_required:.2f} x {config.margin_safety_factor:g} = "
            f"{needed:.2f} {ctx.account.currency} exceeds free margin {free:.2f}",
        )
    return None


def liquidity_available(ctx: MarketContext, config: EngineConfig) -> CheckFailure | None:
    if ctx.order_type is OrderType.LIMIT or ctx.intent is TradeIntent.MODIFY_STOPS:
        return None  # a resting order waits for liquidity; a stop change needs none
    assert ctx.snapshot is not None
    depth = (
        ctx.snapshot.ask_depth_units
        if ctx.direction is Direction.BUY
        else ctx.snapshot.bid_depth_units
    )
    if depth is not None and depth < ctx.units:
        return CheckFailure(
            "liquidity_available",
            R.INSUFFICIENT_LIQUIDITY,
            f"{depth} units available on the book, {ctx.units} needed",
        )
    return None


MarketCheck = Callable[[MarketContext, EngineConfig], CheckFailure | None]

# The seed's order; the volume check sits where its data (the symbol spec) is first known.
MARKET_CHECKS: tuple[tuple[str, MarketCheck], ...] = (
    ("market_open", market_open),
    ("symbol_tradable", symbol_tradable),
    ("volume_representable", volume_representable),
    ("market_data_available", market_data_available),
    ("spread_acceptable", spread_acceptable),
    ("position_matches", position_matches),
    ("order_terms_valid", order_terms_valid),
    ("stops_valid", stops_valid),
    ("margin_sufficient", margin_sufficient),
    ("liquidity_available", liquidity_available),
)

CHECK_NAMES: tuple[str, ...] = (
    "decision_approved",
    "trading_halted",
    *(name for name, _ in MARKET_CHECKS),
)


def run_market_checks(ctx: MarketContext, config: EngineConfig) -> CheckFailure | None:
    for _, check in MARKET_CHECKS:
        failure = check(ctx, config)
        if failure is not None:
            return failure
    return None
