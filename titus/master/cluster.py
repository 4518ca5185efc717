"""The cluster driver protocol: how the leader sees hosts and runs tasks on them.

Two drivers: `direct.py` (agents registered in coordination, driven over their HTTP API)
and `mesos/` (a pymesos framework fed by Mesos offers). The leader loop is the same for
both: it asks for offers, places pending tasks with the scheduler, launches placements,
kills what must die, and folds the drivers' task reports into the store.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from titus.coord.base import Leadership
from titus.master.scheduler.model import HostEnis
from titus.model.launch import TaskReport, TaskSpec
from titus.store.base import ActiveFacts


@dataclass
class HostView:
    """One host as the scheduler sees it: total capacity and attributes."""

    host_id: str
    total: dict[str, float]
    attributes: dict[str, str] = field(default_factory=dict)
    healthy: bool = True
    health_reasons: list[str] = field(default_factory=list)
    address: str = ""
    offer_ids: list[str] = field(default_factory=list)
    #: The host's ENIs as it published them (`AgentInfo.network`); None: no ENI limits.
    enis: HostEnis | None = None


@dataclass(frozen=True)
class Placement:
    spec: TaskSpec
    host_id: str


@dataclass(frozen=True)
class HostReport:
    """A task report tagged with the host that sent it."""

    host_id: str
    report: TaskReport


def take_reports(reports: queue.Queue[HostReport], timeout: float) -> list[HostReport]:
    """Everything queued, waiting up to `timeout` for the first (ClusterDriver.take_reports
    of a driver that queues its hosts' reports)."""
    out: list[HostReport] = []
    try:
        out.append(reports.get(timeout=timeout))
    except queue.Empty:
        return out
    while True:
        try:
            out.append(reports.get_nowait())
        except queue.Empty:
            return out


class ClusterDriver(Protocol):
    def start(self, leadership: Leadership, active: ActiveFacts) -> None:
        """Begin serving a new leadership: connect, subscribe, list what hosts run.
        `active` is the store's active state as the leader just read it (what the store
        places on hosts), so a driver that needs it does not read it a second time."""
        ...

    def stop(self) -> None: ...

    def hosts(self) -> list[HostView]:
        """Hosts that can take work now (registered agents, or hosts with live offers)."""
        ...

    def launch(self, placements: Sequence[Placement]) -> None:
        """Start tasks on hosts. Failures come back later as task reports, never raise."""
        ...

    def kill(self, task_id: str, host_id: str | None, reason: str = "killed") -> None: ...

    def take_reports(self, timeout: float) -> list[HostReport]:
        """Task reports received since the last call; waits up to `timeout` for the first."""
        ...

    def acknowledge(self, report: HostReport) -> None:
        """The report is persisted: the host may forget a terminal one."""
        ...

    def actual_tasks(self) -> dict[str, list[TaskReport]] | None:
        """What each reachable host runs now, or None while not yet known (first sync)."""
        ...

    def lost_hosts(self) -> set[str]:
        """Hosts that went away (deregistered or unreachable past the grace time)."""
        ...

    def wants_offers(self, pending: bool) -> None:
        """Tell the driver whether work is pending (Mesos: revive or suppress)."""
        ...

    def claims_due(self) -> list[str]:
        """Hosts to be told again which tasks the leader places on them (they joined or
        came back); empty for a driver whose cluster reconciles by itself (Mesos)."""
        ...

    def claim(self, host_id: str, task_ids: Sequence[str]) -> None:
        """Tell a host every task the leader places on it: it kills what is not named."""
        ...
