"""What the scheduler reads and returns: task requests, host states, capacity groups, results.

These are plain dataclasses rather than the job model so the leader loop can build them from
any offer source (registered agents or Mesos offers) and the scheduler stays free of I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Resource names, in the column order of the scheduler's host matrices. They are the keys of
#: `HostState.total` / `HostState.used` and of the per-group usage given to `Scheduler.schedule`.
RESOURCES: tuple[str, ...] = ("cpu", "memoryMB", "diskMB", "networkMbps", "gpu", "ipSlots")

#: Bounds of what a host may publish about its ENIs (the largest instance types have 15
#: ENIs of 50 addresses; a published figure above these is not believed).
MAX_ENIS = 64
MAX_IPS_PER_ENI = 256

BATCH = "BATCH"
SERVICE = "SERVICE"
CRITICAL = "Critical"
FLEX = "Flex"
DEFAULT_GROUP = "DEFAULT"


@dataclass
class TaskRequest:
    """One pending task as the scheduler needs it.

    Constraint names are case-insensitive (`UniqueHost` and `uniquehost` are the same rule);
    a constraint whose value is "false" is not set, as Titus clients send {"uniqueHost": "false"}.
    """

    task_id: str
    job_id: str
    cpu: float
    memory_mb: float
    disk_mb: float
    network_mbps: float
    gpu: float = 0
    ip_slots: float = 1
    job_type: str = BATCH
    capacity_group: str = DEFAULT_GROUP
    hard_constraints: dict[str, str] = field(default_factory=dict)
    soft_constraints: dict[str, str] = field(default_factory=dict)
    enqueued_at: float = 0.0
    #: The task's security-group set as one key (`eni_set_key`): its address sits on an ENI
    #: of that set. Only read for tasks that take an IP slot.
    security_groups: str = ""

    def demand(self) -> tuple[float, ...]:
        """The request in `RESOURCES` order."""
        return (
            float(self.cpu),
            float(self.memory_mb),
            float(self.disk_mb),
            float(self.network_mbps),
            float(self.gpu),
            float(self.ip_slots),
        )


@dataclass
class HostEnis:
    """A host's ENIs as the scheduler counts them ("ENIs as a named resource keyed by
    security-group set"): up to `max_enis` ENIs for tasks (the host's own primary ENI
    left out), each carrying `ips_per_eni` task addresses (its own primary address left
    out). `sets` maps a security-group-set key to (ENIs of that set on the host, task
    addresses in use on them). An ENI without a task address in use counts as free: the
    agent deletes such an ENI when its slot is wanted for another set."""

    max_enis: int
    ips_per_eni: int
    sets: dict[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def from_published(cls, data: Mapping[str, Any]) -> HostEnis | None:
        """What an agent publishes (`AgentInfo.network`), checked and bounded; None when it
        publishes no ENI limits or nothing that makes sense (the host then counts by
        `ipSlots` alone)."""
        try:
            max_enis, per_eni = int(data["maxEnis"]), int(data["ipsPerEni"])
            raw = data.get("sets") or {}
            if not (0 <= max_enis <= MAX_ENIS and 0 <= per_eni <= MAX_IPS_PER_ENI):
                return None
            if not isinstance(raw, Mapping) or len(raw) > MAX_ENIS:
                return None
            sets: dict[str, tuple[int, int]] = {}
            for key, value in raw.items():
                enis, used = (int(v) for v in value)
                if 0 <= enis <= max_enis and 0 <= used <= enis * per_eni:
                    sets[str(key)] = (enis, used)
        except (KeyError, TypeError, ValueError):
            return None
        return cls(max_enis, per_eni, sets)


@dataclass
class HostState:
    """One host (agent or Mesos offer set) at the start of a scheduling iteration."""

    host_id: str
    total: dict[str, float]
    used: dict[str, float] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    healthy: bool = True
    #: False for quarantined hosts and hosts of an instance group being phased out.
    schedulable: bool = True
    #: Tasks in Launched/StartInitiated on the host now (the launch throttle counts them).
    launching: int = 0
    task_count: int = 0
    #: job id -> tasks of that job on the host (uniqueHost and zoneBalance read it).
    job_counts: dict[str, int] = field(default_factory=dict)
    #: A job holding the host exclusively (exclusiveHost): nobody else may land on it.
    exclusive_job: str | None = None
    #: The host's ENIs per security-group set; None: a host without ENI limits (its
    #: `ipSlots` alone count its addresses).
    enis: HostEnis | None = None


@dataclass
class CapacityGroup:
    """A capacity group: a tier and a reservation of `instance_count` instances of one size."""

    name: str
    tier: str = FLEX
    instance_cpu: float = 0
    instance_memory_mb: float = 0
    instance_disk_mb: float = 0
    instance_network_mbps: float = 0
    instance_gpu: float = 0
    instance_count: int = 0

    def reservation(self) -> tuple[float, ...]:
        """Reserved resources in `RESOURCES` order (IP slots are not reserved)."""
        n = float(self.instance_count)
        return (
            self.instance_cpu * n,
            self.instance_memory_mb * n,
            self.instance_disk_mb * n,
            self.instance_network_mbps * n,
            self.instance_gpu * n,
            0.0,
        )


@dataclass
class SchedulerConfig:
    """Scheduler knobs. Defaults follow Titus.

    - `max_launching_per_host`: tasks that may be Launched/StartInitiated on one host at once,
      counting placements of this iteration; it keeps one host from being flooded with
      container starts (image pulls, ENI attachments) at the same moment.
    - `max_tasks_per_host`: hard cap of tasks on one host, whatever its size.
    - `good_enough_score`: a host whose combined score reaches this ends the host search: the
      first such host in host order is taken instead of the best one. 1.0 (the default) only
      cuts the search short for a perfect host; lower trades placement quality for nothing in
      this vectorized pipeline but stays for parity with Fenzo's knob and for tests.
    - `tasks_per_iteration`: placement attempts per call; the rest wait for the next
      iteration (returned as `ScheduleResult.deferred`), which bounds one iteration's latency.
    - `queue_run`: tasks of one job (with the same request) taken in a row before capacity
      groups are re-ranked; they share one evaluation, so this is a throughput knob, and
      fairness among groups holds at the granularity of such runs.
    - `resource_weight`, `soft_weight`, `fitness_weight`: Fenzo's combination of the
      resource-set fit (ENIs of the task's security groups; 1 when none applies), the mean
      soft-constraint score (1 when the task has none) and the fitness (bin packing with
      balance, or spreading).
    - `balance_weight`: how many times balance (a placement evening out the host's free
      cpu and memory, see `scorers.Balance`) counts in the fitness against bin packing's
      once; 0 turns it off (pure bin packing, as Fenzo). With tasks of mixed shapes it keeps
      hosts from running out of one resource with the other left over; 20 places over 99%
      of the tasks of the benchmark's packed case (tests/bench/scheduler.py) where bin
      packing alone places 83%.
    """

    max_launching_per_host: int = 1
    max_tasks_per_host: int = 120
    good_enough_score: float = 1.0
    tasks_per_iteration: int = 500
    queue_run: int = 32
    resource_weight: float = 0.15
    soft_weight: float = 0.50
    fitness_weight: float = 0.35
    balance_weight: float = 20.0


@dataclass(frozen=True)
class Assignment:
    task_id: str
    host_id: str


@dataclass
class PlacementSummary:
    """Why a task was not placed: the answer to "why is my task pending?".

    `refused_by` counts hosts per plugin, each host under the first plugin (in pipeline order)
    that refused it, so the counts add up to `hosts_considered`.
    """

    hosts_considered: int
    refused_by: dict[str, int]
    message: str


@dataclass
class ScheduleResult:
    assignments: list[Assignment] = field(default_factory=list)
    unplaced: dict[str, PlacementSummary] = field(default_factory=dict)
    #: Tasks not attempted this iteration (beyond `tasks_per_iteration`), in queue order.
    deferred: list[str] = field(default_factory=list)
