"""A page opened in headless Chromium, as a reader would: what it printed to the console,
what it looked like, and every URL it requested (from Chromium's own network log)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSER_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0", "--net-log-capture-mode=Default",
)  # fmt: skip
# A busy machine can take this long to start Chromium and draw a page of figures; no test
# asserts on the time, only that the page rendered.
BROWSER_TIMEOUT_SECONDS = 120


def chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        message = "headless Chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; .ci/run installs it")
        pytest.skip(message)
    return browser


def requested_urls(net_log: Path) -> list[str]:
    """The URL of every request the page made: each URL_REQUEST in Chromium's net log that
    a document initiated. Chromium's own housekeeping (update checks, network time), which
    no flag fully silences, has no initiating origin and is left out."""
    log = json.loads(net_log.read_text())
    url_request = log["constants"]["logSourceType"]["URL_REQUEST"]
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        params["url"]
        for event in log.get("events", [])
        if event.get("source", {}).get("type") == url_request
        and event.get("type") == start_job
        and "url" in (params := event.get("params", {}))
        and params.get("initiator") != "not an origin"
    ]


def browse(page: Path, tmp_path: Path, height: int = 2400) -> tuple[list[str], Path, list[str]]:
    """Console messages the page produced, a screenshot of it (1200 px wide, `height` high)
    and the URLs it requested over the network (a file:// page itself is not one)."""
    shot = tmp_path / f"{page.stem}.png"
    net_log = tmp_path / f"{page.stem}.netlog.json"
    result = subprocess.run(
        [chromium(), *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         f"--log-net-log={net_log}", f"--window-size=1200,{height}", f"--screenshot={shot}",
         page.as_uri()],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_SECONDS,
    )  # fmt: skip
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return console, shot, requested_urls(net_log)
