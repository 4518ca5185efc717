"""Capacity groups at `/api/v2/management/applications` (Titus's application SLAs).

A group reserves `instanceCount` slices of a given size for the jobs that name it. The
group `DEFAULT` always exists (served with default values until someone stores one) and
cannot be deleted. A group that active jobs still name cannot be deleted either (the rules
are ClusterService's, titus/api/cluster.py). When authentication is on, changes need the
admin role (the service layer checks it).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from titus.api.body import read_json
from titus.api.deps import authenticated, caller_of, cluster_of, principal_of, settings_of, view_of
from titus.api.jobs import parse
from titus.api.schemas import ERROR_RESPONSES, CapacityGroup, json_body

router = APIRouter(
    prefix="/api/v2/management/applications",
    tags=["capacity groups"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(authenticated)],
)


@router.get("", response_model=list[CapacityGroup])
async def list_groups(request: Request) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(cluster_of(request).list_capacity_groups))


@router.get("/{name}", responses={200: {"model": CapacityGroup, "description": "The group."}})
async def get_group(name: str, request: Request) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(cluster_of(request).get_capacity_group, name))


@router.post(
    "",
    status_code=201,
    responses={201: {"model": CapacityGroup, "description": "Created."}},
    openapi_extra=json_body(CapacityGroup),
)
async def create_group(request: Request) -> JSONResponse:
    body = await read_json(request, settings_of(request).max_body_bytes)
    group = parse(CapacityGroup, body, "capacity group")
    caller = caller_of(request)[0]
    created = await run_in_threadpool(
        cluster_of(request).create_capacity_group, group, caller, principal_of(request)
    )
    return JSONResponse(created, status_code=201)


@router.put(
    "/{name}",
    responses={200: {"model": CapacityGroup, "description": "Updated."}},
    openapi_extra=json_body(CapacityGroup),
)
async def update_group(name: str, request: Request) -> JSONResponse:
    body = await read_json(request, settings_of(request).max_body_bytes)
    group = parse(CapacityGroup, body, "capacity group")
    caller = caller_of(request)[0]
    updated = await run_in_threadpool(
        cluster_of(request).update_capacity_group, name, group, caller, principal_of(request)
    )
    return JSONResponse(updated)


@router.delete("/{name}", status_code=204, responses={204: {"description": "Deleted."}})
async def delete_group(name: str, request: Request) -> Response:
    view = view_of(request)
    await view.refresh()
    jobs = list(view.jobs.values())
    caller = caller_of(request)[0]
    await run_in_threadpool(
        cluster_of(request).delete_capacity_group, name, jobs, caller, principal_of(request)
    )
    return Response(status_code=204)
