"""Every titus_* series the alert rules and the Grafana dashboard query is one the code
exports, so a renamed metric cannot silently blind an alert or a panel."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import REGISTRY

import titus.agent.metrics
import titus.api.metrics
import titus.coord.zookeeper
import titus.master.metrics
import titus.store.quarantine  # noqa: F401 - each import registers its metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
AGENT_GAUGES = {"titus_agent_tasks", "titus_agent_log_upload_backlog_files", "titus_agent_healthy"}


def exported() -> set[str]:
    names = set(AGENT_GAUGES)
    for family in REGISTRY.collect():
        names.update(sample.name for sample in family.samples)
        # a labelled metric has no samples until it is first used: name it by its type
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
        names.update(family.name + s for s in ["", *suffixes.get(family.type, [])])
    return names


def test_deploy_files_query_only_exported_metrics() -> None:
    queried: set[str] = set()
    for path in [*DEPLOY.glob("prometheus/titus-alerts.yml"), *DEPLOY.glob("grafana/*.json")]:
        queried |= set(re.findall(r"\btitus_[a-z_]+[a-z]", path.read_text()))
    assert queried, "the deploy files query no titus metric"
    names = exported()
    missing = queried - names
    assert not missing, f"queried but not exported: {sorted(missing)}"
