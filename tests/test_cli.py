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
