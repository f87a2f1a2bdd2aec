"""The report renders in a real browser, and the notebooks run from a clean checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.runner import run_scenario
from tests.test_scenarios import LIBRARY, reduced

ROOT = Path(__file__).resolve().parents[1]
BROWSER_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
)  # fmt: skip


def chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        message = "headless Chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; .ci/run installs it")
        pytest.skip(message)
    return browser


def browse(page: Path, tmp_path: Path) -> tuple[list[str], Path]:
    """Console messages the page produced, and a screenshot of it."""
    shot = tmp_path / f"{page.stem}.png"
    result = subprocess.run(
        [chromium(), *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1200,2400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return console, shot


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    directories = []
    for name in ("calm", "chaos_monkey"):
        out = tmp_path_factory.mktemp(name)
        run_scenario(reduced(LIBRARY / f"{name}.toml"), LIBRARY, out_dir=out)
        directories.append(out)
    return directories


def test_the_browser_check_does_see_console_errors(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>console.error('boom'); nope();</script></body></html>")
    console, _ = browse(broken, tmp_path)
    assert any("boom" in line for line in console)


def test_the_html_report_renders_in_headless_chromium_with_no_console_errors(runs, tmp_path):
    report = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "scenarios.cli", "report", *map(str, runs), "--out", str(report)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    page = report.read_text()
    assert page.count("<img") == 5 and "data:image/png;base64," in page
    assert "<script" not in page and "http" not in page  # self-contained
    console, shot = browse(report, tmp_path)
    assert console == []
    assert shot.stat().st_size > 20_000  # figures were drawn, not a blank page
