"""The local executor: the platform evaluates each policy itself, as Application Auto
Scaling would, on the metric source it is given (metrics.py).

Per pass and policy: a step policy reads its alarm's metric over its evaluation periods
and, in breach, picks its step (model.scaling.step_verdict); a target tracking policy
reads its metric's latest minute and asks for the size that brings it to the target,
in proportion to the job's serving (Started) tasks.
A policy in its cooldown does nothing (step: cooldownSec after its last scaling; target
tracking: scaleOutCooldownSec after a scale-out before another, scaleInCooldownSec after
any of its scalings before a scale-in). When several policies of one job want a change
at once, a scale-out wins over a scale-in and the largest size over smaller ones, as
with Application Auto Scaling. Metric errors (throttling, an endpoint down) leave a
policy as it is until the next pass, with a warning.
"""

from __future__ import annotations

import logging

import botocore.exceptions

from titus.master import metrics as m
from titus.master.autoscaling.executor import (
    Activity,
    JobFacts,
    Outcome,
    ScaleRequest,
    Snapshot,
)
from titus.master.autoscaling.metrics import TARGET_PERIOD_SEC, MetricSource, TaskMetrics
from titus.model.autoscaling import LIVE_STATES, PolicyRecord, PolicyState
from titus.model.scaling import Verdict, step_verdict, target_verdict
from titus.store.roles import TaskAttributes

log = logging.getLogger("titus.master")

#: Cooldown of a policy that names none (Application Auto Scaling's default).
DEFAULT_COOLDOWN_SEC = 300


def _cooled(activity: Activity | None, direction: str, cooldown: int, now: float) -> bool:
    return activity is None or now - activity.at >= cooldown or activity.direction != direction


class LocalExecutor:
    def __init__(self, metrics: MetricSource, target_window: int = TARGET_PERIOD_SEC):
        """`target_window`: seconds of the latest samples a target tracking policy averages."""
        self.metrics = metrics
        self.target_window = target_window

    def run(self, snapshot: Snapshot) -> Outcome:
        outcome = Outcome()
        wishes: dict[str, list[tuple[ScaleRequest, str]]] = {}
        for record in snapshot.policies:
            job = snapshot.jobs.get(record.jobId)
            if record.state == PolicyState.DELETING:
                outcome.states[record.id] = (PolicyState.DELETED, record.reason or "deleted")
                continue
            if record.state not in LIVE_STATES:
                continue
            if job is None:
                reason = f"job {record.jobId} is finished"
                outcome.states[record.id] = (PolicyState.DELETED, reason)
                continue
            if record.state != PolicyState.APPLIED:
                outcome.states[record.id] = (PolicyState.APPLIED, "")
            if not job.active or not job.enabled:
                continue
            try:
                wish = self._evaluate(record, job, snapshot)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
                log.warning("scaling policy %s: metric not read: %s", record.id, e)
                m.AUTOSCALING_ERRORS.labels(kind="metric").inc()
                continue
            if wish is not None:
                verdict, direction = wish
                request = ScaleRequest(record.id, job.job_id, verdict.desired, verdict.why)
                wishes.setdefault(job.job_id, []).append((request, direction))
        for wanted in wishes.values():
            outs = [r for r, d in wanted if d == "out"]
            chosen = max(outs or [r for r, _ in wanted], key=lambda r: r.desired)
            outcome.scale.append(chosen)
        return outcome

    def _evaluate(
        self, record: PolicyRecord, job: JobFacts, snapshot: Snapshot
    ) -> tuple[Verdict, str] | None:
        policy, now = record.policy, snapshot.now
        activity = snapshot.activity.get(record.id)
        capacity = job.capacity
        step = policy.stepPolicyDescriptor
        if step is not None and step.alarmConfig is not None and step.scalingPolicy is not None:
            alarm, scaling = step.alarmConfig, step.scalingPolicy
            if alarm.actionsEnabled is False:
                return None
            cooldown = (
                scaling.cooldownSec if scaling.cooldownSec is not None else DEFAULT_COOLDOWN_SEC
            )
            if activity is not None and now - activity.at < cooldown:
                return None
            values = self.metrics.period_values(
                job,
                alarm.metricNamespace,
                alarm.metricName,
                alarm.metricDimensions,
                alarm.statistic,
                alarm.period,
                alarm.periods,
                now,
            )
            verdict = step_verdict(alarm, scaling, values, capacity)
        else:
            target = policy.targetPolicyDescriptor
            custom = target.customizedMetricSpecification if target is not None else None
            if target is None or custom is None:
                return None
            values = self.metrics.period_values(
                job,
                custom.namespace,
                custom.metricName,
                custom.dimensions,
                custom.statistic,
                self.target_window,
                1,
                now,
            )
            serving = len(job.started) or None
            verdict = target_verdict(target, values[-1], capacity, serving) if values else None
            if verdict is not None:
                out = verdict.desired > capacity.desired
                asked = target.scaleOutCooldownSec if out else target.scaleInCooldownSec
                cooldown = asked if asked is not None else DEFAULT_COOLDOWN_SEC
                if out and not _cooled(activity, "out", cooldown, now):
                    return None
                if not out and activity is not None and now - activity.at < cooldown:
                    return None
        if verdict is None or verdict.desired == capacity.desired:
            return None
        return verdict, "out" if verdict.desired > capacity.desired else "in"


def task_metrics(store: TaskAttributes) -> TaskMetrics:
    """The `tasks` source over a store's task attributes."""
    return TaskMetrics(store.list_task_attributes)
