"""Scaling policies of service jobs, apart from any transport: what REST
(`/api/v3/autoscaling`) and gRPC (AutoScalingService) both call.

A policy is checked in full (titus.model.autoscaling), may be set only on an active
service job, by the job's owners or an admin (the same rule as every other job change),
and at most `max_per_job` live ones per job. It is stored Pending; the leader carries it
out (titus.master.autoscaling) and marks it Applied, or Error with the reason. A delete
marks it Deleting; the leader takes it down and marks it Deleted.

Application Auto Scaling, when it carries the policies out (`aws` executor), moves a job
through `scalable_target`/`set_scalable_target`: the custom-resource endpoint it calls,
which changes `desired` through the same rules as a user's resize.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from pydantic import TypeAdapter, ValidationError

from titus.api.auth import Principal
from titus.api.errors import ApiError, not_found
from titus.api.policy import require_owner
from titus.api.service import JobService
from titus.model.autoscaling import (
    LIVE_STATES,
    PolicyRecord,
    PolicyState,
    ScalingPolicy,
    parse_policy,
)
from titus.model.job import Job
from titus.model.scaling import scaled_job
from titus.model.states import JobState, TaskState
from titus.model.validation import FieldError, InvalidRequest
from titus.model.wire import Int
from titus.store.base import Conflict
from titus.store.roles import ScalingPolicies

log = logging.getLogger("titus.api")

MAX_ID = 200
CAS_ATTEMPTS = 10
#: The scalable dimension of a job, as the custom-resource endpoint names it.
DIMENSION = "desired"

#: desiredCapacity as the API reads any integer (a number or its digits, not true).
_DESIRED: TypeAdapter[int] = TypeAdapter(Int)


def _object(body: Any, allowed: set[str], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest([FieldError("$", "must be an object")], f"invalid {what}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(
            [FieldError(k, f"unknown field '{k}'") for k in unknown[:20]], f"invalid {what}"
        )
    return body


def _id(value: Any, path: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest([FieldError(path, "is required")], f"invalid {what}")
    if len(value) > MAX_ID:
        raise InvalidRequest(
            [FieldError(path, f"must be at most {MAX_ID} characters")], f"invalid {what}"
        )
    return value


class AutoScalingService:
    def __init__(self, jobs: JobService, store: ScalingPolicies, max_per_job: int):
        self.jobs = jobs
        self.store = store
        self.max_per_job = max_per_job

    # ---- reads --------------------------------------------------------------------------
    def get_policy(self, policy_id: str) -> PolicyRecord:
        record = self.store.get_scaling_policy(policy_id) if len(policy_id) <= MAX_ID else None
        if record is None:
            raise not_found("scaling policy", policy_id)
        return record

    def job_policies(self, job_id: str) -> list[PolicyRecord]:
        self.jobs.get_job(job_id)  # 404 for a job that never was
        return self.store.list_scaling_policies(job_id)

    def all_policies(self) -> list[PolicyRecord]:
        return self.store.list_scaling_policies()

    # ---- changes ------------------------------------------------------------------------
    def _service_job(self, job_id: str, who: Principal, action: str) -> Job:
        job = self.jobs.get_job(job_id)
        require_owner(who, job, action)
        if job.jobDescriptor.service is None:
            raise ApiError(
                400,
                f"job {job_id} is a batch job: scaling policies apply to service jobs",
                [FieldError("jobId", "must name a service job")],
            )
        if job.status.state != JobState.ACCEPTED:
            raise ApiError(409, f"job {job_id} is {job.status.state.value}")
        return job

    def set_policy(self, body: Any, who: Principal) -> PolicyRecord:
        """A PutPolicyRequest: a new policy on a job, stored Pending."""
        body = _object(body, {"jobId", "scalingPolicy"}, "scaling policy request")
        job_id = _id(body.get("jobId"), "jobId", "scaling policy request")
        policy = parse_policy(body.get("scalingPolicy"))
        self._service_job(job_id, who, "set a scaling policy on")
        live = [r for r in self.store.list_scaling_policies(job_id) if r.state in LIVE_STATES]
        if len(live) >= self.max_per_job:
            raise ApiError(
                400,
                f"job {job_id} already has {len(live)} scaling policies, the most a job "
                "may have (TITUS_AUTOSCALING_MAX_POLICIES_PER_JOB)",
                [FieldError("jobId", f"has {self.max_per_job} scaling policies already")],
            )
        record = PolicyRecord(
            id=str(uuid.uuid4()),
            jobId=job_id,
            policy=policy,
            reason="waiting for the leader to apply it",
            updatedAt=int(time.time() * 1000),
        )
        stored = self.store.create_scaling_policy(record)
        log.info(
            "set scaling policy %s (%s) on job %s by %s", stored.id, policy.kind, job_id, who.name
        )
        return stored

    def _change(self, policy_id: str, who: Principal, action: str, change: Any) -> PolicyRecord:
        for _ in range(CAS_ATTEMPTS):
            record = self.get_policy(policy_id)
            require_owner(who, self.jobs.get_job(record.jobId), action)
            new = change(record)
            if new is None:
                return record
            try:
                return self.store.update_scaling_policy(new)
            except Conflict:
                continue
        raise ApiError(
            503,
            f"scaling policy {policy_id} is changing too fast; try again",
            headers={"Retry-After": "1"},
        )

    def update_policy(self, body: Any, who: Principal) -> PolicyRecord:
        """An UpdatePolicyRequest: the policy replaced, Pending again until applied."""
        body = _object(body, {"policyId", "scalingPolicy"}, "scaling policy update")
        ident = body.get("policyId")
        if not isinstance(ident, dict):
            raise InvalidRequest(
                [FieldError("policyId", "is required")], "invalid scaling policy update"
            )
        policy_id = _id(ident.get("id"), "policyId.id", "scaling policy update")
        policy: ScalingPolicy = parse_policy(body.get("scalingPolicy"))

        def replace(record: PolicyRecord) -> PolicyRecord:
            if record.state not in LIVE_STATES:
                raise ApiError(409, f"scaling policy {policy_id} is {record.state.value}")
            self._service_job(record.jobId, who, "change a scaling policy of")
            return record.model_copy(
                update={
                    "policy": policy,
                    "state": PolicyState.PENDING,
                    "reason": "updated; waiting for the leader to apply it",
                    "updatedAt": int(time.time() * 1000),
                }
            )

        return self._change(policy_id, who, "change a scaling policy of", replace)

    def delete_policy(self, policy_id: str, who: Principal) -> PolicyRecord:
        """Mark the policy Deleting (the leader takes it down); twice is once."""

        def mark(record: PolicyRecord) -> PolicyRecord | None:
            if record.state not in LIVE_STATES:
                return None
            return record.model_copy(
                update={"state": PolicyState.DELETING, "reason": f"deleted by {who.name or 'user'}"}
            )

        record = self._change(policy_id, who, "delete a scaling policy of", mark)
        log.info("delete scaling policy %s of job %s by %s", policy_id, record.jobId, who.name)
        return record

    # ---- the custom-resource endpoint Application Auto Scaling calls ---------------------
    def scalable_target(self, job_id: str) -> dict[str, Any]:
        """The job's scalable dimension as Application Auto Scaling reads a custom
        resource: desired, how many tasks run, and whether it is still getting there."""
        job = self.jobs.get_job(job_id)
        service = job.jobDescriptor.service
        if service is None:
            raise ApiError(400, f"job {job_id} is a batch job: it has no scalable dimension")
        desired = service.capacity.desired
        running = sum(1 for t in self.jobs.store.list_tasks(job_id) if t.state == TaskState.STARTED)
        return {
            "actualCapacity": running,
            "desiredCapacity": desired,
            "dimensionName": DIMENSION,
            "resourceName": job_id,
            "scalableTargetDimensionId": job_id,
            "scalingStatus": "Successful" if running == desired else "InProgress",
            "version": str(job.version),
        }

    def set_scalable_target(self, job_id: str, body: Any, who: Principal) -> dict[str, Any]:
        """Application Auto Scaling moves desired: the same rules as a user's resize, and
        the job's history names the policies that asked for it."""
        body = _object(body, {"desiredCapacity"}, "scalable target change")
        refused = InvalidRequest(
            [FieldError("desiredCapacity", "must be an integer of at least 0")],
            "invalid scalable target change",
        )
        try:
            desired = _DESIRED.validate_python(body.get("desiredCapacity"))
        except ValidationError:
            raise refused from None
        if desired < 0:
            raise refused
        applied = [
            r.id for r in self.store.list_scaling_policies(job_id) if r.state == PolicyState.APPLIED
        ]
        label = ", ".join(applied) or "(none applied)"

        def change(job: Job) -> Job | None:
            service = job.jobDescriptor.service
            if service is None:
                raise ApiError(400, f"job {job_id} is a batch job: it has no scalable dimension")
            scaled = scaled_job(job, desired, label, "Application Auto Scaling activity")
            if isinstance(scaled, str):
                if scaled.startswith(f"job {job_id} is already"):
                    return None
                raise ApiError(400, scaled, [FieldError("desiredCapacity", scaled)])
            new = scaled.jobDescriptor.service
            assert new is not None
            self.jobs.limits.admit(0, new.capacity.desired - service.capacity.desired)
            return scaled

        self.jobs.change_job(job_id, change, who, "scale")
        log.info("scalable target of job %s set to %d by %s", job_id, desired, who.name)
        return self.scalable_target(job_id)


def results(records: list[PolicyRecord]) -> dict[str, Any]:
    """A GetPolicyResult, as protobuf-JSON."""
    return {"items": [r.result_json() for r in records]}
