"""`/api/v3/jobs`: create, read, list, kill and change jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from titus.api.body import read_json
from titus.api.creates import accept_create
from titus.api.deps import authenticated, caller_of, principal_of, service_of, settings_of, view_of
from titus.api.errors import ApiError
from titus.api.policy import job_doc
from titus.api.query import JOB_FILTERS, Criteria, Paging, csv
from titus.api.schemas import (
    ERROR_RESPONSES,
    CapacityRequest,
    Empty,
    JobAttributesBody,
    JobId,
    Page,
    json_body,
    query_parameters,
)
from titus.model.job import Capacity, DisruptionBudget, Job, ServiceJobProcesses
from titus.model.validation import InvalidRequest, from_pydantic

router = APIRouter(
    prefix="/api/v3",
    tags=["jobs"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(authenticated)],
)

OK: dict[int | str, dict[str, Any]] = {200: {"model": Empty, "description": "Done."}}


def parse(model: type[BaseModel], body: Any, what: str) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest(from_pydantic(exc), f"invalid {what}") from None


def done() -> JSONResponse:
    return JSONResponse({}, status_code=200)


@router.post(
    "/jobs",
    status_code=202,
    openapi_extra={
        **json_body({"$ref": "#/components/schemas/JobDescriptor"}),
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
            },
        ],
    },
    responses={202: {"model": JobId, "description": "Accepted: the new job's id."}},
)
async def create_job(request: Request) -> JSONResponse:
    """Submit a JobDescriptor. With `Idempotency-Key`, a retry returns the first job.

    Served by creates.CreateEndpoint in front of the framework; this is the same, for an
    app built without it."""
    caller, reason = caller_of(request)
    job = await accept_create(
        service_of(request),
        settings_of(request).max_body_bytes,
        lambda name: request.headers.get(name, ""),
        request.stream(),
        caller,
        reason,
    )
    return JSONResponse({"id": job.id}, status_code=202)


@router.get(
    "/jobs",
    response_model=Page,
    openapi_extra={"parameters": query_parameters(JOB_FILTERS, paging=True)},
)
async def list_jobs(request: Request) -> JSONResponse:
    """Active jobs matching every filter given, a page at a time."""
    params = dict(request.query_params)
    criteria = Criteria.parse(params, JOB_FILTERS)
    paging = Paging.parse(params)
    view = view_of(request)
    await view.refresh()
    jobs = view.jobs
    matches = None if criteria.empty else lambda key: criteria.job_matches(jobs[key[1]])
    keys, total, has_more = view.job_order.page(paging, matches)
    who = principal_of(request)
    items = [job_doc(who, view.job_json[k[1]]) for k in keys]
    return JSONResponse(paging.response(items, keys, has_more, total))


@router.get("/jobs/{job_id}", responses={200: {"model": Job, "description": "The job."}})
async def get_job(job_id: str, request: Request) -> JSONResponse:
    doc = await run_in_threadpool(service_of(request).read_job, job_id, principal_of(request))
    return JSONResponse(doc)


@router.delete("/jobs/{job_id}", responses=OK)
async def kill_job(job_id: str, request: Request) -> JSONResponse:
    caller, reason = caller_of(request)
    who = principal_of(request)
    await run_in_threadpool(service_of(request).kill_job, job_id, caller, reason, who)
    return done()


@router.put("/jobs/{job_id}/instances", responses=OK, openapi_extra=json_body(Capacity))
async def resize_job(job_id: str, request: Request) -> JSONResponse:
    """Set min, desired and max of a service job."""
    body = await read_json(request, settings_of(request).max_body_bytes)
    capacity = parse(Capacity, body, "capacity")
    caller, reason = caller_of(request)
    who = principal_of(request)
    await view_of(request).refresh()
    await run_in_threadpool(
        lambda: service_of(request).resize(job_id, capacity, caller, reason, who=who)
    )
    return done()


@router.put(
    "/jobs/{job_id}/capacityAttributes", responses=OK, openapi_extra=json_body(CapacityRequest)
)
async def set_capacity_attributes(job_id: str, request: Request) -> JSONResponse:
    """Like `instances`, but only the fields given change."""
    body = await read_json(request, settings_of(request).max_body_bytes)
    given = parse(CapacityRequest, body, "capacity")
    partial = given.model_dump()
    caller, reason = caller_of(request)
    who = principal_of(request)
    await run_in_threadpool(
        lambda: service_of(request).resize(
            job_id, Capacity(), caller, reason, partial=partial, who=who
        )
    )
    return done()


@router.put(
    "/jobs/{job_id}/jobprocesses",
    responses=OK,
    openapi_extra=json_body(ServiceJobProcesses),
)
async def set_job_processes(job_id: str, request: Request) -> JSONResponse:
    body = await read_json(request, settings_of(request).max_body_bytes)
    processes = parse(ServiceJobProcesses, body, "job processes")
    caller, reason = caller_of(request)
    who = principal_of(request)
    await run_in_threadpool(
        service_of(request).set_processes, job_id, processes, caller, reason, who
    )
    return done()


@router.put(
    "/jobs/{job_id}/disruptionBudget",
    responses=OK,
    openapi_extra=json_body(DisruptionBudget),
)
async def set_disruption_budget(job_id: str, request: Request) -> JSONResponse:
    body = await read_json(request, settings_of(request).max_body_bytes)
    budget = parse(DisruptionBudget, body, "disruption budget")
    caller, reason = caller_of(request)
    who = principal_of(request)
    await run_in_threadpool(
        service_of(request).set_disruption_budget, job_id, budget, caller, reason, who
    )
    return done()


@router.post("/jobs/{job_id}/enable", responses=OK)
async def enable_job(job_id: str, request: Request) -> JSONResponse:
    caller, reason = caller_of(request)
    who = principal_of(request)
    await run_in_threadpool(service_of(request).set_enabled, job_id, True, caller, reason, who)
    return done()


@router.post("/jobs/{job_id}/disable", responses=OK)
async def disable_job(job_id: str, request: Request) -> JSONResponse:
    caller, reason = caller_of(request)
    who = principal_of(request)
    await run_in_threadpool(service_of(request).set_enabled, job_id, False, caller, reason, who)
    return done()


@router.put("/jobs/{job_id}/attributes", responses=OK, openapi_extra=json_body(JobAttributesBody))
async def put_job_attributes(job_id: str, request: Request) -> JSONResponse:
    body = await read_json(request, settings_of(request).max_body_bytes)
    attrs = parse(JobAttributesBody, body, "attributes").attributes
    caller, reason = caller_of(request)
    who = principal_of(request)
    await run_in_threadpool(
        service_of(request).update_job_attributes, job_id, attrs, [], caller, reason, who
    )
    return done()


@router.delete(
    "/jobs/{job_id}/attributes",
    responses=OK,
    openapi_extra={"parameters": query_parameters(["keys"], required=["keys"])},
)
async def delete_job_attributes(job_id: str, request: Request) -> JSONResponse:
    keys = csv(request.query_params.get("keys"))
    if not keys:
        raise ApiError(400, "give the attribute keys to delete as keys=a,b")
    caller, reason = caller_of(request)
    who = principal_of(request)
    await run_in_threadpool(
        service_of(request).update_job_attributes, job_id, {}, keys, caller, reason, who
    )
    return done()
