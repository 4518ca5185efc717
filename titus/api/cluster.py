"""What the API does for operators, apart from HTTP: capacity groups, instance group
lifecycles, and the hosts that registered.

Capacity groups (Titus's application SLAs) reserve `instanceCount` slices of a given size
for the jobs that name them. The group DEFAULT always exists (served with default values
until someone stores one) and cannot be deleted; a group that active jobs still name
cannot be deleted either.

An instance group is the `machineGroup` attribute hosts register with; its lifecycle is
what the operator set (`active` when never set): the master places no new task in a
`phasedOut` group and moves its service tasks away, a bounded number at a time;
`removable` says the group is drained and its hosts may go.

A host is what registered in coordination (resources, attributes, health and its reasons,
published by the agent itself); its usage and tasks are the active tasks whose taskContext
`agent.id` names it, so the answer needs neither the master nor the agents.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from titus.api.auth import OPEN, Principal
from titus.api.errors import ApiError, not_found
from titus.api.policy import REDACTED, require_admin
from titus.api.schemas import CapacityGroup
from titus.coord.base import Coordinator
from titus.model.job import Job, Task
from titus.model.names import (
    CPU,
    DEFAULT_CAPACITY_GROUP,
    DEFAULT_INSTANCE_GROUP,
    DISK_MB,
    GPU,
    MEMORY_MB,
    NETWORK_MBPS,
)
from titus.model.states import TaskState
from titus.store.base import Conflict
from titus.store.roles import ClusterConfig

log = logging.getLogger("titus.api")

LIFECYCLE_STATES = ("active", "phasedOut", "removable")
#: The lifecycle of an instance group no operator has set.
ACTIVE = "active"
#: The host attribute that names a host's instance group.
GROUP_ATTRIBUTE = "machineGroup"
#: What a host's usage counts, in the job descriptor's units.
USAGE_FIELDS = (CPU, MEMORY_MB, DISK_MB, NETWORK_MBPS, GPU)


def _default_group() -> dict[str, Any]:
    return CapacityGroup(appName=DEFAULT_CAPACITY_GROUP).model_dump()


def _load(raw: str) -> dict[str, Any]:
    return json.loads(raw)


class ClusterService:
    """Capacity groups, instance groups and hosts, for every transport."""

    def __init__(self, store: ClusterConfig, coord: Coordinator):
        self.store = store
        self.coord = coord

    # ---- capacity groups ------------------------------------------------------------------
    def list_capacity_groups(self) -> list[dict[str, Any]]:
        """Every group by name, DEFAULT included."""
        groups = {name: _load(raw) for name, raw in self.store.list_capacity_groups().items()}
        groups.setdefault(DEFAULT_CAPACITY_GROUP, _default_group())
        return [groups[n] for n in sorted(groups)]

    def get_capacity_group(self, name: str) -> dict[str, Any]:
        raw = self.store.get_capacity_group(name)
        if raw is None:
            if name == DEFAULT_CAPACITY_GROUP:
                return _default_group()
            raise not_found("capacity group", name)
        return _load(raw)

    def create_capacity_group(
        self, group: CapacityGroup, caller: str = "", who: Principal = OPEN
    ) -> dict[str, Any]:
        require_admin(who, "create capacity groups")
        if group.appName == DEFAULT_CAPACITY_GROUP:
            raise ApiError(409, f"capacity group {DEFAULT_CAPACITY_GROUP} exists")
        try:
            self.store.create_capacity_group(group.appName, group.model_dump_json())
        except Conflict:
            raise ApiError(409, f"capacity group {group.appName} exists") from None
        log.info("create capacity group %s caller=%s", group.appName, caller or "-")
        return group.model_dump()

    def update_capacity_group(
        self, name: str, group: CapacityGroup, caller: str = "", who: Principal = OPEN
    ) -> dict[str, Any]:
        require_admin(who, "change capacity groups")
        if group.appName != name:
            raise ApiError(400, f"appName '{group.appName}' does not match the path '{name}'")
        if name != DEFAULT_CAPACITY_GROUP and self.store.get_capacity_group(name) is None:
            raise not_found("capacity group", name)
        self.store.put_capacity_group(name, group.model_dump_json())
        log.info("update capacity group %s caller=%s", name, caller or "-")
        return group.model_dump()

    def delete_capacity_group(
        self, name: str, active_jobs: Iterable[Job], caller: str = "", who: Principal = OPEN
    ) -> None:
        """Delete a group no active job names (`active_jobs`: every active job, as the
        caller's current view has them)."""
        require_admin(who, "delete capacity groups")
        if name == DEFAULT_CAPACITY_GROUP:
            # the request is well formed: the platform needs this group (as with one in use)
            raise ApiError(409, f"capacity group {DEFAULT_CAPACITY_GROUP} cannot be deleted")
        users = [j.id for j in active_jobs if j.jobDescriptor.capacityGroup == name]
        if users:
            raise ApiError(409, f"capacity group {name} is used by {len(users)} active job(s)")
        if not self.store.delete_capacity_group(name):
            raise not_found("capacity group", name)
        log.info("delete capacity group %s caller=%s", name, caller or "-")

    # ---- instance groups ------------------------------------------------------------------
    def list_instance_groups(self) -> list[dict[str, Any]]:
        """Every group that has hosts or a lifecycle set, with its state and host count."""
        states = self.store.list_instance_groups()
        hosts: dict[str, int] = {}
        for info in self.coord.agents():
            group = info.attributes.get(GROUP_ATTRIBUTE, DEFAULT_INSTANCE_GROUP)
            hosts[group] = hosts.get(group, 0) + 1
        names = sorted(set(states) | set(hosts))
        return [
            {"id": n, "lifecycleState": states.get(n, ACTIVE), "hosts": hosts.get(n, 0)}
            for n in names
        ]

    def set_instance_group_lifecycle(
        self, name: str, state: str, who: Principal = OPEN
    ) -> dict[str, Any]:
        """Set a group's lifecycle; the master reads it on its next pass. Admins only."""
        require_admin(who, "change instance group lifecycles")
        if not name or len(name) > 200 or "/" in name:
            raise ApiError(400, "name: must be 1-200 characters without '/'")
        if state not in LIFECYCLE_STATES:
            raise ApiError(400, f"state: must be one of {', '.join(LIFECYCLE_STATES)}")
        self.store.set_instance_group(name, state)
        self.coord.wake()
        return {"id": name, "lifecycleState": state}

    # ---- hosts ----------------------------------------------------------------------------
    def list_agents(
        self, jobs: Mapping[str, Job], tasks: Iterable[Task], who: Principal = OPEN
    ) -> list[dict[str, Any]]:
        """Registered hosts with resources, usage, health (and why not), lifecycle and
        tasks; usage counts the active `tasks` (of `jobs`) placed on each host. A host's
        address (where its signed API listens) is shown to admins only: REDACTED else."""
        per_host = _usage_and_tasks(jobs, tasks)
        groups = self.store.list_instance_groups()
        items = []
        for info in sorted(self.coord.agents(), key=lambda a: a.id):
            group = info.attributes.get(GROUP_ATTRIBUTE, DEFAULT_INSTANCE_GROUP)
            usage, task_ids = per_host.get(info.id, (dict.fromkeys(USAGE_FIELDS, 0.0), []))
            items.append(
                {
                    "id": info.id,
                    "address": info.address if who.is_admin else REDACTED,
                    "instanceGroup": group,
                    "lifecycleState": groups.get(group, ACTIVE),
                    "healthy": info.healthy,
                    "healthReasons": list(info.health_reasons),
                    "resources": info.resources,
                    "usage": usage,
                    "free": {k: info.resources.get(k, 0.0) - usage.get(k, 0.0) for k in usage},
                    "attributes": info.attributes,
                    "tasks": sorted(task_ids),
                }
            )
        return items


def _usage_and_tasks(
    jobs: Mapping[str, Job], tasks: Iterable[Task]
) -> dict[str, tuple[dict[str, float], list[str]]]:
    """Per host: the resources its active tasks' jobs ask for, and those tasks' ids."""
    per_host: dict[str, tuple[dict[str, float], list[str]]] = {}
    for task in tasks:
        host = task.agent_id
        if not host or task.state == TaskState.FINISHED:
            continue
        usage, ids = per_host.setdefault(host, (dict.fromkeys(USAGE_FIELDS, 0.0), []))
        ids.append(task.id)
        job = jobs.get(task.jobId)
        if job is None:
            continue
        r = job.jobDescriptor.container.resources
        usage[CPU] += r.cpu
        usage[MEMORY_MB] += r.memoryMB
        usage[DISK_MB] += r.diskMB
        usage[NETWORK_MBPS] += r.networkMbps
        usage[GPU] += r.gpu
    return per_host
