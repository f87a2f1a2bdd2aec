"""Malformed scenario, decisions and quote files, and bad options, as a careless or hostile
user hands them to `arbitrex run`.

The contract, for any input: a clean run (exit 0, or exit 1 for violated invariants), or
exit 2 with exactly one line on stderr and nothing created under --out; never a traceback,
never a hang.
"""

from __future__ import annotations

import pickle
import random
import re
import signal
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner, Result

from scenarios.cli.app import app
from scenarios.orderflow import DecisionLine
from scenarios.spec import Scenario
from scenarios.sweep import parse_seeds
from sim.quotes_csv import QuoteFileError

# Every number of it is a numeric value (no digits in names or strings), so a regex finds
# them all; zeros where they may be, since a digit inserted after a 0 makes invalid TOML.
SCENARIO = """\
name = "fuzz"
seed = 7
settle_after_seconds = 0
kill_switch = [{ halt_at_seconds = 0.5, resume_at_seconds = 0.75 }]

[market]
tick_seconds = 0.25
regimes = { mean_calm_minutes = 60, mean_volatile_minutes = 5, volatile_multiplier = 1.5 }
news = [{ at_seconds = 0.25, jump_pips = 3.0, window_seconds = 10 }]

[latency]
client_to_broker = { kind = "lognormal", median_ms = 10.0, sigma = 0.4, tail_probability = 0.01 }
broker_processing = { kind = "empirical", samples_ms = [2.0, 3.0] }
broker_to_client = { kind = "constant", ms = 5.0 }

[faults]
reply_loss = 0.1
windows = [{ start_seconds = 0.25, end_seconds = 0.5, kind = "hang" }]
late_execution = { probability = 0.5, min_seconds = 0.5, max_seconds = 2.0 }

[venue]
fill_delay_seconds = 0

[account]
balance = 1000000.0
leverage = 100

[orders]
orders = 5
rate_per_second = 50.0
odd_size_share = 0.2
"""
DECISIONS_SCENARIO = """\
name = "decisions"
settle_after_seconds = 0
[orders]
decisions_file = "decisions.jsonl"
"""
DECISION = (
    '{"delay_seconds": 0, "rpm": {"decision": {"status": "APPROVED", "decision_id": "%s", '
    '"approved_trade": {"symbol": "EURUSD", "direction": 1, "position_units": 10000, '
    '"confidence_score": 1, "max_slippage_pips": 5}}}}'
)
DECISIONS = "".join(DECISION % name + "\n" for name in ("a", "b", "c"))
REPLAY_SCENARIO = """\
name = "replay"
start = 2024-01-10T12:00:00Z
settle_after_seconds = 0
[market]
kind = "replay"
replay = { symbol = "EURUSD", bid_path = "bid.csv", ask_path = "ask.csv", bad_quotes = "drop", \
intra_bar = "close" }
[orders]
orders = 5
symbols = ["EURUSD"]
"""
BARS_FROM = datetime(2024, 1, 10, 12, tzinfo=UTC)
BID_BAR, ASK_BAR = (1.1000, 1.1003, 1.0999, 1.1002), (1.1001, 1.1004, 1.1000, 1.1003)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")
PRICE = re.compile(r"\d+\.\d+")  # in a quote file: not the digits of its timestamps
# The extremes a number is tried with, spelt for TOML and CSV (as Python reads floats).
EXTREMES = ["inf", "-inf", "nan", "-1", "0", "1e308", "-1e308", "1e-300", str(10**20), str(2**63)]
JSON_EXTREMES = ["Infinity", "-Infinity", "NaN", *EXTREMES[3:]]
HANG_SECONDS = 30


def bars(prices: tuple[float, ...], minutes: int = 20) -> str:
    rows = [
        f"{(BARS_FROM + timedelta(minutes=i)).isoformat()},{','.join(f'{p:.5f}' for p in prices)}"
        for i in range(minutes)
    ]
    return "timestamp,open,high,low,close\n" + "\n".join(rows) + "\n"


class Hang(Exception):
    pass


@contextmanager
def hang_is_a_failure(seconds: float) -> Iterator[None]:
    def interrupt(*_: object) -> None:
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(scenario: Path, *options: str) -> tuple[Result, Path]:
    out = scenario.parent / "out"
    with hang_is_a_failure(HANG_SECONDS):
        result = CliRunner().invoke(app, ["run", str(scenario), "--out", str(out), *options])
    return result, out


def assert_ran_or_refused_in_one_line(result: Result, out: Path) -> None:
    """A clean run, a run whose invariants failed, or one line of refusal and no outputs."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{result.exception!r}\n{result.stderr}") from result.exception
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert result.stdout == ""
        assert not out.exists(), sorted(p.name for p in out.iterdir())
    elif result.exit_code == 1:
        assert "INVARIANTS VIOLATED" in result.stdout, result.stdout + result.stderr
    else:
        assert result.exit_code == 0, result.stdout + result.stderr
        assert (out / "summary.json").exists()


# -- the malformed inputs of the issue -----------------------------------------------------


def write(folder: Path, files: dict[str, str | bytes | None]) -> None:
    """Each file with its content; None makes a folder of that name."""
    for name, content in files.items():
        if content is None:
            (folder / name).mkdir()
        elif isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_text(content)


REPLAY_FILES = {
    "replay.toml": REPLAY_SCENARIO,
    "bid.csv": bars(BID_BAR),
    "ask.csv": bars(ASK_BAR),
}
HOSTILE = {
    "random bytes": ({"s.toml": random.Random(1).randbytes(512)}, "s.toml", "not UTF-8 text"),
    "a latin-1 comment": (
        {"s.toml": b'name = "x"\n# caf\xe9\n'},
        "s.toml",
        "s.toml:2: not UTF-8 text: byte 0xE9 at offset 16",
    ),
    "a folder": ({"s.toml": None}, "s.toml", "s.toml: a folder, not a scenario file"),
    "orders past the maximum": (
        {"s.toml": 'name = "x"\n[orders]\norders = 99999999999999999999\n'},
        "s.toml",
        "orders.orders: Input should be less than or equal to 1000000",
    ),
    "an infinite rate": (
        {"s.toml": 'name = "x"\n[orders]\nrate_per_second = inf\n'},
        "s.toml",
        "orders.rate_per_second: Input should be a finite number",
    ),
    "no decisions file": (
        {"s.toml": DECISIONS_SCENARIO},
        "s.toml",
        "decisions.jsonl: no such decisions file",
    ),
    "an infinite delay": (
        {
            "s.toml": DECISIONS_SCENARIO,
            "decisions.jsonl": DECISIONS.replace('"delay_seconds": 0', '"delay_seconds": Infinity'),
        },
        "s.toml",
        "decisions.jsonl:1: delay_seconds: Input should be a finite number",
    ),
    "delays past a week": (
        {
            "s.toml": DECISIONS_SCENARIO,
            "decisions.jsonl": DECISIONS.replace('"delay_seconds": 0', '"delay_seconds": 400000'),
        },
        "s.toml",
        "decisions.jsonl:2: the delays add up to 800000 s",
    ),
    "a bad quote": (
        {**REPLAY_FILES, "ask.csv": bars(ASK_BAR).replace("1.10010", "1.1x010", 1)},
        "replay.toml",
        "ask.csv:2: open '1.1x010' is not a number",
    ),
    "an absurd price on every row": (
        {**REPLAY_FILES, "ask.csv": PRICE.sub("1e308", bars(ASK_BAR))},
        "replay.toml",
        "ask.csv:2: open '1e308' is above any price (1e+09)",
    ),
    "no quote file": (
        {k: v for k, v in REPLAY_FILES.items() if k != "bid.csv"},
        "replay.toml",
        "market.replay.bid_path: ",
    ),
    "markup in a message": ({}, "[/x].toml", "[/x].toml: no such scenario file"),
}


@pytest.mark.parametrize(("files", "target", "message"), HOSTILE.values(), ids=HOSTILE.keys())
def test_a_malformed_input_is_refused_in_one_line_and_nothing_is_created(
    tmp_path, files, target, message
):
    write(tmp_path, files)
    result, out = run(tmp_path / target)
    assert result.exit_code == 2
    assert_ran_or_refused_in_one_line(result, out)
    assert message in result.stderr


def test_names_are_printed_as_written_not_as_markup(tmp_path):
    write(tmp_path, {"s.toml": SCENARIO.replace('"fuzz"', '"[/x] :smile:"')})
    result, _ = run(tmp_path / "s.toml")
    assert result.exit_code == 0 and "[/x] :smile:: 5 executions" in result.stdout


def test_a_refused_run_leaves_an_earlier_runs_outputs_as_they_were(tmp_path):
    write(tmp_path, {"s.toml": SCENARIO})
    result, out = run(tmp_path / "s.toml")
    assert result.exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    write(tmp_path, {"s.toml": SCENARIO.replace("orders = 5", "orders = 0")})
    assert run(tmp_path / "s.toml")[0].exit_code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_an_output_folder_that_is_a_file_is_refused_and_left_alone(tmp_path):
    write(tmp_path, {"s.toml": SCENARIO, "out": "mine"})
    result, out = run(tmp_path / "s.toml")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "cannot make the output folder" in result.stderr and out.read_text() == "mine"


@pytest.mark.parametrize("seeds", ["1-99999999999", "-1", "x", str(2**63)])
def test_a_sweep_refuses_seeds_it_could_not_hold_before_spelling_them_out(seeds):
    with pytest.raises(ValueError, match="at most 10000 integers"):
        parse_seeds(seeds)


def test_a_quote_file_error_comes_back_whole_from_a_sweep_worker():
    error = QuoteFileError(Path("bid.csv"), 3, "bad")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is QuoteFileError and (again.line, str(again)) == (3, "bid.csv:3: bad")


def _models(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models(argument)


def test_every_model_a_file_reaches_refuses_infinity_and_nan():
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [Scenario, DecisionLine]
    while todo:
        model = todo.pop()
        if model not in seen:
            seen.add(model)
            todo.extend(m for f in model.model_fields.values() for m in _models(f.annotation))
    lax = sorted(m.__name__ for m in seen if m.model_config.get("allow_inf_nan") is not False)
    assert len(seen) > 20 and not lax


# -- the fuzzer ------------------------------------------------------------------------------


def mutate(text: str, mutations: list[tuple[str, int, int]]) -> bytes:
    """`text` with bytes flipped (xor), inserted or deleted at the positions given."""
    data = bytearray(text.encode())
    for kind, position, byte in mutations:
        at = position % len(data)
        if kind == "flip":
            data[at] ^= byte
        elif kind == "insert":
            data.insert(at, byte)
        else:
            del data[at]
    return bytes(data)


def fuzz_inputs(
    base: dict[str, str], target: str, numbers: re.Pattern[str], spellings: list[str]
) -> st.SearchStrategy[dict[str, str | bytes]]:
    """`base`, its file `target` changed: up to three bytes flipped, inserted or deleted
    (most inputs stay near valid ones), or one of its `numbers` made one of the extremes."""
    text = base[target]
    mutation = st.tuples(
        st.sampled_from(["flip", "insert", "delete"]),
        st.integers(0, len(text) - 1),
        st.integers(1, 255),
    )
    mutated = st.lists(mutation, min_size=1, max_size=3).map(lambda m: mutate(text, m))
    spans = [found.span() for found in numbers.finditer(text)]
    extreme = st.builds(
        lambda span, value: text[: span[0]] + value + text[span[1] :],
        st.sampled_from(spans),
        st.sampled_from(spellings),
    )
    return st.one_of(mutated, extreme).map(lambda changed: {**base, target: changed})


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def check(files: dict[str, str | bytes], target: str, *options: str) -> None:
    with TemporaryDirectory() as folder:
        write(Path(folder), files)
        assert_ran_or_refused_in_one_line(*run(Path(folder) / target, *options))


@pytest.mark.slow  # a minute or more each on a busy machine; CI runs them
@FUZZ
@given(fuzz_inputs({"s.toml": SCENARIO}, "s.toml", NUMBER, EXTREMES))
def test_fuzzed_scenario_files_run_or_are_refused_in_one_line(files):
    check(files, "s.toml")


@pytest.mark.slow  # a minute or more each on a busy machine; CI runs them
@FUZZ
@given(
    fuzz_inputs(
        {"s.toml": DECISIONS_SCENARIO, "decisions.jsonl": DECISIONS},
        "decisions.jsonl",
        NUMBER,
        JSON_EXTREMES,
    )
)
def test_fuzzed_decisions_files_run_or_are_refused_in_one_line(files):
    check(files, "s.toml")


@pytest.mark.slow  # a minute or more each on a busy machine; CI runs them
@FUZZ
@given(
    st.sampled_from(["bid.csv", "ask.csv"]).flatmap(
        lambda name: fuzz_inputs(REPLAY_FILES, name, PRICE, EXTREMES)
    )
)
def test_fuzzed_quote_files_run_or_are_refused_in_one_line(files):
    check(files, "replay.toml")


@pytest.mark.slow  # a minute or more each on a busy machine; CI runs them
@FUZZ
@given(
    st.one_of(
        st.sampled_from(EXTREMES),
        st.text(max_size=8),
        st.integers(-(2**70), 2**70).map(str),
    )
)
def test_fuzzed_seed_options_run_or_are_refused_in_one_line(seed):
    check({"s.toml": SCENARIO}, "s.toml", "--seed", seed)
