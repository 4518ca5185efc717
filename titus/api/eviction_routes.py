"""`/api/v3/eviction`: disruption quotas (system, capacity group, job) and evicting a task
within its job's budget (the rules are in eviction.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from titus.api.deps import authenticated, principal_of
from titus.api.eviction import EvictionService
from titus.api.schemas import ERROR_RESPONSES, Eviction, query_parameters
from titus.model.disruption import Quota

router = APIRouter(
    prefix="/api/v3/eviction",
    tags=["eviction"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(authenticated)],
)


def _service(request: Request) -> EvictionService:
    service: EvictionService = request.app.state.eviction
    return service


def _quota(target: dict[str, Any], quota: Quota) -> JSONResponse:
    return JSONResponse({"target": target, "quota": max(0, quota.allowed), "message": quota.reason})


@router.get("/quotas/system")
async def system_quota(request: Request) -> JSONResponse:
    """Evictions the whole system allows now."""
    return _quota({"system": {}}, await run_in_threadpool(_service(request).system_quota))


@router.get("/quotas/capacityGroups/{name}")
async def group_quota(name: str, request: Request) -> JSONResponse:
    """Evictions the jobs of a capacity group allow now, together."""
    quota = await run_in_threadpool(_service(request).group_quota, name)
    return _quota({"capacityGroup": name}, quota)


@router.get("/quotas/jobs/{job_id}")
async def job_quota(job_id: str, request: Request) -> JSONResponse:
    """Tasks of the job that may be evicted now, and why not when none may."""
    quota = await run_in_threadpool(_service(request).job_quota, job_id)
    return _quota({"jobId": job_id}, quota)


@router.delete(
    "/tasks/{task_id}",
    status_code=202,
    responses={202: {"model": Eviction, "description": "The task is being killed."}},
    openapi_extra={"parameters": query_parameters(["reason"])},
)
async def evict_task(task_id: str, request: Request) -> JSONResponse:
    """Evict a running task if its job's disruption budget allows (429 if not)."""
    reason = request.query_params.get("reason", "")
    who = principal_of(request)
    done = await run_in_threadpool(_service(request).evict, task_id, reason, who)
    return JSONResponse(done, status_code=202)
