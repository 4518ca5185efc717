"""What one leadership holds in memory, from its election to its end.

A leader that loses its leadership must forget everything it knew: a successor may have
changed any of it since. So all of it lives in one `Term`, made when a leadership begins
and dropped with it; the next election makes a new one from the store. Nothing is reset
by hand, so nothing can be forgotten in a reset.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from titus.coord.base import Leadership
from titus.master.autoscaling.apply import TermAutoscaling
from titus.master.backoff import SystemBackoff
from titus.master.cluster import HostReport, Placement
from titus.master.config import MasterConfig
from titus.master.loadbalancers import TargetRegistrar
from titus.master.placement import PlacementMemo
from titus.master.scheduler import CapacityGroup
from titus.master.stuck import RateLimiter, StuckAges
from titus.master.view import LeaderView
from titus.model.job import Task


class LostLeadership(Exception):
    pass


class Paused(Exception):
    """The coordination session is suspended: stop acting until it is known to be alive."""


@dataclass
class Inbox:
    """Host reports received by the feeder thread, waiting for the loop to apply them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    reports: list[HostReport] = field(default_factory=list)

    def add(self, reports: list[HostReport]) -> None:
        with self.lock:
            self.reports.extend(reports)

    def take(self) -> list[HostReport]:
        with self.lock:
            taken, self.reports = self.reports, []
        return taken

    def put_back(self, reports: list[HostReport]) -> None:
        """Reports taken but not applied (the session was suspended): first in line again."""
        with self.lock:
            self.reports[:0] = reports


@dataclass
class Term:
    """One leadership's state. `leadership` is None for a master that does not lead."""

    leadership: Leadership | None
    backoff: SystemBackoff
    stuck_limiter: RateLimiter
    #: When the last sweep slice, stuck check, migration and config read ran (clock time).
    last_sweep: float
    last_stuck: float = float("-inf")
    last_migrate: float = float("-inf")
    last_load_balancers: float = float("-inf")
    #: A task of a job with target groups is being killed: reconcile them at once.
    targets_changed: bool = False
    #: The term's load balancer worker, once a job has target groups (loadbalancers.py).
    registrar: TargetRegistrar | None = None
    #: The term's scaling policies (autoscaling/apply.py), made at election.
    autoscaling: TermAutoscaling | None = None
    last_config: float = float("-inf")
    view: LeaderView = field(default_factory=LeaderView)
    #: Jobs whose reconciliation is due.
    touched: set[str] = field(default_factory=set)
    inbox: Inbox = field(default_factory=Inbox)
    #: Whether store and hosts were made to agree since the election.
    reconciled_actual: bool = False
    #: Whether the kills and moves a predecessor left queued were carried out.
    requests_recovered: bool = False
    #: Placements the next iteration sends first: held back while the session was
    #: suspended, or decided by the previous leader and never delivered.
    held: list[Placement] = field(default_factory=list)
    #: Task writes whose host command has not gone out yet, by task id: a task written
    #: Launched (its launch), being killed or given up on (its kill). A write lands and
    #: its command follows; a store error in between (or one that hid a write that did
    #: land) leaves the write here, and the next iteration makes both again before
    #: anything else (Executor.settle), so no stored state waits on a command never sent.
    unsettled: dict[str, Task] = field(default_factory=dict)
    #: Jobs whose dirty marks were taken from the store but not picked up yet (a store
    #: error or a suspended session cut the pick-up short): picked up first next time.
    dirty: list[str] = field(default_factory=list)
    #: Hosts the driver said are gone whose tasks are not all ended yet (the driver
    #: says it once; a store error may cut the ending short).
    lost_hosts: set[str] = field(default_factory=set)
    sweep_queue: list[str] = field(default_factory=list)
    #: Service tasks being killed to move them off phased-out hosts.
    migrating: set[str] = field(default_factory=set)
    #: When the system disrupted each job's tasks (ms), for the budgets' rates.
    disrupted: dict[str, list[int]] = field(default_factory=dict)
    #: The disruption record as last written to the store (disruptions.py).
    disruptions_saved: str = ""
    #: Which jobs have a container health check (health.replace_unhealthy).
    health_checked: dict[str, bool] = field(default_factory=dict)
    #: When each self-managed task was first due to move off a phased-out host (ms).
    relocation_wanted: dict[str, int] = field(default_factory=dict)
    #: Capacity groups by name.
    groups: dict[str, CapacityGroup] = field(default_factory=dict)
    #: Lifecycle state of each instance group, by name.
    instance_groups: dict[str, str] = field(default_factory=dict)
    placing: PlacementMemo = field(default_factory=PlacementMemo)
    #: When each task in a passing state was first seen in it (monotonic).
    stuck_ages: StuckAges = field(default_factory=StuckAges)
    elected_at: float | None = None
    ready_at: float | None = None
    first_launch_at: float | None = None

    @classmethod
    def begin(
        cls, leadership: Leadership | None, config: MasterConfig, clock: Callable[[], float]
    ) -> Term:
        """A fresh term; time in it (backoff, the stuck kill rate) is read from `clock`."""
        return cls(
            leadership=leadership,
            backoff=SystemBackoff(config.backoff_initial, config.backoff_max, clock=clock),
            stuck_limiter=RateLimiter(
                config.stuck_kills_per_sec, config.stuck_kills_burst, clock=clock
            ),
            last_sweep=clock(),
        )

    @property
    def epoch(self) -> int:
        """The epoch every store write carries; only while leading."""
        if self.leadership is None or not self.leadership.is_leader:
            raise LostLeadership("no longer the leader")
        return self.leadership.epoch

    def guard(self) -> None:
        """Called before anything reaches a host: only a leader whose session is known to be
        alive launches or kills."""
        leadership = self.leadership
        if leadership is None or not leadership.is_leader:
            raise LostLeadership("no longer the leader")
        if not leadership.can_act():
            raise Paused()
