"""The deployment files (ops/, Dockerfile): the compose file is one `docker compose up` can
run, Prometheus scrapes what the server serves, and the Grafana dashboard asks only for
metrics the server exports — read from the running app, not from a list kept by hand."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from engine.api import Role
from tests.api_support import approved, paper_api

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "ops"
COMPOSE = OPS / "compose.yaml"
PROMETHEUS = OPS / "prometheus" / "prometheus.yml"
DASHBOARD = OPS / "grafana" / "arbitrex.json"
PROVISIONING = OPS / "grafana" / "provisioning"

# Series Prometheus writes itself for every target: a dashboard may ask for them.
MADE_BY_PROMETHEUS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Words of PromQL that look like names: aggregations, keywords, and the units of offsets.
PROMQL_WORDS = {
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label
    matchers, grouping clauses, ranges, numbers, function calls and keywords are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\$\w+", " ", expr)  # Grafana's variables, e.g. $__rate_interval
    expr = re.sub(r"(?<![\w:])[0-9][0-9.]*(?:[eE][+-]?[0-9]+|[smhdwy]+)?", " ", expr)
    names = set()
    for found in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        followed_by = expr[found.end() :].lstrip()[:1]
        if found.group() not in PROMQL_WORDS and followed_by != "(":
            names.add(found.group())
    return names


def test_the_promql_reader_finds_metric_names_and_nothing_else():
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{route="/x y"}[5m])))'
        " / on (job) group_left b_total + sum without (reason) (c offset 5m) > bool 2e3"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


# --- compose --------------------------------------------------------------------------------


def test_the_compose_file_runs_the_server_its_database_prometheus_and_grafana():
    services = compose()["services"]
    assert {"arbitrex", "postgres", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        assert isinstance(service.get("image"), str) and service["image"], name
        if "build" in service:
            context = (OPS / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name


def test_every_file_the_compose_file_mounts_exists_and_every_volume_is_declared():
    spec = compose()
    declared = set(spec.get("volumes") or {})
    for name, service in spec["services"].items():
        for mount in service.get("volumes", []):
            source, target, *_ = mount.split(":")
            assert target.startswith("/"), f"{name}: {mount}"
            if source.startswith("."):
                assert (OPS / source).exists(), f"{name} mounts {source}, which is missing"
            else:
                assert source in declared, f"{name} mounts volume {source}, never declared"


def test_every_published_port_listens_on_localhost_only_and_dependencies_exist():
    services = compose()["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            host, published, target = str(port).split(":")
            assert host == "127.0.0.1", f"{name} publishes {port} beyond this machine"
            assert published.isdigit() and target.isdigit(), port
        assert set(service.get("depends_on", [])) <= set(services), name


def test_the_server_is_configured_by_environment_variables_it_reads():
    from scenarios.cli.settings import ServeSettings

    fields = {f"ARBITREX_{name.upper()}" for name in ServeSettings.model_fields}
    environment = compose()["services"]["arbitrex"]["environment"]
    assert {"ARBITREX_DB", "ARBITREX_BROKER", "ARBITREX_HOST"} <= set(environment)
    assert set(environment) <= fields, set(environment) - fields


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="docker compose is not installed here; the checks above stand in for it",
)
def test_docker_compose_accepts_the_compose_file():
    checked = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_image_runs_the_server_on_the_simulator_as_a_user_other_than_root():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert lines[[line.startswith("FROM") for line in lines].index(True)].startswith(
        "FROM python:3.11-slim"
    )
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    command = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    assert command[:4] == ["arbitrex", "serve", "--broker", "sim"]


# --- Prometheus -----------------------------------------------------------------------------


def test_prometheus_loads_its_rules_beside_it_and_reads_the_token_compose_gives_it():
    config = load_yaml(PROMETHEUS)
    for rules in config["rule_files"]:
        assert (PROMETHEUS.parent / rules).is_file(), f"{rules} is missing"
    mounts = compose()["services"]["prometheus"]["volumes"]
    for rules in config["rule_files"]:
        assert any(m.startswith(f"./prometheus/{rules}:/etc/prometheus/{rules}") for m in mounts)
    (job,) = config["scrape_configs"]
    token = job["authorization"]["credentials_file"]
    assert any(m.split(":")[1] == str(Path(token).parent) for m in mounts), token
    assert job["static_configs"][0]["targets"] == ["arbitrex:8000"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_prometheus_configuration():
    # --syntax-only: the token file exists only inside the compose deployment.
    checked = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(PROMETHEUS)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- Grafana --------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p.get("type") != "row"]


def test_every_panel_queries_the_provisioned_prometheus_data_source():
    (source,) = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert dashboard()["uid"] and len({p["id"] for p in panels()}) == len(panels())
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]


def test_grafana_is_given_the_dashboard_where_its_provider_looks():
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "arbitrex.yml")["providers"]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./grafana/{DASHBOARD.name}:{provider['options']['path']}/{DASHBOARD.name}:ro" in (
        mounts
    )
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def exported_by_the_app(tmp_path: Path) -> set[str]:
    """Every sample name the server's Prometheus endpoint (the path Prometheus scrapes)
    answers after an execution: families and their _total, _bucket, _sum, _count."""
    (job,) = load_yaml(PROMETHEUS)["scrape_configs"]
    with paper_api(tmp_path) as api:
        assert api.execute(approved("ops-dashboard-1")).status_code == 200
        response = api.client.get(job["metrics_path"], headers=api.as_role(Role.AUDITOR))
    assert response.status_code == 200, response.text[:200]
    assert response.headers["content-type"].startswith("text/plain"), (
        f"{job['metrics_path']} answers {response.headers['content-type']}, not Prometheus text"
    )
    names = set()
    for family in text_string_to_metric_families(response.text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def test_the_dashboard_asks_only_for_metrics_the_server_exports(tmp_path):
    exported = exported_by_the_app(tmp_path) | MADE_BY_PROMETHEUS
    asked = {
        (panel["title"], name)
        for panel in panels()
        for target in panel["targets"]
        for name in metric_names(target["expr"])
    }
    assert asked, "the dashboard asks for nothing"
    missing = sorted(f"{title}: {name}" for title, name in asked if name not in exported)
    assert missing == [], f"not exported by the server: {missing}"
