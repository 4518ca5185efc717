"""The alert rules operators load into Prometheus: valid for promtool, each one firing on the
series that should raise it (promtool's rule tests), reading only metrics the platform
exports, and each with a runbook section to follow."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import titus.coord.zookeeper  # noqa: F401 - registers the coordination metrics
import titus.master.metrics  # noqa: F401 - registers the master's metrics
from tests.support.setup_script import run_setup_script

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "titus-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "titus-alerts.test.yml"
RUNBOOK = DEPLOY / "runbook.md"

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


def test_the_rules_read_only_metrics_the_platform_exports() -> None:
    exported = {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in SUFFIXES.get(family.type, ("",))
    }
    for rule in _alerts():
        used = set(re.findall(r"\btitus_[a-z_]+", str(rule["expr"])))
        assert used, f"{rule['alert']} reads no titus metric"
        assert used <= exported, f"{rule['alert']} reads {sorted(used - exported)}"


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
