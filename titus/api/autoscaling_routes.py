"""`/api/v3/autoscaling`: scaling policies of service jobs (Titus's REST shape of the
AutoScalingService: bodies and answers are the protobuf-JSON of its messages), and the
custom-resource endpoint Application Auto Scaling calls to read and set a job's desired
size. The rules are in autoscaling.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from titus.api.autoscaling import AutoScalingService, results
from titus.api.body import read_json
from titus.api.deps import authenticated, principal_of, settings_of
from titus.api.schemas import ERROR_RESPONSES, NON_EMPTY, Empty, json_body
from titus.model.autoscaling import ScalingPolicy
from titus.model.wire import Int

router = APIRouter(
    prefix="/api/v3/autoscaling",
    tags=["autoscaling"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(authenticated)],
)


class ScalingPolicyID(BaseModel):
    id: str = Field(json_schema_extra=NON_EMPTY)


class PutPolicyRequest(BaseModel):
    """A new policy on a job."""

    model_config = ConfigDict(extra="forbid")
    jobId: str = Field(json_schema_extra=NON_EMPTY)
    scalingPolicy: ScalingPolicy


class UpdatePolicyRequest(BaseModel):
    """A policy replaced (Pending again until the leader applies it)."""

    model_config = ConfigDict(extra="forbid")
    policyId: ScalingPolicyID
    scalingPolicy: ScalingPolicy


class GetPolicyResult(BaseModel):
    """ScalingPolicyResult items: jobId, id.id, scalingPolicy, policyState (state and,
    when pending or in error, pendingReason)."""

    items: list[dict[str, Any]]


class ScalableTargetDimension(BaseModel):
    """A job's desired size as Application Auto Scaling reads a custom resource."""

    actualCapacity: int
    desiredCapacity: int
    dimensionName: str
    resourceName: str
    scalableTargetDimensionId: str
    scalingStatus: str
    version: str


class DesiredCapacity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    desiredCapacity: Int = Field(json_schema_extra={"minimum": 0})


#: Request bodies whose schemas the OpenAPI document carries (see app.BODY_MODELS).
BODY_MODELS: list[type[BaseModel]] = [PutPolicyRequest, UpdatePolicyRequest, DesiredCapacity]

RESULTS: dict[int | str, dict[str, Any]] = {
    200: {"model": GetPolicyResult, "description": "The policies, with their states."}
}
TARGET: dict[int | str, dict[str, Any]] = {
    200: {"model": ScalableTargetDimension, "description": "The job's scalable dimension."}
}


def _service(request: Request) -> AutoScalingService:
    service: AutoScalingService = request.app.state.autoscaling
    return service


async def _body(request: Request) -> Any:
    return await read_json(request, settings_of(request).max_body_bytes)


@router.post(
    "/scalingPolicy",
    openapi_extra=json_body(PutPolicyRequest),
    responses={200: {"model": ScalingPolicyID, "description": "The new policy's id."}},
)
async def set_policy(request: Request) -> JSONResponse:
    """Set a target tracking or step scaling policy on a service job."""
    body = await _body(request)
    record = await run_in_threadpool(_service(request).set_policy, body, principal_of(request))
    return JSONResponse({"id": record.id})


@router.put(
    "/scalingPolicy",
    openapi_extra=json_body(UpdatePolicyRequest),
    responses={200: {"model": Empty, "description": "Replaced."}},
)
async def update_policy(request: Request) -> JSONResponse:
    """Replace a policy (it is Pending again until applied)."""
    body = await _body(request)
    await run_in_threadpool(_service(request).update_policy, body, principal_of(request))
    return JSONResponse({})


@router.get("/scalingPolicies", responses=RESULTS)
async def all_policies(request: Request) -> JSONResponse:
    """Every policy of every job."""
    records = await run_in_threadpool(_service(request).all_policies)
    return JSONResponse(results(records))


@router.get("/scalingPolicies/{job_id}", responses=RESULTS)
async def job_policies(job_id: str, request: Request) -> JSONResponse:
    """The policies of one job."""
    records = await run_in_threadpool(_service(request).job_policies, job_id)
    return JSONResponse(results(records))


@router.get("/scalingPolicy/{policy_id}", responses=RESULTS)
async def get_policy(policy_id: str, request: Request) -> JSONResponse:
    """One policy (as a one-item GetPolicyResult, as Titus answers)."""
    record = await run_in_threadpool(_service(request).get_policy, policy_id)
    return JSONResponse(results([record]))


@router.delete(
    "/scalingPolicy/{policy_id}", responses={200: {"model": Empty, "description": "Deleting."}}
)
async def delete_policy(policy_id: str, request: Request) -> JSONResponse:
    """Take a policy off its job: Deleting, then Deleted once the leader removed it."""
    await run_in_threadpool(_service(request).delete_policy, policy_id, principal_of(request))
    return JSONResponse({})


@router.get("/scalableTargetDimensions/{job_id}", responses=TARGET)
async def scalable_target(job_id: str, request: Request) -> JSONResponse:
    """The custom resource Application Auto Scaling reads: the job's desired size."""
    return JSONResponse(await run_in_threadpool(_service(request).scalable_target, job_id))


@router.patch(
    "/scalableTargetDimensions/{job_id}",
    openapi_extra=json_body(DesiredCapacity),
    responses=TARGET,
)
async def set_scalable_target(job_id: str, request: Request) -> JSONResponse:
    """Application Auto Scaling sets the job's desired size (as a resize: the job's
    owners or an admin, within min and max, its processes respected)."""
    body = await _body(request)
    service = _service(request)
    doc = await run_in_threadpool(service.set_scalable_target, job_id, body, principal_of(request))
    return JSONResponse(doc)
