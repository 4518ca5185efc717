"""`/api/v3/loadBalancers`: which ELBv2 target groups a service job's tasks join.

The association is checked against ELBv2 when it is made (the target group must exist
and take IP targets, since each task has an address of its own) and kept on the job
(titus.model.loadbalancer); the leader registers and deregisters the targets
(titus.master.loadbalancers). Only the job's owners and admins change it; associating
twice, or removing what is not there, changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from titus.api.auth import Principal
from titus.api.deps import authenticated, principal_of
from titus.api.errors import ApiError
from titus.api.query import MAX_PAGE_SIZE, page_size
from titus.api.schemas import ERROR_RESPONSES, query_parameters
from titus.api.service import JobService
from titus.model.job import Job
from titus.model.loadbalancer import (
    MAX_PER_JOB,
    TARGET_GROUP_ARN_SCHEMA,
    is_target_group_arn,
    load_balancers_of,
    with_load_balancers,
)

RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3)


class LoadBalancerService:
    def __init__(self, jobs: JobService, elbv2: Callable[[], Any]):
        self.jobs = jobs
        self._factory = elbv2
        self._client: Any = None

    def _elbv2(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def _check_target_group(self, arn: str) -> None:
        if not is_target_group_arn(arn):
            raise ApiError(400, f"loadBalancerId: {arn[:80]!r} is not a target group ARN")
        try:
            found = self._elbv2().describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
        except botocore.exceptions.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("TargetGroupNotFound", "TargetGroupNotFoundException", "ValidationError"):
                raise ApiError(400, f"loadBalancerId: target group {arn} does not exist") from e
            raise ApiError(503, f"cannot check {arn} with ELBv2 now: {code}") from e
        except botocore.exceptions.BotoCoreError as e:
            raise ApiError(503, f"cannot check {arn} with ELBv2 now: {e}") from e
        kind = found[0].get("TargetType", "instance") if found else ""
        if kind != "ip":
            raise ApiError(
                400,
                f"loadBalancerId: target group {arn} takes {kind or 'no'} targets; "
                "tasks join as IP targets (TargetType ip)",
            )

    def associate(self, job_id: str, arn: str, who: Principal) -> Job:
        current = self.jobs.get_job(job_id)
        if current.jobDescriptor.service is None:
            raise ApiError(400, f"job {job_id} is a batch job: only service jobs take traffic")
        if arn in load_balancers_of(current):
            return current
        self._check_target_group(arn)

        def add(job: Job) -> Job | None:
            arns = load_balancers_of(job)
            if arn in arns:
                return None
            if len(arns) >= MAX_PER_JOB:
                raise ApiError(400, f"job {job_id} already has {MAX_PER_JOB} load balancers")
            return with_load_balancers(job, [*arns, arn])

        return self.jobs.change_job(job_id, add, who, "associate a load balancer with")

    def dissociate(self, job_id: str, arn: str, who: Principal) -> Job:
        def remove(job: Job) -> Job | None:
            arns = load_balancers_of(job)
            if arn not in arns:
                return None
            return with_load_balancers(job, [a for a in arns if a != arn])

        return self.jobs.change_job(job_id, remove, who, "remove a load balancer from")

    def of_job(self, job_id: str) -> dict[str, Any]:
        return job_entry(self.jobs.get_job(job_id))

    def page(self, view: Any, size: int, number: int = 0) -> tuple[list[Job], int]:
        """One page of the active jobs that have load balancers (by job id), and how many
        there are in all; `size` is held to 1..MAX_PAGE_SIZE."""
        size = held_page_size(size)
        jobs = sorted((j for j in view.jobs.values() if load_balancers_of(j)), key=lambda j: j.id)
        start = max(0, number) * size
        return jobs[start : start + size], len(jobs)


def held_page_size(asked: int) -> int:
    return min(MAX_PAGE_SIZE, max(1, asked))


def job_entry(job: Job) -> dict[str, Any]:
    return {"jobId": job.id, "loadBalancers": [{"id": arn} for arn in load_balancers_of(job)]}


def elbv2_client(region: str) -> Callable[[], Any]:
    return lambda: boto3.client("elbv2", region_name=region or None, config=RETRY_CONFIG)


router = APIRouter(
    prefix="/api/v3",
    tags=["loadBalancers"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(authenticated)],
)
PAIR = {
    "parameters": query_parameters(
        ["jobId", "loadBalancerId"], required=["jobId", "loadBalancerId"]
    )
}
#: Associating checks the id is a target group's ARN (removing one takes any id, and
#: removes nothing when the job does not have it).
ASSOCIATE = {
    "parameters": [
        {**p, "schema": {**p["schema"], **TARGET_GROUP_ARN_SCHEMA}}
        if p["name"] == "loadBalancerId"
        else p
        for p in PAIR["parameters"]
    ]
}


def _service(request: Request) -> LoadBalancerService:
    service: LoadBalancerService = request.app.state.load_balancers
    return service


def _pair(request: Request) -> tuple[str, str]:
    job_id = request.query_params.get("jobId", "")
    arn = request.query_params.get("loadBalancerId", "")
    if not job_id or not arn:
        raise ApiError(400, "jobId and loadBalancerId are both required")
    return job_id, arn


PAGE_SIZE = {
    "name": "pageSize",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 100},
}


@router.get("/loadBalancers", openapi_extra={"parameters": [PAGE_SIZE]})
async def list_load_balancers(request: Request) -> JSONResponse:
    """Every active job that has load balancers, with them."""
    size = page_size(request.query_params, 100)
    jobs, total = _service(request).page(request.app.state.view, size)
    items = [job_entry(j) for j in jobs]
    return JSONResponse(
        {"items": items, "pagination": {"hasMore": total > len(jobs), "totalItems": total}}
    )


@router.get("/loadBalancers/{job_id}")
async def job_load_balancers(job_id: str, request: Request) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(_service(request).of_job, job_id))


@router.post("/loadBalancers", openapi_extra=ASSOCIATE)
async def associate(request: Request) -> JSONResponse:
    """Have the job's serving tasks join the target group."""
    job_id, arn = _pair(request)
    who = principal_of(request)
    job = await run_in_threadpool(_service(request).associate, job_id, arn, who)
    return JSONResponse(job_entry(job), status_code=200)


@router.delete("/loadBalancers", openapi_extra=PAIR)
async def dissociate(request: Request) -> JSONResponse:
    """The job's tasks leave the target group (deregistered by the leader)."""
    job_id, arn = _pair(request)
    who = principal_of(request)
    job = await run_in_threadpool(_service(request).dissociate, job_id, arn, who)
    return JSONResponse(job_entry(job), status_code=200)
