"""The HTML report renders in a real browser: the header and every figure drawn, no console
error, nothing requested from the network."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.runner import run_scenario
from tests.browser import BROWSER_FLAGS, BROWSER_TIMEOUT_SECONDS, browse, chromium
from tests.test_scenarios import LIBRARY, reduced

ROOT = Path(__file__).resolve().parents[1]


def drawn(page: Path, tmp_path: Path) -> str:
    """The page's DOM once its scripts have run: what the reader's browser shows."""
    result = subprocess.run(
        [chromium(), *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'dom-profile'}",
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_SECONDS,
    )  # fmt: skip
    return result.stdout


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
    console, _, _ = browse(broken, tmp_path)
    assert any("boom" in line for line in console)


def test_the_dom_check_sees_what_scripts_drew(tmp_path):
    page = tmp_path / "drawn.html"
    page.write_text("<html><body><script>document.body.innerHTML = '<p>late</p>'</script>")
    assert "<p>late</p>" in drawn(page, tmp_path)


@pytest.mark.slow
def test_the_html_report_shows_the_header_and_every_figure_in_chromium_offline(runs, tmp_path):
    report = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "scenarios.cli", "report", *map(str, runs), "--out", str(report)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    page = report.read_text()
    titles = re.findall(r'<section class="figure"><h2>', page)
    assert len(titles) >= 10  # the comparison, distributions, drivers, markouts, outcomes
    assert not re.search(r"""<(link|img|script)[^>]+(href|src)=""", page)  # all inline
    console, shot, requested = browse(report, tmp_path, height=6000)
    assert console == [] and requested == []
    assert shot.stat().st_size > 100_000  # drawn, not a blank page
    dom = drawn(report, tmp_path)
    assert dom.count("plot-container plotly") == len(titles)  # every figure drawn
    for field in ("Results hash", "Invariants", "Config version", "Period (UTC)"):
        assert dom.count(f"<th>{field}</th>") == len(runs)  # a header per source
