"""What operators load into Prometheus and Grafana: alert rules valid for promtool, each one
firing on the series that should raise it (promtool's rule tests), each with a runbook
section to follow; a dashboard whose every panel reads only metrics the platform exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.core import Metric

import titus.agent.metrics  # noqa: F401 - registers the agent's metrics
import titus.api.metrics  # noqa: F401 - registers the API's metrics
import titus.coord.zookeeper  # noqa: F401 - registers the coordination metrics
import titus.master.metrics  # noqa: F401 - registers the master's metrics
import titus.store.metrics  # noqa: F401 - registers the store's error count
import titus.store.quarantine  # noqa: F401 - registers the store's quarantine gauge
from tests.support.setup_script import run_setup_script
from titus.agent.metrics import agent_gauges

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "titus-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "titus-alerts.test.yml"
RUNBOOK = DEPLOY / "runbook.md"
DASHBOARD = DEPLOY / "grafana" / "titus-fleet.json"

#: Sample names each kind of metric family exposes beside its own name.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = run_setup_script("promtool.sh", "PROMTOOL", timeout=600)
    if path is None:
        pytest.fail("scripts/promtool.sh printed no PROMTOOL= line")
    return path


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_rules(promtool: str) -> None:
    proc = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in proc.stdout


def test_each_alert_fires_when_it_should_and_not_on_a_healthy_fleet(promtool: str) -> None:
    proc = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULE_TESTS.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == {str(rule["alert"]) for rule in _alerts()}, "an alert without a rule test"


def _families() -> list[Metric]:
    """Every metric family of the platform: the process-wide ones and the agent's gauges
    (read from a daemon at scrape time, so named here by the collector's description)."""
    return [*REGISTRY.collect(), *agent_gauges()]


def _exported() -> set[str]:
    return {
        family.name + suffix
        for family in _families()
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def _unknown_metrics(expr: str) -> tuple[set[str], set[str]]:
    """The titus metrics an expression reads, and those of them nothing exports."""
    used = set(re.findall(r"\btitus_[a-z_]+", expr))
    return used, used - _exported()


def test_the_rules_read_only_metrics_the_platform_exports() -> None:
    for rule in _alerts():
        used, unknown = _unknown_metrics(str(rule["expr"]))
        assert used, f"{rule['alert']} reads no titus metric"
        assert not unknown, f"{rule['alert']} reads {sorted(unknown)}"


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses each panel's query, made a recording rule for the purpose."""
    dashboard = json.loads(DASHBOARD.read_text())
    rules = [
        {"record": f"panel_{panel['id']}_{target['refId']}", "expr": target["expr"]}
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_dashboard_panel_reads_metrics_the_platform_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(titles) == len(set(titles)), "two panels with one title"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "two panels with one id"
    for panel in dashboard["panels"]:
        assert panel["targets"], f"panel {panel['title']!r} shows nothing"
        for target in panel["targets"]:
            used, unknown = _unknown_metrics(target["expr"])
            assert used, f"panel {panel['title']!r} reads no titus metric"
            assert not unknown, f"panel {panel['title']!r} reads {sorted(unknown)}"


def test_every_metric_the_platform_exports_is_on_the_dashboard_or_in_a_rule() -> None:
    exported = {family.name for family in REGISTRY.collect() if family.name.startswith("titus_")}
    shown = " ".join(
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
    ) + " ".join(str(rule["expr"]) for rule in _alerts())
    unseen = {
        name
        for name in exported
        if not re.search(rf"\b{name}(_total|_bucket|_sum|_count)?\b", shown)
    }
    assert not unseen, f"exported but on no panel and in no rule: {sorted(unseen)}"


def test_every_alert_links_a_runbook_section_that_exists() -> None:
    sections = {
        "deploy/runbook.md#" + line[3:].strip().lower()
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in _alerts():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        assert annotations["runbook"] in sections, f"{rule['alert']}: no runbook section"
        assert annotations.get("summary"), f"{rule['alert']}: no summary"
