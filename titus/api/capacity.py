"""Capacity groups at `/api/v2/management/applications` (Titus's application SLAs).

A group reserves `instanceCount` slices of a given size for the jobs that name it. The
group `DEFAULT` always exists (served with default values until someone stores one) and
cannot be deleted. A group that active jobs still name cannot be deleted either. When
authentication is on, changes need the admin role (the gate checks it).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from titus.api.body import read_json
from titus.api.deps import caller_of, service_of, settings_of, view_of
from titus.api.errors import ApiError, not_found
from titus.api.jobs import parse
from titus.api.schemas import ERROR_RESPONSES, CapacityGroup, json_body
from titus.store.base import Conflict

log = logging.getLogger("titus.api")

router = APIRouter(
    prefix="/api/v2/management/applications", tags=["capacity groups"], responses=ERROR_RESPONSES
)
DEFAULT = "DEFAULT"


def _default() -> CapacityGroup:
    return CapacityGroup(appName=DEFAULT)


def _load(raw: str) -> dict[str, Any]:
    return json.loads(raw)  # type: ignore[no-any-return]


@router.get("", response_model=list[CapacityGroup])
async def list_groups(request: Request) -> JSONResponse:
    stored = await run_in_threadpool(service_of(request).store.list_capacity_groups)
    groups = {name: _load(raw) for name, raw in stored.items()}
    groups.setdefault(DEFAULT, _default().model_dump())
    return JSONResponse([groups[n] for n in sorted(groups)])


@router.get("/{name}", responses={200: {"model": CapacityGroup, "description": "The group."}})
async def get_group(name: str, request: Request) -> JSONResponse:
    raw = await run_in_threadpool(service_of(request).store.get_capacity_group, name)
    if raw is None:
        if name == DEFAULT:
            return JSONResponse(_default().model_dump())
        raise not_found("capacity group", name)
    return JSONResponse(_load(raw))


@router.post(
    "",
    status_code=201,
    responses={201: {"model": CapacityGroup, "description": "Created."}},
    openapi_extra=json_body(CapacityGroup),
)
async def create_group(request: Request) -> JSONResponse:
    body = await read_json(request, settings_of(request).max_body_bytes)
    group = parse(CapacityGroup, body, "capacity group")
    if group.appName == DEFAULT:
        raise ApiError(409, "capacity group DEFAULT exists")
    store = service_of(request).store
    try:
        await run_in_threadpool(store.create_capacity_group, group.appName, group.model_dump_json())
    except Conflict:
        raise ApiError(409, f"capacity group {group.appName} exists") from None
    log.info("create capacity group %s caller=%s", group.appName, caller_of(request)[0] or "-")
    return JSONResponse(group.model_dump(), status_code=201)


@router.put(
    "/{name}",
    responses={200: {"model": CapacityGroup, "description": "Updated."}},
    openapi_extra=json_body(CapacityGroup),
)
async def update_group(name: str, request: Request) -> JSONResponse:
    body = await read_json(request, settings_of(request).max_body_bytes)
    group = parse(CapacityGroup, body, "capacity group")
    if group.appName != name:
        raise ApiError(400, f"appName '{group.appName}' does not match the path '{name}'")
    store = service_of(request).store
    if name != DEFAULT and await run_in_threadpool(store.get_capacity_group, name) is None:
        raise not_found("capacity group", name)
    await run_in_threadpool(store.put_capacity_group, name, group.model_dump_json())
    log.info("update capacity group %s caller=%s", name, caller_of(request)[0] or "-")
    return JSONResponse(group.model_dump())


@router.delete("/{name}", status_code=204, responses={204: {"description": "Deleted."}})
async def delete_group(name: str, request: Request) -> Response:
    if name == DEFAULT:
        raise ApiError(400, "capacity group DEFAULT cannot be deleted")
    view = view_of(request)
    await view.refresh()
    users = [j.id for j in view.jobs.values() if j.jobDescriptor.capacityGroup == name]
    if users:
        raise ApiError(409, f"capacity group {name} is used by {len(users)} active job(s)")
    deleted = await run_in_threadpool(service_of(request).store.delete_capacity_group, name)
    if not deleted:
        raise not_found("capacity group", name)
    log.info("delete capacity group %s caller=%s", name, caller_of(request)[0] or "-")
    return Response(status_code=204)
