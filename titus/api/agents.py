"""Hosts and instance groups, for operators: `GET /api/v3/agents` and the lifecycle of
instance groups (`GET /api/v3/instanceGroups`, `PUT /api/v3/instanceGroups/{name}/lifecycle`).

What each answer holds and what a lifecycle means is ClusterService's (titus/api/cluster.py);
an agent's usage and tasks come from the API's view of the store, refreshed first.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from titus.api.deps import authenticated, cluster_of, principal_of, view_of
from titus.api.schemas import ERROR_RESPONSES

router = APIRouter(
    prefix="/api/v3",
    tags=["agents"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(authenticated)],
)


class LifecycleUpdate(BaseModel):
    state: Literal["active", "phasedOut", "removable"]


@router.get("/agents")
async def list_agents(request: Request) -> dict[str, Any]:
    """Registered hosts with resources, usage, health (and why not), lifecycle and tasks;
    addresses for admins only."""
    view = view_of(request)
    await view.refresh()
    # A snapshot taken here: the view changes only on this loop, not under the worker.
    jobs, tasks = dict(view.jobs), list(view.tasks.values())
    who = principal_of(request)
    items = await run_in_threadpool(cluster_of(request).list_agents, jobs, tasks, who)
    return {"items": items}


@router.get("/instanceGroups")
def list_instance_groups(request: Request) -> dict[str, Any]:
    """Every group that has hosts or a lifecycle set, with its state and host count."""
    return {"items": cluster_of(request).list_instance_groups()}


@router.put("/instanceGroups/{name}/lifecycle")
def set_lifecycle(name: str, body: LifecycleUpdate, request: Request) -> dict[str, Any]:
    """Set a group's lifecycle; the master reads it on its next pass. Admins only."""
    return cluster_of(request).set_instance_group_lifecycle(name, body.state, principal_of(request))
