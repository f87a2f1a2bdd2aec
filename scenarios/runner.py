"""Play a scenario: build its world, feed its order flow, pull its kill switch, settle what
faults left open, check the invariants, and write the run's outputs.

Outputs in the run directory: `audit.db` (the SQLite audit store, with the quote tape beside
the audit trail), `executions.parquet`
(one row per execution), `exits.parquet` (one row per deal that closed a position a run's
execution opened: stop-loss, take-profit, stop-out or close decision), `quotes.parquet`
(the quote tape), `summary.json` (statuses, percentiles, rejections, exits, faults
injected, invariants, and a results hash: same file and seed, same hash). Each is written
aside and renamed into place.

Memory stays flat however many orders a run plays: the order flow is read as it is
played, the simulator keeps only working orders, and the results are read back from the
audit store, an execution at a time, joined with the broker's ledger.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from collections import Counter
from collections.abc import Callable, Generator
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, computed_field

from engine.core.costing import CostEstimator
from engine.core.lifecycle import Execution
from engine.core.ports import BrokerError
from engine.store import ExecutionDatabase, QuoteSample, open_database
from engine.store.base import ControlKind, control_event
from scenarios.closing import feed, flatten, open_positions
from scenarios.invariants import Evidence, InvariantChecks, Violation, cases, positions_by_tag
from scenarios.orderflow import DecisionsFile, OrderFlowConfig, SyntheticFlow
from scenarios.provenance import (
    UNKNOWN,
    DecisionCounts,
    broker_name,
    config_version,
    engine_version,
    invariant_verdict,
    iso_utc,
)
from scenarios.run_outputs import (
    CHARGE_COLUMNS,
    EXECUTION_COLUMNS,
    EXIT_COLUMNS,
    QUOTE_COLUMNS,
    ROWS_PER_GROUP,
    ParquetRows,
    Percentiles,
    SpilledSamples,
    charge_row,
    commission_by_execution,
    execution_row,
    exit_rows,
    write_text_atomically,
)
from scenarios.spec import Scenario
from sim.market import MarketConfig
from sim.replay import ReplayMarket
from sim.world import SimulatedWorld

TAPE_SECONDS = 1.0
MARKOUT_TAIL = 300.0  # seconds: the longest markout horizon
KILL_SWITCH_ACTOR = "scenario kill_switch"  # who halted, in the audit trail


class RunSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: str
    seed: int
    orders: int
    by_status: dict[str, int]
    rejections_by_reason: dict[str, int]
    slippage_pips: Percentiles
    fill_time_seconds: Percentiles
    broker_orders: int
    closed_at_end: int = 0  # close decisions sent for the positions left (flatten_at_end)
    exits_by_reason: dict[str, int] = {}  # deals that closed positions the run opened
    # What the broker charged, in the account currency, negative when paid (charges.parquet
    # has each charge): commission on every deal, swap at the rollovers the run crossed.
    commission: float = 0.0
    swap: float = 0.0
    faults_injected: dict[str, int]
    virtual_seconds: float
    invariants_checked: tuple[str, ...]
    violations: tuple[Violation, ...]
    results_hash: str
    # The tear sheet's header (defaults: what a summary from before them is read as).
    description: str = ""
    engine_version: str = UNKNOWN
    config_version: str = UNKNOWN
    broker: str = UNKNOWN
    account_currency: str = "USD"
    period_start: str | None = None  # the first decision's time, ISO 8601 UTC
    period_end: str | None = None  # the last decision's
    counts: DecisionCounts = DecisionCounts()

    @property
    def ok(self) -> bool:
        return not self.violations

    @computed_field  # type: ignore[prop-decorator]
    @property
    def invariants(self) -> str:
        """The verdict: "passed", "failed: the names" or "not checked"."""
        return invariant_verdict(self.invariants_checked, (v.invariant for v in self.violations))


def arrivals_of(scenario: Scenario, seed: int, base_dir: Path) -> SyntheticFlow | DecisionsFile:
    """The scenario's order flow: its length known, its orders read as they are played."""
    if scenario.orders.decisions_file is not None:
        return DecisionsFile(base_dir / scenario.orders.decisions_file)
    flow = scenario.orders.model_dump(exclude={"decisions_file"})
    return SyntheticFlow(OrderFlowConfig(**flow), seed)


class RunInputs(NamedTuple):
    """What a run reads from outside its scenario, read and checked."""

    arrivals: SyntheticFlow | DecisionsFile
    market: MarketConfig | ReplayMarket


def read_inputs(scenario: Scenario, seed: int, base_dir: Path) -> RunInputs:
    """Read and check the decisions file and the quote files a scenario names, whole: a bad
    line of either raises here (a ValueError naming the file and line), before a run creates
    anything."""
    market = (
        ReplayMarket([scenario.replay_source(base_dir, seed)])
        if scenario.market.kind == "replay"
        else scenario.market_config()
    )
    return RunInputs(arrivals_of(scenario, seed, base_dir), market)


def build_world(
    scenario: Scenario,
    seed: int,
    database: ExecutionDatabase,
    market: MarketConfig | ReplayMarket,
) -> SimulatedWorld:
    return SimulatedWorld.build(
        seed,
        market=market,
        network=scenario.network_config(),
        account=scenario.account,
        config=scenario.engine,
        database=database,
        start=scenario.t0,
        venue=scenario.venue_config(),
        broker_kind=scenario.broker,
        terminal_config=scenario.terminal,
    )


def run_scenario(
    scenario: Scenario,
    base_dir: Path,
    seed: int | None = None,
    out_dir: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    db_url: str | None = None,
    cost_estimator: CostEstimator | None = None,
) -> RunSummary:
    """Run one scenario; with `out_dir`, write the audit store and outputs there. With
    `cost_estimator`, the engine records its estimate of each order's slippage (evidence
    only: the run's results are the same with or without it).

    The store is `db_url` if given, else `out_dir/audit.db`, else a SQLite file in a
    temporary folder, removed after the run (a million orders' audit trail is gigabytes: not
    for memory); simulation commits in groups (batched durability). The results are read
    back from the store, so it must hold no executions before the run."""
    seed = scenario.seed if seed is None else seed
    inputs = read_inputs(scenario, seed, base_dir)  # bad inputs stop us here, nothing made
    with ExitStack() as cleanup:
        if out_dir is not None:
            _make_folder(out_dir)
        if db_url is None:
            folder = out_dir or Path(cleanup.enter_context(TemporaryDirectory(prefix="arbitrex-")))
            for stale in folder.glob("audit.db*"):  # a previous run's store, its leases too
                if stale.is_dir():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
            db_url = f"sqlite:///{folder / 'audit.db'}"
        database = cleanup.enter_context(open_database(db_url, durability="batched"))
        summary = _play(
            scenario,
            seed,
            inputs.arrivals,
            inputs.market,
            database,
            out_dir,
            on_progress,
            cost_estimator,
        )
    if out_dir is not None:
        write_text_atomically(
            out_dir / "summary.json",
            json.dumps(summary.model_dump(mode="json"), indent=2, sort_keys=True) + "\n",
        )
    return summary


def _make_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file of that name, a read-only disk: the option's fault
        raise ValueError(f"{out_dir}: cannot make the output folder: {error.strerror}") from None


def _play(
    scenario: Scenario,
    seed: int,
    arrivals: SyntheticFlow | DecisionsFile,
    market: MarketConfig | ReplayMarket,
    database: ExecutionDatabase,
    out_dir: Path | None,
    on_progress: Callable[[int, int], None] | None,
    cost_estimator: CostEstimator | None = None,
) -> RunSummary:
    """The run itself, on an open store: the flow, the halts, recovery, then the checks."""
    if database.history(limit=1):
        raise ValueError(
            "the audit store already holds executions: a run reads its results back from "
            "its store, so give it an empty one (a new file or schema)"
        )
    world = build_world(scenario, seed, database, market)
    world.engine.attach_cost_estimator(cost_estimator)
    finished = [0]
    halts = _kill_switch(world, scenario)
    tape = _QuoteTape(out_dir, database)
    world.env.process(feed(world, arrivals, finished))
    world.env.process(_record_quotes(world, tape))
    total = len(arrivals)
    while finished[0] < total:
        world.env.run(until=world.env.now + 1.0)
        if on_progress:
            on_progress(finished[0], total)
    # What the broker holds as the flow ends: the protection its positions really carry.
    at_end_of_flow = positions_by_tag(open_positions(world))
    closes = flatten(world, f"{scenario.name}-{seed}") if scenario.orders.flatten_at_end else []
    if closes:
        world.env.run(until=world.env.all_of(closes))
    # A desk settles what lost replies left open once the broker answers again; the
    # quote tape runs on long enough for the longest markout after the last fill.
    world.env.run(until=world.env.now + max(scenario.settle_after_seconds, MARKOUT_TAIL))
    settled = world.engine.recover()
    if settled:  # the quote tape runs forever: run until recovery is done, not empty
        world.env.run(until=world.env.all_of(settled))
    _record_exits(world, scenario.t0)
    tape.close()
    database.flush()
    evidence = Evidence(
        database,
        world.market.is_open,
        halts,
        positions_at_end_of_flow=at_end_of_flow,
        positions_left=open_positions(world),
        flatten_at_end=scenario.orders.flatten_at_end,
    )
    return _check_and_summarise(scenario, seed, world, evidence, len(closes), out_dir)


EXIT_LOOKS = 3  # a lost reply is asked again; exits already recorded are skipped


def _record_exits(world: SimulatedWorld, since: float) -> None:
    """How the positions the run opened were closed, since it began, on the executions
    that opened them: stops, targets and closes (the engine asks the broker)."""
    for _ in range(EXIT_LOOKS):
        try:
            world.engine.record_exits(since)
            return
        except BrokerError:
            world.env.run(until=world.env.now + world.engine.config.retry_backoff_seconds)


def _check_and_summarise(
    scenario: Scenario,
    seed: int,
    world: SimulatedWorld,
    evidence: Evidence,
    closed_at_end: int,
    out_dir: Path | None,
) -> RunSummary:
    """One pass over the store's executions joined with the broker's ledger: the invariants
    checked, the summary tallied, executions.parquet and exits.parquet written as they
    stream past."""
    checks = InvariantChecks(scenario.invariants, evidence)
    tally = _Tally(scenario.t0)
    table = ParquetRows(out_dir / "executions.parquet" if out_dir else None, EXECUTION_COLUMNS)
    exits = ParquetRows(out_dir / "exits.parquet" if out_dir else None, EXIT_COLUMNS)
    commission = commission_by_execution(world.venue.charges())
    try:
        for case in cases(evidence.database.executions(), world.venue.orders.by_client()):
            checks.see(case)
            e = case.execution
            if e is not None:
                tally.add(e)
                table.add(execution_row(e, commission.get(e.execution_id, 0.0)))
                if e.exits and e.request is not None and e.request.symbol is not None:
                    spec = world.venue.spec(e.request.symbol)
                    assert spec is not None  # it filled, so the broker carries the symbol
                    for row in exit_rows(e, spec.pip):
                        exits.add(row)
        table.close()
        exits.close()
        _write_charges(world, out_dir)
        summary = tally.summary(scenario, seed, world, checks.violations())
        return summary.model_copy(update={"closed_at_end": closed_at_end})
    finally:
        tally.close()


def _write_charges(world: SimulatedWorld, out_dir: Path | None) -> None:
    """charges.parquet: every commission and swap the broker booked, in booking order."""
    charges = ParquetRows(out_dir / "charges.parquet" if out_dir else None, CHARGE_COLUMNS)
    for charge in world.venue.charges():
        charges.add(charge_row(charge))
    charges.close()


class _QuoteTape:
    """The run's quote tape, in quotes.parquet and in the audit store as the live engine
    records its own: the store read on its own (`arbitrex report audit.db`) then has the
    markouts its run folder has. Written to the store in groups: each write commits."""

    def __init__(self, out_dir: Path | None, database: ExecutionDatabase) -> None:
        self.rows = ParquetRows(out_dir / "quotes.parquet" if out_dir else None, QUOTE_COLUMNS)
        self.database = database
        self.pending: list[QuoteSample] = []

    def add(self, sample: QuoteSample) -> None:
        self.rows.add(dataclasses.asdict(sample))
        self.pending.append(sample)
        if len(self.pending) >= ROWS_PER_GROUP:
            self._flush()

    def close(self) -> None:
        self.rows.close()
        self._flush()

    def _flush(self) -> None:
        self.database.record_quotes(self.pending)
        self.pending = []


def _record_quotes(world: SimulatedWorld, tape: _QuoteTape) -> Generator[Any, Any, None]:
    """A once-a-second tape of every symbol's quote: what markouts are measured against."""
    while True:
        now = world.env.now
        for symbol in world.market.symbols:
            quote = world.market.quote(symbol, now)
            if quote is not None:
                tape.add(QuoteSample(symbol, now, quote.bid, quote.ask))
        yield world.env.timeout(TAPE_SECONDS)


def _kill_switch(world: SimulatedWorld, scenario: Scenario) -> list[tuple[float, float]]:
    windows = []
    for switch in scenario.kill_switch:
        start = scenario.t0 + switch.halt_at_seconds
        end = scenario.t0 + switch.resume_at_seconds if switch.resume_at_seconds else float("inf")
        windows.append((start, end))
        world.env.process(_halt_between(world, start, end, f"scenario {scenario.name}"))
    return windows


def _halt_between(
    world: SimulatedWorld, start: float, end: float, reason: str
) -> Generator[Any, Any, None]:
    """Halt, then record the halt; record the resumption, then resume: in the audit trail
    as the API's /halt and /resume leave them, so a run's auditor sees when it was halted."""
    yield world.env.timeout(start - world.env.now)
    world.engine.halt()
    _record_switch(world, ControlKind.TRADING_HALTED, reason)
    if end != float("inf"):
        yield world.env.timeout(end - world.env.now)
        _record_switch(world, ControlKind.TRADING_RESUMED, reason)
        world.engine.resume()


def _record_switch(world: SimulatedWorld, kind: ControlKind, reason: str) -> None:
    event = control_event(
        kind,
        world.env.now,
        by=KILL_SWITCH_ACTOR,
        role=None,  # no API key acted, so no role
        reason=reason,
        config_version=world.engine.config.version,
    )
    world.engine.database.append_control(event)


class _Tally:
    """The summary's figures, gathered one execution at a time."""

    def __init__(self, t0: float) -> None:
        self.orders = 0
        self.statuses: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.exits: Counter[str] = Counter()
        self.samples = SpilledSamples()
        self.digest = hashlib.sha256()
        self.finished = t0
        self.decided: tuple[float, float] | None = None  # the first and last decision's time

    def add(self, e: Execution) -> None:
        self.orders += 1
        if e.status is not None:
            self.statuses[e.status.value] += 1
        if e.outcome_reason is not None:
            self.reasons[e.outcome_reason.value] += 1
        if e.slippage_pips is not None:
            self.samples.add("slippage_pips", e.slippage_pips)
        if (fill_time := e.fill_time_seconds) is not None:
            self.samples.add("fill_time_seconds", fill_time)
        self.digest.update(
            f"{e.execution_id}|{e.status}|{e.executed_units}|{e.average_fill_price!r}|"
            f"{e.slippage_pips!r}|{e.outcome_reason}|{e.attempts}\n".encode()
        )
        # Exits only when there are any: a run without positions closed keeps its hash.
        for x in e.exits:
            self.exits[x.reason.value] += 1
            self.digest.update(
                f"exit|{x.deal_id}|{x.position_id}|{x.reason}|{x.units}|{x.price!r}|"
                f"{x.level!r}\n".encode()
            )
        self.finished = max(self.finished, e.completed_at or e.created_at or self.finished)
        if e.created_at is not None:
            first, last = self.decided or (e.created_at, e.created_at)
            self.decided = (min(first, e.created_at), max(last, e.created_at))

    def summary(
        self, scenario: Scenario, seed: int, world: SimulatedWorld, violations: list[Violation]
    ) -> RunSummary:
        faults = Counter({f"broker refused {code}": n for code, n in world.venue.refusals.items()})
        faults.update(
            {f"network {fate}": n for fate, n in world.network.fates.items() if fate != "delivered"}
        )
        # The broker's ledger, the bytes venue.ledger_bytes() gives, without holding them.
        for number, row in enumerate(world.venue.ledger_rows()):
            if number:
                self.digest.update(b"\n")
            self.digest.update(repr(row).encode())
        charges = world.venue.charges()
        commission = math.fsum(c.amount for c in charges if c.kind == "commission")
        swap = math.fsum(c.amount for c in charges if c.kind == "swap")
        if charges:  # only then: a run that pays nothing keeps its hash
            self.digest.update(f"\ncharges|{commission!r}|{swap!r}".encode())
        return RunSummary(
            scenario=scenario.name,
            seed=seed,
            orders=self.orders,
            by_status=dict(sorted(self.statuses.items())),
            rejections_by_reason=dict(sorted(self.reasons.items())),
            slippage_pips=self.samples.percentiles("slippage_pips"),
            fill_time_seconds=self.samples.percentiles("fill_time_seconds"),
            broker_orders=len(world.venue.orders),
            exits_by_reason=dict(sorted(self.exits.items())),
            commission=round(commission, 6),
            swap=round(swap, 6),
            faults_injected=dict(sorted(faults.items())),
            virtual_seconds=round(self.finished - scenario.t0, 6),
            invariants_checked=tuple(scenario.invariants),
            violations=tuple(violations),
            results_hash=self.digest.hexdigest()[:16],
            description=scenario.description,
            engine_version=engine_version(),
            config_version=config_version(scenario),
            broker=broker_name(scenario),
            account_currency=scenario.account.currency,
            period_start=iso_utc(self.decided[0]) if self.decided else None,
            period_end=iso_utc(self.decided[1]) if self.decided else None,
            counts=DecisionCounts.of(self.statuses, self.reasons),
        )

    def close(self) -> None:
        self.samples.close()
