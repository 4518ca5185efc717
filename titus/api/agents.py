"""Hosts and instance groups, for operators: `GET /api/v3/agents` and the lifecycle of
instance groups (`GET /api/v3/instanceGroups`, `PUT /api/v3/instanceGroups/{name}/lifecycle`).

An agent is what registered in coordination (resources, attributes, health and its
reasons, published by the agent itself); its usage and tasks are the active tasks whose
taskContext `agent.id` names it, taken from the API's view of the store, so the answer
needs neither the master nor the agents. An instance group is the `machineGroup`
attribute hosts register with; its lifecycle is what the operator set (`active` when
never set): the master places no new task in a `phasedOut` group and moves its service
tasks away, a bounded number at a time; `removable` says the group is drained and its
hosts may go.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from titus.api.deps import service_of, view_of
from titus.api.errors import ApiError
from titus.api.schemas import ERROR_RESPONSES
from titus.api.view import ActiveView
from titus.model.states import TaskState

router = APIRouter(prefix="/api/v3", tags=["agents"], responses=ERROR_RESPONSES)

LIFECYCLE_STATES = ("active", "phasedOut", "removable")
GROUP_ATTRIBUTE = "machineGroup"
DEFAULT_GROUP = "default"
_USAGE_FIELDS = ("cpu", "memoryMB", "diskMB", "networkMbps", "gpu")


class LifecycleUpdate(BaseModel):
    state: Literal["active", "phasedOut", "removable"]


def _usage_and_tasks(view: ActiveView) -> dict[str, tuple[dict[str, float], list[str]]]:
    per_host: dict[str, tuple[dict[str, float], list[str]]] = {}
    for task in view.tasks.values():
        host = task.agent_id
        if not host or task.state == TaskState.FINISHED:
            continue
        usage, ids = per_host.setdefault(host, (dict.fromkeys(_USAGE_FIELDS, 0.0), []))
        ids.append(task.id)
        job = view.jobs.get(task.jobId)
        if job is None:
            continue
        r = job.jobDescriptor.container.resources
        usage["cpu"] += r.cpu
        usage["memoryMB"] += r.memoryMB
        usage["diskMB"] += r.diskMB
        usage["networkMbps"] += r.networkMbps
        usage["gpu"] += r.gpu
    return per_host


@router.get("/agents")
async def list_agents(request: Request) -> dict[str, Any]:
    """Registered hosts with resources, usage, health (and why not), lifecycle and tasks."""
    service = service_of(request)
    view = view_of(request)
    await view.refresh()
    per_host = _usage_and_tasks(view)
    groups = await run_in_threadpool(service.store.list_instance_groups)
    items = []
    for info in sorted(await run_in_threadpool(service.coord.agents), key=lambda a: a.id):
        group = info.attributes.get(GROUP_ATTRIBUTE, DEFAULT_GROUP)
        usage, task_ids = per_host.get(info.id, (dict.fromkeys(_USAGE_FIELDS, 0.0), []))
        items.append(
            {
                "id": info.id,
                "address": info.address,
                "instanceGroup": group,
                "lifecycleState": groups.get(group, "active"),
                "healthy": info.healthy,
                "healthReasons": list(info.health_reasons),
                "resources": info.resources,
                "usage": usage,
                "free": {k: info.resources.get(k, 0.0) - usage.get(k, 0.0) for k in usage},
                "attributes": info.attributes,
                "tasks": sorted(task_ids),
            }
        )
    return {"items": items}


@router.get("/instanceGroups")
def list_instance_groups(request: Request) -> dict[str, Any]:
    """Every group that has hosts or a lifecycle set, with its state and host count."""
    service = service_of(request)
    states = service.store.list_instance_groups()
    hosts: dict[str, int] = {}
    for info in service.coord.agents():
        group = info.attributes.get(GROUP_ATTRIBUTE, DEFAULT_GROUP)
        hosts[group] = hosts.get(group, 0) + 1
    names = sorted(set(states) | set(hosts))
    return {
        "items": [
            {"id": n, "lifecycleState": states.get(n, "active"), "hosts": hosts.get(n, 0)}
            for n in names
        ]
    }


@router.put("/instanceGroups/{name}/lifecycle")
def set_lifecycle(name: str, body: LifecycleUpdate, request: Request) -> dict[str, Any]:
    """Set a group's lifecycle; the master reads it on its next pass."""
    if not name or len(name) > 200 or "/" in name:
        raise ApiError(400, "name: must be 1-200 characters without '/'")
    service = service_of(request)
    service.store.set_instance_group(name, body.state)
    service.coord.wake()
    return {"id": name, "lifecycleState": body.state}
