"""Translation between the Mesos v1 scheduler API and the leader's terms, as pure functions.

Nothing here holds state or talks to Mesos, so every rule of the mapping is tested without a
connection (tests/unit/test_mesos_translate.py):

- Offers become HostViews. An offer holds an agent's *free* resources while the leader
  subtracts what its own view places on a host, so a HostView's total is what is offered
  plus what the driver knows runs there.
- A placement becomes a TaskInfo naming the Titus executor (titus/agent/mesos_executor.py),
  one executor per task, with the TaskSpec as JSON in `data`; placements that no longer fit
  what an agent offers are refused and reported lost.
- A Mesos TaskStatus becomes the TaskReport a host would send, with Mesos's states and
  reasons mapped onto Titus's (the executor's own reason, in `data`, wins when it names one).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from titus.master.cluster import HostView
from titus.master.mesos.config import MesosConfig
from titus.master.reports import KNOWN_REASONS
from titus.master.scheduler import HostEnis
from titus.model.job import Resources
from titus.model.launch import TaskReport, TaskSpec
from titus.model.names import CPU, DISK_MB, GPU, IP_SLOTS, MEMORY_MB, NETWORK_MBPS
from titus.model.states import Reason, TaskState

TERMINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
        "TASK_LOST",
    }
)
_LOST_STATES = frozenset(
    {"TASK_LOST", "TASK_GONE", "TASK_DROPPED", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"}
)
#: Reasons of a TASK_FAILED that say the executor (not the task) died.
_EXECUTOR_GONE = frozenset(
    {
        "REASON_EXECUTOR_TERMINATED",
        "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
        "REASON_EXECUTOR_REREGISTRATION_TIMEOUT",
        "REASON_EXECUTOR_UNREGISTERED",
        "REASON_AGENT_RESTARTED",
        "REASON_AGENT_REMOVED",
        "REASON_AGENT_DISCONNECTED",
        "REASON_CONTAINER_LAUNCH_FAILED",
        "REASON_INVALID_OFFERS",
    }
)
_NON_TERMINAL = {
    "TASK_STAGING": TaskState.LAUNCHED,
    "TASK_STARTING": TaskState.START_INITIATED,
    "TASK_RUNNING": TaskState.STARTED,
    "TASK_KILLING": TaskState.KILL_INITIATED,
    "TASK_UNREACHABLE": TaskState.DISCONNECTED,
}
#: The reason a status of Mesos's carries when it answers a reconciliation request.
RECONCILIATION = "REASON_RECONCILIATION"

#: Mesos's names of the scalar resources a task asks for.
MESOS_CPUS = "cpus"
MESOS_MEM = "mem"
MESOS_DISK = "disk"
MESOS_GPUS = "gpus"


# ---- small pieces of the wire format ------------------------------------------------------
def id_value(obj: Any) -> str:
    """The `value` of a Mesos id object (`{"value": "..."}`); "" for anything else."""
    if isinstance(obj, dict):
        return str(obj.get("value") or "")
    return ""


def ids(values: Sequence[str]) -> list[dict[str, str]]:
    """Mesos id objects of plain ids."""
    return [{"value": v} for v in values]


def is_terminal(status: Mapping[str, Any]) -> bool:
    return str(status.get("state", "")) in TERMINAL_STATES


def ack_body(status: Mapping[str, Any]) -> dict[str, Any]:
    """What ACKNOWLEDGE of a status update names: its agent, task and uuid."""
    return {k: status[k] for k in ("agent_id", "task_id", "uuid") if k in status}


def reconcile_body(tasks: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """RECONCILE of (task id, agent id) pairs; empty asks for every task (implicit)."""
    return [{"task_id": {"value": t}, "agent_id": {"value": a}} for t, a in tasks]


def framework_info(config: MesosConfig, framework_id: str | None, hostname: str) -> dict[str, Any]:
    """The FrameworkInfo a SUBSCRIBE sends; with the stored id when there is one."""
    info: dict[str, Any] = {
        "user": config.user,
        "name": config.framework_name,
        "failover_timeout": config.failover_timeout,
        "checkpoint": True,
        "hostname": hostname,
    }
    if config.role and config.role != "*":
        info["roles"] = [config.role]
        info["capabilities"] = [{"type": "MULTI_ROLE"}]
    if framework_id:
        info["id"] = {"value": framework_id}
    return info


# ---- resources ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Usage:
    """Scalar resources in Mesos's terms: what an offer frees or what a task takes."""

    cpus: float = 0.0
    mem: float = 0.0
    disk: float = 0.0
    gpus: float = 0.0

    @classmethod
    def of(cls, resources: Resources | None) -> Usage:
        """What a task of these (job descriptor) resources takes; nothing if unknown."""
        if resources is None:
            return cls()
        return cls(
            float(resources.cpu),
            float(resources.memoryMB),
            float(resources.diskMB),
            float(resources.gpu),
        )

    @classmethod
    def of_scalars(cls, scalars: Mapping[str, float]) -> Usage:
        return cls(
            scalars.get(MESOS_CPUS, 0.0),
            scalars.get(MESOS_MEM, 0.0),
            scalars.get(MESOS_DISK, 0.0),
            scalars.get(MESOS_GPUS, 0.0),
        )

    def scalars(self) -> dict[str, float]:
        return {
            MESOS_CPUS: self.cpus,
            MESOS_MEM: self.mem,
            MESOS_DISK: self.disk,
            MESOS_GPUS: self.gpus,
        }

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.cpus + other.cpus,
            self.mem + other.mem,
            self.disk + other.disk,
            self.gpus + other.gpus,
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.cpus - other.cpus,
            self.mem - other.mem,
            self.disk - other.disk,
            self.gpus - other.gpus,
        )

    def fits_in(self, free: Usage) -> bool:
        mine, theirs = self.scalars(), free.scalars()
        return all(mine[k] <= theirs[k] + 1e-9 for k in mine)


def total(usages: Sequence[Usage]) -> Usage:
    out = Usage()
    for u in usages:
        out = out + u
    return out


# ---- offers -> host views -----------------------------------------------------------------
@dataclass(frozen=True)
class Offer:
    """One Mesos offer as the driver holds it."""

    id: str
    agent_id: str
    hostname: str
    resources: dict[str, float]
    attributes: dict[str, str]
    received: float = 0.0

    @property
    def free(self) -> Usage:
        return Usage.of_scalars(self.resources)


def _scalars(resources: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in resources or []:
        if isinstance(r, dict) and r.get("type", "SCALAR") == "SCALAR" and "scalar" in r:
            name = str(r.get("name"))
            out[name] = out.get(name, 0.0) + float(r["scalar"].get("value", 0.0))
    return out


def _attributes(attrs: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in attrs or []:
        if not isinstance(a, dict) or "name" not in a:
            continue
        if a.get("type") == "SCALAR":
            out[str(a["name"])] = f"{float(a.get('scalar', {}).get('value', 0.0)):g}"
        elif a.get("type") == "TEXT":
            out[str(a["name"])] = str(a.get("text", {}).get("value", ""))
    return out


def parse_offer(raw: Mapping[str, Any], received: float) -> Offer:
    """An Offer of the OFFERS event: its scalar resources summed by name, its attributes
    as text."""
    return Offer(
        id=id_value(raw.get("id")),
        agent_id=id_value(raw.get("agent_id")),
        hostname=str(raw.get("hostname", "")),
        resources=_scalars(raw.get("resources")),
        attributes=_attributes(raw.get("attributes")),
        received=received,
    )


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


#: Mesos agent attributes that give a host's ENI limits (see `_eni_limits`).
MAX_ENIS_ATTRIBUTE = "maxEnis"
IPS_PER_ENI_ATTRIBUTE = "ipsPerEni"


@dataclass(frozen=True)
class HostDefaults:
    """Capacities Mesos does not offer, for agents whose attributes do not name them."""

    network_mbps: float
    ip_slots: float


def host_view(
    agent_id: str, offers: Sequence[Offer], used: Usage, defaults: HostDefaults
) -> HostView:
    """An agent with offers (at least one) as the scheduler sees it: total is free plus used."""
    first = offers[0]
    attrs = first.attributes
    have = total([o.free for o in offers]) + used
    capacity = {
        CPU: have.cpus,
        MEMORY_MB: have.mem,
        DISK_MB: have.disk,
        GPU: have.gpus,
        NETWORK_MBPS: _float(attrs.get(NETWORK_MBPS), defaults.network_mbps),
        IP_SLOTS: _float(attrs.get(IP_SLOTS), defaults.ip_slots),
    }
    attributes = dict(attrs)
    attributes.update(
        host=first.hostname,
        instanceId=agent_id,
        zone=attrs.get("zone", ""),
        itype=attrs.get("instanceType", attrs.get("itype", "")),
    )
    return HostView(
        host_id=agent_id,
        total=capacity,
        attributes=attributes,
        address=first.hostname,
        offer_ids=sorted(o.id for o in offers),
        enis=_eni_limits(attrs),
    )


def _eni_limits(attrs: Mapping[str, str]) -> HostEnis | None:
    """A Mesos agent's ENI limits, from its `maxEnis` and `ipsPerEni` attributes (the
    instance type's ENIs and addresses per ENI, less the host's own, as a native agent
    publishes them). Mesos carries no per-host state of ours, so which ENIs of which
    security-group set the host holds is what the leader placed there (the scheduler adds
    those counts to every host), as Titus's scheduler counted ENIs from its own
    assignments. None (no ENI limits, `ipSlots` alone) without both, or with bad ones."""
    if MAX_ENIS_ATTRIBUTE not in attrs or IPS_PER_ENI_ATTRIBUTE not in attrs:
        return None
    return HostEnis.from_published(
        {"maxEnis": attrs[MAX_ENIS_ATTRIBUTE], "ipsPerEni": attrs[IPS_PER_ENI_ATTRIBUTE]}
    )


# ---- placements -> ACCEPT -----------------------------------------------------------------
@dataclass
class Fit:
    """Which placements on one agent its offers still hold, and why the others were refused."""

    accepted: list[tuple[TaskSpec, Usage]] = field(default_factory=list)
    refused: list[tuple[TaskSpec, str]] = field(default_factory=list)


def fit(agent_id: str, offers: Sequence[Offer], specs: Sequence[TaskSpec]) -> Fit:
    """Fit tasks, in order, into what the agent's offers free; a task that does not fit any
    more (the offers went away, or the leader's view was stale) is refused."""
    out = Fit()
    left = total([o.free for o in offers])
    for spec in specs:
        need = Usage.of(spec.container.resources)
        if not offers:
            out.refused.append((spec, f"the offers of agent {agent_id} went away"))
        elif not need.fits_in(left):
            out.refused.append((spec, f"no longer fits the offers of agent {agent_id}"))
        else:
            left = left - need
            out.accepted.append((spec, need))
    return out


def refused_report(spec: TaskSpec, why: str) -> TaskReport:
    """The report of a placement that was never launched: the task is lost (and replaced)."""
    return TaskReport(
        taskId=spec.taskId,
        jobId=spec.jobId,
        state=TaskState.FINISHED,
        reasonCode=Reason.LOST,
        reasonMessage=f"not launched: {why}",
    )


@dataclass(frozen=True)
class Executor:
    """How agents start the Titus executor: its command and environment."""

    command: str
    env: Mapping[str, str] = field(default_factory=dict)
    role: str = "*"

    @classmethod
    def of(cls, config: MesosConfig) -> Executor:
        return cls(config.command, dict(config.executor_env), config.role or "*")

    @cached_property
    def command_info(self) -> dict[str, Any]:
        """The CommandInfo, the same for every task: built once and shared by their
        TaskInfos (read-only: it is only encoded)."""
        variables = [{"name": k, "value": v} for k, v in sorted(self.env.items())]
        return {"value": self.command, "environment": {"variables": variables}}


#: Task ids a spec template puts in as they are: nothing JSON would escape.
_PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]+")


class SpecData:
    """The `data` of TaskInfos: each task's TaskSpec as JSON (base64 in the TaskInfo).

    The tasks of one job share their whole spec but the task id and index, so the JSON of
    the rest is made once per job and each task's two are put in around it: a pydantic dump
    per task was a fifth of the driver's time in a 5,000-task offer cycle. A template is
    only taken from a dump that starts with the task id and ends with the index (the
    model's field order) and used only for a spec of the same job whose shared fields are
    the same; anything else is dumped whole. Made per launch: the job may change between."""

    def __init__(self) -> None:
        self._templates: dict[str, tuple[TaskSpec, str]] = {}

    def json(self, spec: TaskSpec) -> str:
        known = self._templates.get(spec.jobId)
        if known is not None and _PLAIN_ID.fullmatch(spec.taskId) and _same_job(known[0], spec):
            return f'{{"taskId":"{spec.taskId}",{known[1]},"taskIndex":{spec.taskIndex}}}'
        text = spec.model_dump_json(by_alias=True, exclude_none=True)
        if _PLAIN_ID.fullmatch(spec.taskId):
            head = f'{{"taskId":"{spec.taskId}",'
            tail = f',"taskIndex":{spec.taskIndex}}}'
            if text.startswith(head) and text.endswith(tail) and len(text) > len(head + tail):
                self._templates[spec.jobId] = (spec, text[len(head) : -len(tail)])
        return text

    def encode(self, spec: TaskSpec) -> str:
        return base64.b64encode(self.json(spec).encode()).decode()


def _same_job(a: TaskSpec, b: TaskSpec) -> bool:
    """Whether two specs agree on everything but the task id and index."""
    return (
        a.jobId == b.jobId
        and a.jobType == b.jobType
        and a.applicationName == b.applicationName
        and a.runtimeLimitSec == b.runtimeLimitSec
        and a.jobAttributes == b.jobAttributes
        and (a.container is b.container or a.container == b.container)
    )


def task_info(
    spec: TaskSpec,
    agent_id: str,
    need: Usage,
    executor: Executor,
    data: SpecData | None = None,
) -> dict[str, Any]:
    """The TaskInfo that launches one task on its own executor, the spec in `data`
    (encoded through `data`'s templates when given, see SpecData)."""
    role = executor.role
    resources = [
        {"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": role}
        for name, value in (
            (MESOS_CPUS, need.cpus),
            (MESOS_MEM, need.mem),
            (MESOS_DISK, need.disk),
            (MESOS_GPUS, need.gpus),
        )
        if value > 0
    ]
    encoded = (data or SpecData()).encode(spec)
    return {
        "name": f"{spec.applicationName or 'titus'}-{spec.taskIndex}",
        "task_id": {"value": spec.taskId},
        "agent_id": {"value": agent_id},
        "resources": resources,
        "executor": {
            # one executor per task: a crashed executor takes one task with it
            "executor_id": {"value": spec.taskId},
            "name": "titus-executor",
            "command": executor.command_info,
        },
        "data": encoded,
    }


# ---- status updates -> reports ------------------------------------------------------------
def _decode_data(status: Mapping[str, Any]) -> dict[str, Any]:
    """What the Titus executor put in a status's `data`: exit code, reason, context."""
    raw = status.get("data")
    if not raw:
        return {}
    try:
        data = json.loads(base64.b64decode(raw))
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def reason_of(state: str, mesos_reason: str, titus_reason: str) -> str:
    """Titus's reason code for a Mesos state and reason; `titus_reason` is what the executor
    said (empty if nothing Titus knows), which wins for the states an executor reports."""
    if state in _NON_TERMINAL:
        if state == "TASK_KILLING":
            return Reason.KILLED.value
        if state == "TASK_UNREACHABLE":
            return Reason.LOST.value
        return Reason.NORMAL.value
    if state == "TASK_FINISHED":
        return titus_reason or Reason.NORMAL.value
    if state == "TASK_KILLED":
        return titus_reason or Reason.KILLED.value
    if state == "TASK_ERROR":
        return Reason.INVALID_REQUEST.value
    if state in _LOST_STATES:
        return Reason.LOST.value
    if state == "TASK_FAILED":
        if titus_reason:
            return titus_reason
        if mesos_reason in _EXECUTOR_GONE:
            return Reason.LOST.value
        return Reason.FAILED.value
    # a state this driver does not know: the task is not known to run
    return Reason.UNKNOWN_SYSTEM_ERROR.value


def state_of(state: str) -> TaskState:
    """Titus's state for a Mesos task state: anything not known to be live has finished."""
    return _NON_TERMINAL.get(state, TaskState.FINISHED)


def status_to_report(status: Mapping[str, Any], job_id: str = "") -> TaskReport:
    """A Mesos TaskStatus as the report a host would send. `job_id` is used when the status
    carries no executor data naming the job (Mesos's own updates)."""
    state = str(status.get("state", ""))
    reason = str(status.get("reason", ""))
    message = str(status.get("message", ""))
    data = _decode_data(status)
    exit_code = data.get("exitCode")
    context = {str(k): str(v) for k, v in (data.get("context") or {}).items()}
    given = str(data.get("reasonCode", ""))
    code = reason_of(state, reason, given if given in KNOWN_REASONS else "")
    ts = status.get("timestamp")
    timestamp = int(float(ts) * 1000) if isinstance(ts, int | float) else None
    text = str(data.get("reasonMessage") or message)
    if reason and not data:
        text = f"{state} ({reason}): {message}" if message else f"{state} ({reason})"
    report = TaskReport(
        taskId=id_value(status.get("task_id")),
        jobId=str(data.get("jobId") or job_id),
        state=state_of(state),
        reasonCode=code,
        reasonMessage=text,
        exitCode=int(exit_code) if isinstance(exit_code, int) else None,
        containerId=str(data["containerId"]) if data.get("containerId") else None,
        context=context,
    )
    if timestamp:
        report.timestamp = timestamp
    return report
