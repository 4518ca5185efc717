"""What a scaling policy decides, and how a decided size becomes the job's: pure functions.

One rule for every change of a service job's desired size, whoever asks: `resize_refusal`
is what a user's resize and a policy's both go through (disableIncreaseDesired and
disableDecreaseDesired respected), and `scaled_job` is a policy's resize: clamped within
min and max, never for a disabled or dying job, and leaving a line in the job's status
history that names the policy and why.

The decisions follow Application Auto Scaling's documented arithmetic:
- step scaling: the alarm is in breach when each of its last `evaluationPeriods` periods
  compares true with the threshold; the breach is aggregated (metricAggregationType), its
  distance from the threshold picks the step, and the step's adjustment is applied as a
  change, a percentage (at least minAdjustmentMagnitude, at least one) or an exact size;
- target tracking: the size that brings the metric to its target if load spreads evenly,
  ceil(serving tasks * value / target), never in when scale-in is disabled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from titus.model.autoscaling import (
    AdjustmentType,
    Aggregation,
    AlarmConfiguration,
    ComparisonOperator,
    StepScalingPolicy,
    TargetTrackingPolicyDescriptor,
)
from titus.model.job import Capacity, Job, ServiceJobSpec
from titus.model.states import JobState, Reason

SYMBOLS = {
    ComparisonOperator.GE: ">=",
    ComparisonOperator.GT: ">",
    ComparisonOperator.LT: "<",
    ComparisonOperator.LE: "<=",
}


@dataclass(frozen=True)
class Verdict:
    """A policy's wish: the size it wants (within min and max) and why, in words."""

    desired: int
    why: str


def breaches(operator: ComparisonOperator, value: float, threshold: float) -> bool:
    if operator == ComparisonOperator.GE:
        return value >= threshold
    if operator == ComparisonOperator.GT:
        return value > threshold
    if operator == ComparisonOperator.LT:
        return value < threshold
    return value <= threshold


def aggregate(kind: Aggregation, values: Sequence[float]) -> float:
    if kind == Aggregation.MINIMUM:
        return min(values)
    if kind == Aggregation.MAXIMUM:
        return max(values)
    return sum(values) / len(values)


def clamp(desired: int, capacity: Capacity) -> int:
    return max(capacity.min, min(capacity.max, desired))


def adjusted(policy: StepScalingPolicy, current: int, adjustment: int) -> int:
    """The size a step's adjustment gives from `current` (not yet clamped)."""
    if policy.adjustmentType == AdjustmentType.EXACT:
        return adjustment
    if policy.adjustmentType == AdjustmentType.CHANGE:
        return current + adjustment
    change = current * adjustment / 100.0
    step = math.trunc(change)
    if step == 0 and adjustment != 0:
        step = 1 if adjustment > 0 else -1  # a fraction below one still moves one
    floor = policy.minAdjustmentMagnitude or 0
    if abs(step) < floor:
        step = floor if adjustment > 0 else -floor
    return current + step


def step_verdict(
    alarm: AlarmConfiguration,
    policy: StepScalingPolicy,
    values: Sequence[float],
    capacity: Capacity,
) -> Verdict | None:
    """What a step policy wants given its alarm metric's latest period values (oldest
    first); None when the alarm is not in breach or no step applies."""
    periods = alarm.periods
    threshold = alarm.threshold
    if threshold is None or len(values) < periods:
        return None
    window = list(values[-periods:])
    if not all(breaches(alarm.comparisonOperator, v, threshold) for v in window):
        return None
    value = aggregate(policy.metricAggregationType, window)
    distance = value - threshold
    for step in policy.stepAdjustments:
        lower = step.MetricIntervalLowerBound
        upper = step.MetricIntervalUpperBound
        if (lower is None or distance >= lower) and (upper is None or distance < upper):
            wanted = adjusted(policy, capacity.desired, step.scalingAdjustment or 0)
            why = (
                f"{alarm.metricName} {alarm.statistic.value} {value:g} "
                f"{SYMBOLS[alarm.comparisonOperator]} threshold {threshold:g} over "
                f"{periods} period(s) of {alarm.period}s"
            )
            return Verdict(clamp(wanted, capacity), why)
    return None


def target_verdict(
    target: TargetTrackingPolicyDescriptor,
    value: float,
    capacity: Capacity,
    serving: int | None = None,
) -> Verdict | None:
    """What a target tracking policy wants given its metric's latest value, measured
    over `serving` tasks (default: desired). The size is proportional to the tasks that
    produced the value, not to desired: tasks asked for but not yet serving carry none
    of the load, and counting them would overshoot (two serving tasks at twice the
    target want four, however many more are still starting)."""
    goal = target.targetValue
    current = capacity.desired if serving is None else serving
    if goal is None or goal <= 0 or current <= 0:
        return None
    wanted = math.ceil(current * value / goal - 1e-9)
    if wanted < capacity.desired and target.disableScaleIn:
        return None
    custom = target.customizedMetricSpecification
    name = custom.metricName if custom is not None else "metric"
    why = f"{name} {value:g} against target {goal:g}"
    return Verdict(clamp(wanted, capacity), why)


def resize_refusal(job_id: str, service: ServiceJobSpec, new: Capacity) -> str | None:
    """Why the job's processes forbid moving desired to `new.desired` (None: allowed)."""
    current = service.capacity.desired
    processes = service.serviceJobProcesses
    if new.desired > current and processes.disableIncreaseDesired:
        return f"job {job_id} does not allow increasing desired"
    if new.desired < current and processes.disableDecreaseDesired:
        return f"job {job_id} does not allow decreasing desired"
    return None


def scaled_job(job: Job, desired: int, policy_id: str, why: str) -> Job | str:
    """The job with `desired` set by policy `policy_id` (clamped within min and max) and
    a status history line saying so, or why it may not be changed (a word, not an error:
    a policy acting on a job that forbids it is no fault)."""
    service = job.jobDescriptor.service
    if service is None:
        return f"job {job.id} is a batch job"
    if job.status.state != JobState.ACCEPTED:
        return f"job {job.id} is being killed"
    if not service.enabled:
        return f"job {job.id} is disabled"
    capacity = service.capacity
    wanted = clamp(desired, capacity)
    if wanted == capacity.desired:
        return f"job {job.id} is already at {wanted} (min {capacity.min}, max {capacity.max})"
    new = Capacity(min=capacity.min, desired=wanted, max=capacity.max)
    refusal = resize_refusal(job.id, service, new)
    if refusal is not None:
        return refusal
    message = f"desired {capacity.desired} -> {wanted} by scaling policy {policy_id}: {why}"
    changed = job.with_status(JobState.ACCEPTED, Reason.NORMAL, message)
    assert changed.jobDescriptor.service is not None
    changed.jobDescriptor.service.capacity = new
    return changed
