"""The Prometheus alert rules (ops/prometheus/alerts.yml) are valid and do what their unit
tests (alerts_test.yml) say, checked with promtool, and watch only metrics the API exports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.test_api_metrics import InProcess, served  # noqa: F401 - the fixture

RULES = Path(__file__).resolve().parents[1] / "ops" / "prometheus"
PROMTOOL = shutil.which("promtool")

# CI installs Debian's prometheus package (.ci/run): there a missing promtool is a failure,
# elsewhere a reason to skip.
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and os.environ.get("CI") != "true",
    reason="promtool not installed (Debian: apt-get install prometheus)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool is missing: CI must install Debian's prometheus"
    return subprocess.run(
        [PROMTOOL, *args], cwd=RULES, capture_output=True, text=True, timeout=120, check=False
    )


@needs_promtool
def test_promtool_checks_the_alert_rules_as_valid():
    result = promtool("check", "rules", "alerts.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass_for_every_rule_firing_and_not_firing():
    tested = {
        case["alertname"]
        for test in yaml.safe_load((RULES / "alerts_test.yml").read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    rules = {
        rule["alert"]
        for group in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }

    result = promtool("test", "rules", "alerts_test.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert tested == rules


def test_every_rule_has_a_for_a_severity_and_a_summary():
    groups = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]

    for rule in (rule for group in groups for rule in group["rules"]):
        assert rule["for"] and rule["labels"]["severity"] in {"warning", "critical"}, rule
        assert rule["annotations"]["summary"], rule


def test_the_rules_watch_only_metrics_the_api_exports(served: InProcess):  # noqa: F811
    families = text_string_to_metric_families(served.scrape().text)
    exported = {sample.name for family in families for sample in family.samples}
    groups = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
    used = {
        name
        for rule in (rule for group in groups for rule in group["rules"])
        for name in re.findall(r"\barbitrex_\w+", rule["expr"])
    }

    assert used and used <= exported, used - exported
