"""The aws executor: policies carried out by Application Auto Scaling, as Titus did.

Each job with a live policy is a scalable target of the `custom-resource` namespace
whose ResourceId is this API's custom-resource endpoint for the job
(`<autoscaling_endpoint_url>/api/v3/autoscaling/scalableTargetDimensions/<jobId>`, served
by titus.api.autoscaling_routes), with the job's min and max; each policy is a scaling
policy on it named by the policy id; a step policy also has its CloudWatch alarm
(`titus-policy-<policyId>`) whose action is the policy's ARN. Application Auto Scaling
then calls the endpoint to read and set the job's desired size.

Each pass reconciles what is wanted against what AWS holds, so it is safe to repeat and
a new leader repairs whatever its predecessor left half done: missing targets, policies
and alarms are put, a target whose min or max no longer matches its job is registered
again, and what the platform made for policies or jobs that are gone is deleted (by the
endpoint prefix of ResourceIds and the alarm name prefix, never anything else). Each
policy stands alone: a throttled or failing call is retried with backoff on later passes
(the client itself retries throttling adaptively); a refusal by AWS puts the policy in
Error with AWS's message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import botocore.exceptions

from titus.master import metrics as m
from titus.master.autoscaling.executor import JobFacts, Outcome, Snapshot
from titus.model.autoscaling import LIVE_STATES, PolicyRecord, PolicyState

log = logging.getLogger("titus.master")

NAMESPACE = "custom-resource"
DIMENSION = "custom-resource:ResourceType:Property"
ALARM_PREFIX = "titus-policy-"
ENDPOINT_PATH = "/api/v3/autoscaling/scalableTargetDimensions/"
BACKOFF_MAX_SEC = 300.0
#: AWS error codes that mean "slow down", not "no".
THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
}


@dataclass
class _Backoff:
    failures: int = 0
    next_try: float = 0.0


def step_configuration(record: PolicyRecord) -> dict[str, Any]:
    step = record.policy.stepPolicyDescriptor
    assert step is not None and step.scalingPolicy is not None
    scaling = step.scalingPolicy
    steps = []
    for s in scaling.stepAdjustments:
        item: dict[str, Any] = {"ScalingAdjustment": s.scalingAdjustment or 0}
        if s.MetricIntervalLowerBound is not None:
            item["MetricIntervalLowerBound"] = s.MetricIntervalLowerBound
        if s.MetricIntervalUpperBound is not None:
            item["MetricIntervalUpperBound"] = s.MetricIntervalUpperBound
        steps.append(item)
    config: dict[str, Any] = {
        "AdjustmentType": scaling.adjustmentType.value,
        "StepAdjustments": steps,
        "MetricAggregationType": scaling.metricAggregationType.value,
    }
    if scaling.cooldownSec is not None:
        config["Cooldown"] = scaling.cooldownSec
    if scaling.minAdjustmentMagnitude is not None:
        config["MinAdjustmentMagnitude"] = scaling.minAdjustmentMagnitude
    return config


def target_configuration(record: PolicyRecord) -> dict[str, Any]:
    target = record.policy.targetPolicyDescriptor
    assert target is not None and target.customizedMetricSpecification is not None
    custom = target.customizedMetricSpecification
    metric: dict[str, Any] = {
        "MetricName": custom.metricName,
        "Namespace": custom.namespace,
        "Dimensions": [{"Name": d.name, "Value": d.value} for d in custom.dimensions],
        "Statistic": custom.statistic.value,
    }
    if custom.unit:
        metric["Unit"] = custom.unit
    config: dict[str, Any] = {
        "TargetValue": target.targetValue,
        "CustomizedMetricSpecification": metric,
        "DisableScaleIn": bool(target.disableScaleIn),
    }
    if target.scaleOutCooldownSec is not None:
        config["ScaleOutCooldown"] = target.scaleOutCooldownSec
    if target.scaleInCooldownSec is not None:
        config["ScaleInCooldown"] = target.scaleInCooldownSec
    return config


def alarm_name(policy_id: str) -> str:
    return ALARM_PREFIX + policy_id


class AwsExecutor:
    def __init__(
        self,
        autoscaling: Callable[[], Any],
        cloudwatch: Callable[[], Any],
        endpoint_url: str,
    ):
        self._factories = (autoscaling, cloudwatch)
        self._clients: tuple[Any, Any] | None = None
        self.prefix = endpoint_url.rstrip("/") + ENDPOINT_PATH
        self.backoff: dict[str, _Backoff] = {}

    def resource_id(self, job_id: str) -> str:
        return self.prefix + job_id

    def _aws(self) -> tuple[Any, Any]:
        if self._clients is None:
            self._clients = (self._factories[0](), self._factories[1]())
        return self._clients

    # ---- what AWS holds -----------------------------------------------------------------
    def _ours(self) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str]], set[str]]:
        """(our scalable targets by ResourceId, our policies by name -> (ResourceId, ARN),
        our alarm names)."""
        aas, cloudwatch = self._aws()
        targets: dict[str, dict[str, Any]] = {}
        for page in aas.get_paginator("describe_scalable_targets").paginate(
            ServiceNamespace=NAMESPACE
        ):
            for t in page["ScalableTargets"]:
                if str(t["ResourceId"]).startswith(self.prefix):
                    targets[str(t["ResourceId"])] = t
        policies: dict[str, tuple[str, str]] = {}
        for page in aas.get_paginator("describe_scaling_policies").paginate(
            ServiceNamespace=NAMESPACE
        ):
            for p in page["ScalingPolicies"]:
                if str(p["ResourceId"]).startswith(self.prefix):
                    policies[str(p["PolicyName"])] = (str(p["ResourceId"]), str(p["PolicyARN"]))
        alarms: set[str] = set()
        for page in cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=ALARM_PREFIX
        ):
            alarms.update(str(a["AlarmName"]) for a in page["MetricAlarms"])
        return targets, policies, alarms

    # ---- one pass -----------------------------------------------------------------------
    def run(self, snapshot: Snapshot) -> Outcome:
        outcome = Outcome()
        if not self.prefix.startswith(("http://", "https://")):
            for record in snapshot.policies:
                if record.state in LIVE_STATES:
                    reason = "TITUS_AUTOSCALING_ENDPOINT_URL is not set: AWS cannot reach the job"
                    outcome.states[record.id] = (PolicyState.ERROR, reason)
                elif record.state == PolicyState.DELETING:
                    outcome.states[record.id] = (PolicyState.DELETED, record.reason)
            return outcome
        try:
            targets, in_aws, alarms = self._ours()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            # nothing can be reconciled without knowing what AWS holds: next pass
            log.warning("autoscaling: cannot read what AWS holds: %s", e)
            m.AUTOSCALING_ERRORS.labels(kind="unreachable").inc()
            return outcome
        wanted_jobs: dict[str, JobFacts] = {}
        live: set[str] = set()
        for record in snapshot.policies:
            job = snapshot.jobs.get(record.jobId)
            if record.state in LIVE_STATES and job is not None and job.active:
                live.add(record.id)
                wanted_jobs[job.job_id] = job
        now = snapshot.now
        # targets first (a policy needs its target), with the job's bounds
        for job in wanted_jobs.values():
            rid = self.resource_id(job.job_id)
            held = targets.get(rid)
            bounds = (job.capacity.min, job.capacity.max)
            if held is None or (held["MinCapacity"], held["MaxCapacity"]) != bounds:
                self._guarded(
                    f"target {job.job_id}", now, outcome, [], partial(self._register, job)
                )
        for record in snapshot.policies:
            if record.id in live:
                applied = self._guarded(
                    record.id,
                    now,
                    outcome,
                    [record],
                    partial(self._apply, record, in_aws, alarms),
                )
                if applied and record.state != PolicyState.APPLIED:
                    outcome.states[record.id] = (PolicyState.APPLIED, "")
            elif record.state in LIVE_STATES or record.state == PolicyState.DELETING:
                job = snapshot.jobs.get(record.jobId)
                reason = f"job {record.jobId} is finished"
                if record.state == PolicyState.DELETING:
                    reason = record.reason
                if job is not None and not job.active:
                    reason = f"job {record.jobId} is being killed"
                done = self._guarded(
                    record.id,
                    now,
                    outcome,
                    [record],
                    partial(self._remove, record.id, in_aws, alarms),
                )
                if done:
                    outcome.states[record.id] = (PolicyState.DELETED, reason or "deleted")
        # leftovers: what the platform made for policies and jobs no longer wanted
        known = {r.id for r in snapshot.policies if r.state != PolicyState.DELETED}
        known |= {r.id for r in snapshot.deferred}
        for name in sorted(set(in_aws) - known):
            self._guarded(
                f"leftover {name}", now, outcome, [], partial(self._remove, name, in_aws, alarms)
            )
        for name in sorted(alarms):
            if name[len(ALARM_PREFIX) :] not in known:
                self._guarded(
                    f"leftover {name}", now, outcome, [], partial(self._delete_alarm, name)
                )
        wanted_ids = {self.resource_id(j) for j in wanted_jobs}
        wanted_ids |= {self.resource_id(r.jobId) for r in snapshot.deferred}
        for rid in sorted(set(targets) - wanted_ids):
            self._guarded(f"leftover {rid}", now, outcome, [], partial(self._deregister, rid))
        return outcome

    def _guarded(
        self,
        key: str,
        now: float,
        outcome: Outcome,
        records: list[PolicyRecord],
        call: Callable[[], None],
    ) -> bool:
        """Run one reconciliation step unless it is backing off; True when it went
        through. A throttle backs off; another refusal also sets its policy in Error."""
        backoff = self.backoff.setdefault(key, _Backoff())
        if now < backoff.next_try:
            return False
        try:
            call()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            backoff.failures += 1
            delay = min(BACKOFF_MAX_SEC, 2.0**backoff.failures)
            backoff.next_try = now + delay
            code = ""
            if isinstance(e, botocore.exceptions.ClientError):
                code = str(e.response.get("Error", {}).get("Code", ""))
            log.warning("autoscaling %s: %s (next try in %.0f s)", key, e, delay)
            kind = "unreachable" if not code else "throttled" if code in THROTTLED else "refused"
            m.AUTOSCALING_ERRORS.labels(kind=kind).inc()
            if code and code not in THROTTLED:
                for record in records:
                    if record.state != PolicyState.DELETING:
                        outcome.states[record.id] = (PolicyState.ERROR, f"AWS refused: {e}")
            return False
        del self.backoff[key]
        return True

    def _register(self, job: JobFacts) -> None:
        aas, _ = self._aws()
        aas.register_scalable_target(
            ServiceNamespace=NAMESPACE,
            ResourceId=self.resource_id(job.job_id),
            ScalableDimension=DIMENSION,
            MinCapacity=job.capacity.min,
            MaxCapacity=job.capacity.max,
        )
        log.info(
            "job %s is a scalable target (%d..%d)", job.job_id, job.capacity.min, job.capacity.max
        )

    def _deregister(self, resource_id: str) -> None:
        aas, _ = self._aws()
        aas.deregister_scalable_target(
            ServiceNamespace=NAMESPACE, ResourceId=resource_id, ScalableDimension=DIMENSION
        )
        log.info("scalable target %s deregistered", resource_id)

    def _apply(
        self, record: PolicyRecord, in_aws: dict[str, tuple[str, str]], alarms: set[str]
    ) -> None:
        """Put the policy (and a step policy's alarm) where it is missing or was changed
        by its user since it was applied; Applied then."""
        step = record.policy.stepPolicyDescriptor is not None
        present = record.id in in_aws and (not step or alarm_name(record.id) in alarms)
        if record.state == PolicyState.APPLIED and present:
            return
        aas, cloudwatch = self._aws()
        answer = aas.put_scaling_policy(
            PolicyName=record.id,
            ServiceNamespace=NAMESPACE,
            ResourceId=self.resource_id(record.jobId),
            ScalableDimension=DIMENSION,
            **(
                {
                    "PolicyType": "StepScaling",
                    "StepScalingPolicyConfiguration": step_configuration(record),
                }
                if step
                else {
                    "PolicyType": "TargetTrackingScaling",
                    "TargetTrackingScalingPolicyConfiguration": target_configuration(record),
                }
            ),
        )
        arn = str(answer["PolicyARN"])
        if step:
            descriptor = record.policy.stepPolicyDescriptor
            assert descriptor is not None and descriptor.alarmConfig is not None
            alarm = descriptor.alarmConfig
            cloudwatch.put_metric_alarm(
                AlarmName=alarm_name(record.id),
                AlarmDescription=f"scaling policy {record.id} of titus job {record.jobId}",
                ActionsEnabled=alarm.actionsEnabled is not False,
                AlarmActions=[arn],
                MetricName=alarm.metricName,
                Namespace=alarm.metricNamespace,
                Statistic=alarm.statistic.value,
                Dimensions=[{"Name": d.name, "Value": d.value} for d in alarm.metricDimensions],
                Period=alarm.period,
                EvaluationPeriods=alarm.periods,
                Threshold=alarm.threshold,
                ComparisonOperator=alarm.comparisonOperator.value,
            )
        in_aws[record.id] = (self.resource_id(record.jobId), arn)
        if step:
            alarms.add(alarm_name(record.id))
        log.info("scaling policy %s of job %s applied (%s)", record.id, record.jobId, arn)

    def _delete_alarm(self, name: str) -> None:
        _, cloudwatch = self._aws()
        cloudwatch.delete_alarms(AlarmNames=[name])

    def _remove(self, policy_id: str, in_aws: dict[str, tuple[str, str]], alarms: set[str]) -> None:
        """Take a policy and its alarm out of AWS (what is already gone is no error)."""
        name = alarm_name(policy_id)
        if name in alarms:
            self._delete_alarm(name)
            alarms.discard(name)
        held = in_aws.get(policy_id)
        if held is not None:
            aas, _ = self._aws()
            aas.delete_scaling_policy(
                PolicyName=policy_id,
                ServiceNamespace=NAMESPACE,
                ResourceId=held[0],
                ScalableDimension=DIMENSION,
            )
            del in_aws[policy_id]
            log.info("scaling policy %s removed from AWS", policy_id)
