"""The `arbitrex` command line, as a user meets it."""

from __future__ import annotations

import shutil
import subprocess

import pytest


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
