"""The agent's Prometheus metrics: what runs on this host and how long setting it up took.

Durations and adoptions are process-wide counters and histograms, labelled only by hook
name and result (bounded sets). What is true now (tasks by state, log files waiting for
upload, whether the host is healthy) is read from the daemon when `/metrics` is scraped,
by `AgentCollector`, so the numbers cannot drift from what the agent reports to the
master.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from titus.model.states import TaskState

if TYPE_CHECKING:
    from titus.agent.daemon import AgentDaemon

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

LAUNCH_SECONDS = Histogram(
    "titus_agent_launch_duration_seconds",
    "Setting up a task on this host (every hook, the container's start included), by result",
    ["result"],
    buckets=DURATION_BUCKETS,
)
HOOK_SECONDS = Histogram(
    "titus_agent_hook_setup_duration_seconds",
    "One hook's setup for one task, by hook and result",
    ["hook", "result"],
    buckets=DURATION_BUCKETS,
)
HEALTH_CHECKS = Counter(
    "titus_agent_health_checks_total",
    "Container health check runs of this host's tasks, by outcome (passed, failed, timeout)",
    ["result"],
)
ADOPTED = Counter(
    "titus_agent_containers_adopted_total",
    "Running containers taken over from an earlier agent process (or found started "
    "behind the agent's back)",
)


class AgentCollector(Collector):
    """Gauges read from one daemon at scrape time."""

    def __init__(self, daemon: AgentDaemon):
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        states = Tally(r.state for r in self.daemon.reports().tasks)
        backlog = len(self.daemon.uploader.pending())
        return agent_gauges(states, backlog, self.daemon.info.healthy)

    def describe(self) -> Iterator[Metric]:
        """The families without reading the daemon (the registry asks for their names)."""
        return agent_gauges()


def agent_gauges(
    states: Tally[TaskState] | None = None, backlog: int = 0, healthy: bool = False
) -> Iterator[Metric]:
    """The agent's gauges for these values (all zero: their names and types)."""
    states = states or Tally()
    tasks = GaugeMetricFamily(
        "titus_agent_tasks", "Tasks this agent reports, by state", labels=["state"]
    )
    for state in TaskState:
        tasks.add_metric([state.value], states.get(state, 0))
    yield tasks
    yield GaugeMetricFamily(
        "titus_agent_log_upload_backlog_files",
        "Rotated or final log files waiting to be uploaded",
        value=backlog,
    )
    yield GaugeMetricFamily(
        "titus_agent_healthy",
        "1 while this host passes its health checks and takes launches",
        value=1 if healthy else 0,
    )


def agent_exposition(registry: CollectorRegistry) -> bytes:
    """This process's metrics, then those read from the daemon behind `registry`."""
    return generate_latest() + generate_latest(registry)


def daemon_registry(daemon: AgentDaemon) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(daemon))
    return registry


# Per-task networking (network/): what the periodic sweep and adoption give back or keep.
NETWORK_RELEASED = Counter(
    "titus_agent_network_addresses_released_total",
    "Task addresses given back to the cloud after their grace period (vpc provider)",
)
NETWORK_ENIS_DELETED = Counter(
    "titus_agent_network_enis_deleted_total",
    "ENIs of this host detached and deleted after being idle for the grace period, or to "
    "free a slot for another security-group set",
)
NETWORK_ADOPTED = Counter(
    "titus_agent_network_addresses_adopted_total",
    "Task addresses of running tasks found again after an agent restart",
)
NETWORK_SWEEPS = Counter(
    "titus_agent_network_sweeps_total",
    "Periodic network sweeps (release, delete, re-resolve security-group sources), by result",
    ["result"],
)
NETWORK_SWEEP_SECONDS = Histogram(
    "titus_agent_network_sweep_duration_seconds",
    "One periodic network sweep",
    buckets=DURATION_BUCKETS,
)
NETWORK_IN_GRACE = Gauge(
    "titus_agent_network_addresses_in_grace",
    "Released task addresses still held on this host's ENIs for their grace period",
)
