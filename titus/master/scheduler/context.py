"""A pending task normalized once for the pipeline: demand vector, constraints, tier, shape.

Tasks of one job are usually identical for placement purposes; their `shape` key lets the
engine evaluate the plugins once per shape and then only update the hosts that changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from titus.master.scheduler.hosts import PACK_COLUMNS, FloatArray
from titus.master.scheduler.model import CRITICAL, SERVICE, TaskRequest

#: Canonical spellings of the constraints the scheduler knows, by lower-cased name.
KNOWN_CONSTRAINTS = {
    name.lower(): name
    for name in (
        "uniqueHost",
        "exclusiveHost",
        "zoneBalance",
        "availabilityZone",
        "machineId",
        "machineGroup",
        "machineType",
        "activeHost",
    )
}
_PACK_INDEX = np.array(PACK_COLUMNS, dtype=np.intp)
#: Constraints that depend on where the task's own job already runs.
JOB_CONSTRAINTS = frozenset({"uniqueHost", "zoneBalance"})


def normalize_constraints(raw: dict[str, str]) -> dict[str, str]:
    """Canonical names (case-insensitive match); unknown names kept as given, lower-cased.

    Boolean-style constraints set to "false" are dropped: clients send them that way to mean
    "not set", and honouring them as set would refuse hosts for nothing.
    """
    out: dict[str, str] = {}
    if not raw:
        return out
    for name, value in raw.items():
        key = str(name).strip()
        canonical = KNOWN_CONSTRAINTS.get(key.lower(), key.lower())
        text = str(value).strip()
        if canonical in ("uniqueHost", "exclusiveHost", "zoneBalance", "activeHost") and (
            text.lower() == "false"
        ):
            continue
        out[canonical] = text
    return out


@dataclass
class TaskContext:
    """What the plugins see of a task."""

    task: TaskRequest
    group: str
    tier: str
    demand: FloatArray
    #: The demand in the bin-packing columns (cpu, memory, network).
    pack_demand: FloatArray
    hard: dict[str, str]
    soft: dict[str, str]
    #: Critical-tier services spread over hosts; everything else packs.
    spread: bool
    exclusive: bool
    #: Equal for tasks that every plugin treats alike (see module docstring).
    shape: tuple[object, ...]
    #: `demand` as Python floats, for plugins' one-row answers (`Filter.accepts_row`).
    demand_values: tuple[float, ...] = ()


def make_context(task: TaskRequest, group: str, tier: str) -> TaskContext:
    hard = normalize_constraints(task.hard_constraints)
    soft = normalize_constraints(task.soft_constraints)
    spread = tier == CRITICAL and task.job_type.upper() == SERVICE
    demand_tuple = task.demand()
    needs_job = any(name in JOB_CONSTRAINTS for name in (*hard, *soft))
    shape = (
        demand_tuple,
        spread,
        tuple(sorted(hard.items())),
        tuple(sorted(soft.items())),
        task.job_id if needs_job else None,
        # ENIs are counted per security-group set: tasks of different sets differ.
        task.security_groups if task.ip_slots > 0 else None,
    )
    demand = np.array(demand_tuple, dtype=np.float64)
    return TaskContext(
        task=task,
        group=group,
        tier=tier,
        demand=demand,
        pack_demand=demand[_PACK_INDEX],
        hard=hard,
        soft=soft,
        spread=spread,
        exclusive="exclusiveHost" in hard,
        shape=shape,
        demand_values=demand_tuple,
    )
