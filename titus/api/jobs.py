"""`/api/v3/jobs`: create, read, list, kill and resize jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from titus.api.body import read_json
from titus.api.deps import caller_of, service_of, settings_of
from titus.api.query import JOB_FILTERS, Criteria, job_key, paginate, project
from titus.model.job import Capacity
from titus.model.validation import InvalidRequest, from_pydantic

router = APIRouter(prefix="/api/v3", tags=["jobs"])

JOB_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobDescriptor"}}},
    }
}


@router.post("/jobs", status_code=202, openapi_extra=JOB_BODY)
async def create_job(request: Request) -> JSONResponse:
    body = await read_json(request, settings_of(request).max_body_bytes)
    caller, reason = caller_of(request)
    job = await _run(request, lambda: service_of(request).create_job(body, caller, reason))
    return JSONResponse({"id": job.id}, status_code=202)


@router.get("/jobs")
async def list_jobs(request: Request) -> dict[str, Any]:
    params = dict(request.query_params)
    criteria = Criteria.parse(params, JOB_FILTERS)
    jobs = await _run(request, lambda: service_of(request).store.list_active_jobs())
    matching = [j for j in jobs if criteria.job_matches(j)]
    page, pagination = paginate(matching, params, job_key)
    return {
        "items": [project(j.api_json(), params.get("fields")) for j in page],
        "pagination": pagination,
    }


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, request: Request) -> dict[str, Any]:
    job = await _run(request, lambda: service_of(request).get_job(job_id))
    return job.api_json()


@router.delete("/jobs/{job_id}")
async def kill_job(job_id: str, request: Request) -> JSONResponse:
    caller, reason = caller_of(request)
    await _run(request, lambda: service_of(request).kill_job(job_id, caller, reason))
    return JSONResponse({}, status_code=200)


@router.put("/jobs/{job_id}/instances")
async def resize_job(job_id: str, request: Request) -> JSONResponse:
    body = await read_json(request, settings_of(request).max_body_bytes)
    try:
        capacity = Capacity.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest(from_pydantic(exc), "invalid capacity") from None
    caller, reason = caller_of(request)
    await _run(request, lambda: service_of(request).resize(job_id, capacity, caller, reason))
    return JSONResponse({}, status_code=200)


async def _run(request: Request, fn: Any) -> Any:
    """Store calls block; run them off the event loop."""
    return await run_in_threadpool(fn)
