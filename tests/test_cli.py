"""The `arbitrex` command line, as a user meets it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def arbitrex(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("arbitrex")
    if exe is None:
        pytest.fail("the arbitrex command is not installed: pip install -e '.[dev]'")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


def test_the_demo_run_twice_with_the_same_seed_prints_identical_results():
    first, second = arbitrex("demo", "--seed", "7"), arbitrex("demo", "--seed", "7")
    assert first.returncode == second.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert "1000 executions" in first.stdout
    assert "FILLED" in first.stdout and "results hash:" in first.stdout


def test_another_seed_gives_another_run():
    seven, eight = (
        arbitrex("demo", "--orders", "200", "--seed", "7"),
        arbitrex("demo", "--orders", "200", "--seed", "8"),
    )
    hashes = {line for r in (seven, eight) for line in r.stdout.splitlines() if "hash" in line}
    assert len(hashes) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("demo", "--orders", "0"), "--orders"),
        (("demo", "--orders", "many"), "--orders"),
        (("demo", "--seed", "-1"), "--seed"),
        (("frobnicate",), "No such command"),
    ],
)
def test_bad_arguments_get_a_clear_error_and_no_traceback(args, message):
    result = arbitrex(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_demo_run_on_a_sqlite_file_verifies_and_a_tampered_record_is_named(tmp_path):
    path = tmp_path / "audit.db"
    url = f"sqlite:///{path}"
    assert arbitrex("demo", "--orders", "50", "--db", url).returncode == 0
    verified = arbitrex("audit", "verify", "--db", url)
    assert verified.returncode == 0 and "records verified" in verified.stdout

    import sqlite3

    with sqlite3.connect(path) as behind_our_back:
        behind_our_back.execute("DROP TRIGGER audit_events_refuse_update")
        behind_our_back.execute("UPDATE audit_events SET payload = '{}' WHERE seq = 42")
    tampered = arbitrex("audit", "verify", "--db", url)
    assert tampered.returncode == 1
    assert "record 42" in tampered.stdout and "TAMPERED" in tampered.stdout


def test_a_demo_into_a_store_already_used_is_refused_with_a_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    assert arbitrex("demo", "--orders", "20", "--db", url).returncode == 0
    again = arbitrex("demo", "--orders", "20", "--db", url)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert " ".join(again.stderr.split()).endswith(
        "a run reads its results back from its store, so give it an empty one (a new file "
        "or schema)"
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_the_audit_trail_exports_to_each_format(tmp_path, fmt):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    assert arbitrex("demo", "--orders", "20", "--db", url).returncode == 0
    target = tmp_path / f"trail.{fmt}"
    result = arbitrex("audit", "export", "--db", url, "--out", str(target))
    assert result.returncode == 0, result.stderr
    written = int(result.stdout.split()[0])
    assert written > 20 and target.stat().st_size > 0


def test_a_malformed_store_url_is_refused_with_the_accepted_forms():
    result = arbitrex("audit", "verify", "--db", "mysql://x")
    assert result.returncode == 2 and "sqlite:///" in result.stderr


# -- the entry point, configuration and exit codes ------------------------------------------

HEAVY = {"fastapi", "uvicorn", "pandas", "numpy", "pyarrow", "plotly", "sklearn", "simpy", "engine"}


def imported_by(*args: str) -> set[str]:
    """The top-level packages `python -m scenarios.cli ARGS` imports, as -X importtime lists
    them: counted, never timed."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "scenarios.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }


@pytest.mark.parametrize("args", [("--help",), ("--version",)])
def test_help_and_version_load_neither_the_engine_nor_fastapi_nor_pandas(args):
    imported = imported_by(*args)
    assert "typer" in imported  # the list is read right
    assert imported & HEAVY == set()


def test_a_scenario_command_loads_neither_the_api_nor_the_figures_nor_the_cost_model():
    imported = imported_by("sweep", "--help")
    assert {"simpy", "engine"} <= imported  # the command itself was loaded
    assert imported & {"fastapi", "uvicorn", "plotly", "sklearn"} == set()


def test_version_prints_the_installed_version():
    result = arbitrex("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"arbitrex {metadata.version('arbitrex-execution')}"


def test_the_command_list_help_shows_is_the_application_s_own():
    from scenarios.cli.root import COMMANDS, full_application

    group = full_application()
    context = group.make_context("arbitrex", ["--help"], resilient_parsing=True)
    assert set(COMMANDS) == set(group.list_commands(context))
    for name, summary in COMMANDS.items():
        real = " ".join((group.get_command(context, name).help or "").split())
        assert real.startswith(summary.rstrip(".")), name


def test_serve_settings_come_from_flags_then_environment_then_file_then_defaults(
    tmp_path, monkeypatch
):
    from scenarios.cli.settings import load

    config = tmp_path / "arbitrex.toml"
    config.write_text('[serve]\ndb = "sqlite:///file.db"\nport = 9001\nburst = 7\nseed = 3\n')
    monkeypatch.setenv("ARBITREX_PORT", "9002")
    monkeypatch.setenv("ARBITREX_SEED", "4")

    settings = load({"seed": 5}, config)

    assert settings.seed == 5  # the flag, over the environment and the file
    assert settings.port == 9002  # the environment, over the file
    assert (settings.burst, settings.db) == (7, "sqlite:///file.db")  # the file
    assert settings.host == "127.0.0.1"  # the default


def test_the_config_file_s_mt5_table_configures_the_live_broker(tmp_path, monkeypatch):
    from scenarios.cli.settings import load_mt5_config

    config = tmp_path / "arbitrex.toml"
    config.write_text(
        '[serve]\ndb = "memory://"\n\n[mt5]\nmagic = 20261201\n'
        'symbols = { EURUSD = "EURUSD.m" }\nserver_time_zone = "America/New_York"\n'
        "server_time_offset_seconds = 25200\n"
    )
    monkeypatch.delenv("ARBITREX_CONFIG", raising=False)

    mt5 = load_mt5_config(config)

    assert (mt5.magic, mt5.symbols) == (20261201, {"EURUSD": "EURUSD.m"})
    assert (mt5.server_time_zone, mt5.server_time_offset_seconds) == ("America/New_York", 25200)
    assert load_mt5_config(None) == type(mt5)()  # no file: the defaults


def test_the_config_file_can_be_named_by_the_environment(tmp_path, monkeypatch):
    from scenarios.cli.settings import load

    config = tmp_path / "arbitrex.toml"
    config.write_text('[serve]\ndb = "memory://"\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("ARBITREX_CONFIG", str(config))
    assert load({}).host == "0.0.0.0"


@pytest.mark.parametrize(
    ("file", "env", "message"),
    [
        ('[serve]\ndb = "memory://', {}, "not TOML"),
        ("[serve]\nprot = 8000\n", {}, "prot in"),
        ('[serve]\ndb = "memory://"\nport = 0\n', {}, "port in"),
        ("[server]\n", {}, "unknown table"),
        ('[serve]\ndb = "memory://"\n[mt5]\nmagik = 7\n', {}, "mt5.magik in"),
        ('[serve]\ndb = "memory://"\n[mt5]\nserver_time_zone = "Mars"\n', {}, "no IANA time zone"),
        ('[serve]\ndb = "memory://"\n[mt5]\nserver_time_zone = "America"\n', {}, "no IANA"),
        ('[serve]\ndb = "memory://"\n', {"ARBITREX_PORT": "eighty"}, "ARBITREX_PORT"),
        ('[serve]\ndb = "memory://"\n', {"ARBITREX_BROKER": "ib"}, "ARBITREX_BROKER"),
        ("", {}, "no db given"),
    ],
)
def test_a_bad_configuration_is_refused_in_one_line_with_exit_2(tmp_path, file, env, message):
    config = tmp_path / "arbitrex.toml"
    config.write_text(file)
    result = subprocess.run(
        [sys.executable, "-m", "scenarios.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("ARBITREX_")} | env,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_serve_on_a_port_in_use_exits_3(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                *(sys.executable, "-m", "scenarios.cli", "serve", "--db", "memory://"),
                *("--keys", str(tmp_path / "k.db"), "--port", str(port)),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    assert result.returncode == 3, result.stderr[-1000:]
