"""A scenario file: everything a run needs, declared in TOML and validated with pydantic.

Times inside a run are given as offsets in seconds from the scenario's `start`, so a file
reads as a story ("the broker goes down 60 s in, for 30 s") and survives a change of date.
Paths are relative to the scenario file. Any error names the file, the field and the
problem, and nothing runs.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from engine.core.config import EngineConfig
from scenarios.orderflow import OrderFlowConfig
from sim.account import AccountConfig
from sim.latency import LatencyConfig
from sim.liquidity import DepthLadder
from sim.market import MarketConfig, NewsEvent, RegimeConfig, SymbolConfig
from sim.mt5 import TerminalConfig
from sim.network import FaultKind, FaultWindow, LateExecution, NetworkConfig
from sim.quotes_csv import BadQuotePolicy, BarQuotesConfig, IntraBarPath
from sim.rejections import RejectionConfig
from sim.sessions import FxWeek
from sim.spreads import SpreadConfig
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
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewsAt(_Section):
    at_seconds: Annotated[float, Field(ge=0.0)]
    symbols: tuple[str, ...] = ()
    jump_pips: Annotated[float, Field(ge=0.0)] = 10.0
    volatility_multiplier: Annotated[float, Field(ge=1.0)] = 4.0
    window_seconds: Annotated[float, Field(gt=0.0)] = 300.0


class ReplayBars(_Section):
    symbol: str
    digits: int = 5
    bid_path: Path
    ask_path: Path
    bad_quotes: BadQuotePolicy = "drop"
    intra_bar: IntraBarPath = "bar-direction"


class MarketSection(_Section):
    kind: Literal["synthetic", "replay"] = "synthetic"
    symbols: tuple[SymbolConfig, ...] | None = None
    tick_seconds: Annotated[float, Field(gt=0.0)] = 0.25
    regimes: RegimeConfig | None = RegimeConfig()
    news: tuple[NewsAt, ...] = ()
    spreads: SpreadConfig = SpreadConfig()
    holidays: tuple[datetime, ...] = ()
    replay: ReplayBars | None = None

    @model_validator(mode="after")
    def _replay_needs_data(self) -> MarketSection:
        if self.kind == "replay" and self.replay is None:
            raise ValueError("a replay market needs a [market.replay] section")
        return self


class FaultAt(_Section):
    start_seconds: Annotated[float, Field(ge=0.0)]
    end_seconds: Annotated[float, Field(gt=0.0)]
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
    fill_delay_seconds: Annotated[float, Field(ge=0.0)] = 0.0


class OrdersSection(OrderFlowConfig):
    decisions_file: Path | None = None  # JSON Lines of RPM outputs, instead of the flow


class KillSwitch(_Section):
    halt_at_seconds: Annotated[float, Field(ge=0.0)]
    resume_at_seconds: Annotated[float | None, Field(gt=0.0)] = None


class Scenario(_Section):
    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 1
    start: AwareDatetime = datetime(2024, 1, 8, 7, 0, tzinfo=UTC)  # naive: refused
    broker: Literal["sim", "mt5-emulated"] = "sim"
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
    settle_after_seconds: Annotated[float, Field(ge=0.0)] = 120.0

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
        )

    def replay_source(self, base_dir: Path) -> BarQuotesConfig:
        assert self.market.replay is not None
        r = self.market.replay
        return BarQuotesConfig(
            symbol=r.symbol,
            digits=r.digits,
            bid_path=(base_dir / r.bid_path).resolve(),
            ask_path=(base_dir / r.ask_path).resolve(),
            bad_quotes=r.bad_quotes,
            intra_bar=r.intra_bar,
        )

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
    problems = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        problems.append(f"{source}: {where}: {problem['msg']}")
    return "\n".join(problems)


def load_scenario(path: Path) -> Scenario:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ScenarioError(f"{path}: no such scenario file") from error
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path}: not valid TOML: {error}") from error
    try:
        return Scenario.model_validate(raw)
    except ValidationError as error:
        raise ScenarioError(_describe(str(path), error)) from error
