"""A scenario file: everything a run needs, declared in TOML and validated with pydantic.

Times inside a run are given as offsets in seconds from the scenario's `start`, so a file
reads as a story ("the broker goes down 60 s in, for 30 s") and survives a change of date.
Paths are relative to the scenario file. Any error names the file, the field and the
problem on one line, and nothing runs. Numbers are finite, and offsets and sizes bounded
(`scenarios.limits`).
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.core.config import EngineConfig
from scenarios.limits import MAX_RUN_SECONDS, RunSeconds, Seed
from scenarios.orderflow import OrderFlowConfig
from sim.account import AccountConfig
from sim.bars import BridgeConfig, IntraBarPath
from sim.impact import PriceImpactConfig
from sim.latency import LatencyConfig
from sim.liquidity import DepthLadder
from sim.market import MarketConfig, NewsEvent, RegimeConfig, SymbolConfig, TickSeconds
from sim.mt5 import TerminalConfig
from sim.network import FaultKind, FaultWindow, LateExecution, NetworkConfig
from sim.policies import BrokerPolicy
from sim.quote_report import BadQuotePolicy
from sim.quotes_csv import BarQuotesConfig, Digits, Symbol, TickQuotesConfig
from sim.rejections import RejectionConfig
from sim.sessions import FxWeek
from sim.shape import MarketShape
from sim.spreads import SpreadConfig
from sim.textfiles import InputFileError, read_text, require_file
from sim.venue import VenueConfig

INVARIANTS = (
    "no_duplicate_broker_orders",
    "broker_orders_map_to_executions",
    "every_execution_terminal",
    "audit_chain_verifies",
    "no_order_sent_while_halted",
    "no_fill_while_closed",
    "executed_never_exceeds_intended",
    "no_order_for_unapproved_decision",
    "no_position_left_unprotected",
    "every_position_ends_closed",
)

# Every instant of a run must be a date, and Python's dates end with the year 9999.
LATEST_START = datetime(9999, 12, 31, tzinfo=UTC) - timedelta(seconds=MAX_RUN_SECONDS)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NewsAt(_Section):
    at_seconds: RunSeconds
    symbols: tuple[str, ...] = ()
    jump_pips: Annotated[float, Field(ge=0.0)] = 10.0
    volatility_multiplier: Annotated[float, Field(ge=1.0)] = 4.0
    window_seconds: Annotated[float, Field(gt=0.0)] = 300.0


class ReplaySection(_Section):
    """Recorded quotes: bid and ask bars (`bid_path`, `ask_path`) or ticks (`path`).

    Bars show at their close (`intra_bar = "close"`) or along a Brownian bridge between
    closes at `bridge.ticks_per_minute` ("bridge", seeded by the run's seed); `digits` is
    read from the data and, if declared, must agree with it (see `sim.quotes_csv`)."""

    symbol: Symbol
    digits: Digits | None = None
    bid_path: Path | None = None
    ask_path: Path | None = None
    path: Path | None = None
    bad_quotes: BadQuotePolicy = "drop"
    intra_bar: IntraBarPath = "close"
    bridge: BridgeConfig = BridgeConfig()
    max_gap_minutes: Annotated[float, Field(gt=0.0)] = 5.0

    @model_validator(mode="after")
    def _bars_or_ticks(self) -> ReplaySection:
        bars = (self.bid_path, self.ask_path)
        if self.path is not None and any(p is not None for p in bars):
            raise ValueError("give ticks (path) or bars (bid_path and ask_path), not both")
        if self.path is None and any(p is None for p in bars):
            raise ValueError("give ticks (path) or bars (both bid_path and ask_path)")
        return self


class MarketSection(_Section):
    kind: Literal["synthetic", "replay"] = "synthetic"
    symbols: tuple[SymbolConfig, ...] | None = None
    tick_seconds: TickSeconds = 0.25
    regimes: RegimeConfig | None = RegimeConfig()
    news: tuple[NewsAt, ...] = ()
    spreads: SpreadConfig = SpreadConfig()
    # Intraday profiles, clustering, tails and reopen gaps; `arbitrex calibrate` fits one.
    shape: MarketShape | None = MarketShape()
    holidays: tuple[datetime, ...] = ()
    replay: ReplaySection | None = None

    @field_validator("regimes", "shape", mode="before")
    @classmethod
    def _false_is_none(cls, value: object) -> object:
        # TOML has no null: `regimes = false` switches the regimes off (a fitted market's
        # clustering replaces them), as `shape = false` keeps the market flat.
        return None if value is False else value

    @model_validator(mode="after")
    def _replay_needs_data(self) -> MarketSection:
        if self.kind == "replay" and self.replay is None:
            raise ValueError("a replay market needs a [market.replay] section")
        return self


class FaultAt(_Section):
    start_seconds: RunSeconds
    end_seconds: RunSeconds
    kind: FaultKind = FaultKind.REFUSE

    @model_validator(mode="after")
    def _ordered(self) -> FaultAt:
        if self.end_seconds <= self.start_seconds:
            raise ValueError("end_seconds must be after start_seconds")
        return self


class FaultsSection(_Section):
    request_loss: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    reply_loss: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    windows: tuple[FaultAt, ...] = ()
    rejections: RejectionConfig = RejectionConfig()
    late_execution: LateExecution = LateExecution()


class VenueSection(_Section):
    depth: DepthLadder | None = DepthLadder()
    # A dealer that never fills: any delay past the engine's order timeout.
    fill_delay_seconds: RunSeconds = 0.0
    # How a resting limit order meets the queue ahead of it: "through", a fill only once
    # the price trades a point past the limit; "touch", at the limit with this probability
    # per quote (the venue's own seeded stream).
    limit_queue: Literal["through", "touch"] = "through"
    touch_fill_probability: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    # The temporary price impact of the venue's own fills (`sim.impact`); none if absent.
    impact: PriceImpactConfig | None = None


class OrdersSection(OrderFlowConfig):
    decisions_file: Path | None = None  # JSON Lines of RPM outputs, instead of the flow


class KillSwitch(_Section):
    halt_at_seconds: RunSeconds
    resume_at_seconds: RunSeconds | None = None

    @model_validator(mode="after")
    def _ordered(self) -> KillSwitch:
        if self.resume_at_seconds is not None and self.resume_at_seconds <= self.halt_at_seconds:
            raise ValueError("resume_at_seconds must be after halt_at_seconds")
        return self


class Scenario(_Section):
    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    seed: Seed = 1
    start: AwareDatetime = datetime(2024, 1, 8, 7, 0, tzinfo=UTC)  # naive: refused
    broker: Literal["sim", "mt5-emulated"] = "sim"
    # How the broker treats orders (`sim.policies`): written as a `[broker]` table, with
    # `kind` for the broker above, `profile` for one of the library's and any overrides.
    broker_policy: BrokerPolicy = BrokerPolicy()
    # The emulated MT5 terminal (broker = "mt5-emulated"): history sync, execution modes,
    # hidden symbols, the server's clock, its permissions.
    terminal: TerminalConfig = TerminalConfig()
    market: MarketSection = MarketSection()
    latency: LatencyConfig = LatencyConfig()
    faults: FaultsSection = FaultsSection()
    venue: VenueSection = VenueSection()
    account: AccountConfig = AccountConfig()
    orders: OrdersSection = OrdersSection()
    engine: EngineConfig = EngineConfig()
    kill_switch: tuple[KillSwitch, ...] = ()
    invariants: tuple[Literal[INVARIANTS], ...] = INVARIANTS  # type: ignore[valid-type]
    # Recovery after the order flow: settle what lost replies left open (seconds later).
    settle_after_seconds: RunSeconds = 120.0

    @model_validator(mode="before")
    @classmethod
    def _broker_table(cls, data: object) -> object:
        """`[broker]` as a table: its `kind` is the broker, the rest its policy."""
        if isinstance(data, dict) and isinstance(data.get("broker"), dict):
            if "broker_policy" in data:
                raise ValueError("broker: give the policy in [broker] or [broker_policy], not both")
            data = dict(data)
            policy = dict(data["broker"])
            data["broker"] = policy.pop("kind", "sim")
            data["broker_policy"] = policy
        return data

    @field_validator("start")
    @classmethod
    def _room_for_the_run(cls, start: datetime) -> datetime:
        if start > LATEST_START:
            raise ValueError(f"start must be at most {LATEST_START.isoformat()}")
        return start

    @model_validator(mode="after")
    def _terminal_needs_the_emulator(self) -> Scenario:
        if self.broker == "sim" and self.terminal != TerminalConfig():
            raise ValueError(
                '[terminal] describes the emulated MT5 terminal: set broker = "mt5-emulated"'
            )
        return self

    @property
    def t0(self) -> float:
        return self.start.timestamp()

    def market_config(self) -> MarketConfig:
        m = self.market
        news = tuple(
            NewsEvent(
                at=datetime.fromtimestamp(self.t0 + n.at_seconds, tz=UTC),
                symbols=n.symbols,
                jump_pips=n.jump_pips,
                volatility_multiplier=n.volatility_multiplier,
                window_seconds=n.window_seconds,
            )
            for n in m.news
        )
        week = FxWeek(holidays=tuple(h.date() for h in m.holidays))
        base = MarketConfig()
        return MarketConfig(
            symbols=m.symbols or base.symbols,
            tick_seconds=m.tick_seconds,
            week=week,
            regimes=m.regimes,
            news=news,
            spreads=m.spreads,
            shape=m.shape,
        )

    def replay_source(
        self, base_dir: Path, seed: int | None = None
    ) -> BarQuotesConfig | TickQuotesConfig:
        """The replay's quote files, found, or a ScenarioError naming the missing one; a
        bridge path is drawn from `seed` (default the scenario's)."""
        assert self.market.replay is not None
        r = self.market.replay
        paths = {}
        named = {"bid_path": r.bid_path, "ask_path": r.ask_path, "path": r.path}
        for field, path in named.items():
            if path is None:
                continue
            try:
                paths[field] = require_file((base_dir / path).resolve(), "quote file")
            except InputFileError as missing:
                raise ScenarioError(f"market.replay.{field}: {missing}") from missing
        common = {
            "symbol": r.symbol,
            "digits": r.digits,
            "bad_quotes": r.bad_quotes,
            "max_gap_minutes": r.max_gap_minutes,
        }
        try:
            if r.path is not None:
                return TickQuotesConfig(**common, **paths)
            return BarQuotesConfig(
                **common,
                intra_bar=r.intra_bar,
                bridge=r.bridge,
                seed=self.seed if seed is None else seed,
                **paths,
            )
        except ValidationError as error:
            raise ScenarioError(_describe("market.replay", error)) from error

    def network_config(self) -> NetworkConfig:
        f = self.faults
        windows = tuple(
            FaultWindow(start=self.t0 + w.start_seconds, end=self.t0 + w.end_seconds, kind=w.kind)
            for w in f.windows
        )
        return NetworkConfig(
            latency=self.latency,
            request_loss=f.request_loss,
            reply_loss=f.reply_loss,
            faults=windows,
            late_execution=f.late_execution,
        )

    def venue_config(self) -> VenueConfig:
        return VenueConfig(
            depth=self.venue.depth,
            fill_delay_seconds=self.venue.fill_delay_seconds,
            rejections=self.faults.rejections,
            limit_queue=self.venue.limit_queue,
            touch_fill_probability=self.venue.touch_fill_probability,
            policy=self.broker_policy.policy(),
            impact=self.venue.impact,
        )

    def with_overrides(self, overrides: dict[str, object]) -> Scenario:
        """A copy with dotted-path values replaced (`orders.rate_per_second`), re-validated."""
        data = self.model_dump(mode="python")
        for path, value in overrides.items():
            node = data
            *parents, leaf = path.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ScenarioError(f"--set {path}: {part!r} is not a section of a scenario")
                node = node[part]
            if leaf not in node:
                raise ScenarioError(f"--set {path}: no field {leaf!r} there")
            node[leaf] = value
        try:
            return Scenario.model_validate(data)
        except ValidationError as error:
            raise ScenarioError(_describe("--set", error)) from error


class ScenarioError(ValueError):
    """A scenario that cannot run, with the file, the field and the problem."""


def _describe(source: str, error: ValidationError) -> str:
    """Every problem, on one line: `source: field: problem; field: problem`."""
    problems = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        problems.append(f"{where}: {problem['msg']}")
    return f"{source}: {'; '.join(problems)}"


def load_scenario(path: Path) -> Scenario:
    try:
        raw = tomllib.loads(read_text(path, "scenario file"))
    except InputFileError as error:
        raise ScenarioError(str(error)) from error
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path}: not valid TOML: {error}") from error
    try:
        return Scenario.model_validate(raw)
    except ValidationError as error:
        raise ScenarioError(_describe(str(path), error)) from error
