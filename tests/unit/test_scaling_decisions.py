"""What a scaling policy decides, without any I/O: the step a breach picks and the size it
gives (change, percent with its minimum magnitude, exact), target tracking's size, the
bounds every decision is held to, and the rules a policy's resize shares with a user's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from titus.model.autoscaling import (
    AlarmConfiguration,
    StepScalingPolicy,
    TargetTrackingPolicyDescriptor,
    parse_policy,
)
from titus.model.job import Capacity, Job, JobStatus
from titus.model.scaling import adjusted, scaled_job, step_verdict, target_verdict
from titus.model.states import JobState
from titus.model.validation import InvalidRequest, parse_job_descriptor

ALARM = AlarmConfiguration.model_validate(
    {
        "comparisonOperator": "GreaterThanOrEqualToThreshold",
        "evaluationPeriods": 2,
        "periodSec": 60,
        "threshold": 70.0,
        "metricNamespace": "web",
        "metricName": "CPUUtilization",
    }
)
STEPS = StepScalingPolicy.model_validate(
    {
        "adjustmentType": "ChangeInCapacity",
        "stepAdjustments": [
            {"MetricIntervalUpperBound": 10.0, "scalingAdjustment": 1},
            {
                "MetricIntervalLowerBound": 10.0,
                "MetricIntervalUpperBound": 20.0,
                "scalingAdjustment": 2,
            },
            {"MetricIntervalLowerBound": 20.0, "scalingAdjustment": 5},
        ],
    }
)
CAP = Capacity(min=1, desired=4, max=20)


@pytest.mark.parametrize(
    ("values", "desired"),
    [
        ([75.0, 75.0], 5),  # 5 over: the first step
        ([80.0, 82.0], 6),  # 11 over on average: the second
        ([95.0, 99.0], 9),  # 27 over: the third
        ([95.0, 60.0], None),  # one period not in breach: no alarm
        ([95.0], None),  # fewer periods than evaluationPeriods: missing data, no alarm
        ([10.0, 95.0, 95.0], 9),  # only the latest periods count
    ],
)
def test_a_breach_picks_its_step(values: list[float], desired: int | None) -> None:
    verdict = step_verdict(ALARM, STEPS, values, CAP)
    assert (verdict.desired if verdict else None) == desired


def test_step_decisions_are_held_within_min_and_max() -> None:
    verdict = step_verdict(ALARM, STEPS, [99.0, 99.0], Capacity(min=1, desired=18, max=20))
    assert verdict is not None and verdict.desired == 20
    assert verdict.why == "CPUUtilization Average 99 >= threshold 70 over 2 period(s) of 60s"


def test_percent_and_exact_adjustments() -> None:
    percent = StepScalingPolicy.model_validate(
        {
            "adjustmentType": "PercentChangeInCapacity",
            "minAdjustmentMagnitude": 3,
            "stepAdjustments": [],
        }
    )
    assert adjusted(percent, 10, 50) == 15
    assert adjusted(percent, 10, 10) == 13  # 1 is below the magnitude of 3
    assert adjusted(percent, 10, -50) == 5
    plain = percent.model_copy(update={"minAdjustmentMagnitude": None})
    assert adjusted(plain, 3, 10) == 4  # a fraction of one still moves one
    exact = StepScalingPolicy.model_validate(
        {"adjustmentType": "ExactCapacity", "stepAdjustments": []}
    )
    assert adjusted(exact, 10, 3) == 3


def test_target_tracking_sizes_toward_the_target() -> None:
    target = TargetTrackingPolicyDescriptor.model_validate({"targetValue": 50.0})
    cap = Capacity(min=1, desired=4, max=10)
    out = target_verdict(target, 100.0, cap)
    assert out is not None and out.desired == 8
    assert target_verdict(target, 400.0, cap).desired == 10  # type: ignore[union-attr]
    inward = target_verdict(target, 20.0, cap)
    assert inward is not None and inward.desired == 2
    assert target_verdict(target, 1.0, cap).desired == 1  # type: ignore[union-attr]
    no_in = target.model_copy(update={"disableScaleIn": True})
    assert target_verdict(no_in, 20.0, cap) is None
    assert target_verdict(target, 100.0, Capacity(min=0, desired=0, max=5)) is None


def service_job(**processes: bool) -> Job:
    body: dict[str, Any] = {
        "owner": {"teamEmail": "a@b.co"},
        "applicationName": "app",
        "container": {"image": {"name": "img", "tag": "1"}},
        "service": {
            "capacity": {"min": 1, "desired": 2, "max": 4},
            "serviceJobProcesses": processes,
        },
    }
    return Job(
        id=str(uuid.uuid4()),
        jobDescriptor=parse_job_descriptor(body),
        status=JobStatus(state=JobState.ACCEPTED, reasonMessage="accepted"),
    )


def test_a_policys_resize_follows_the_rules_of_a_users() -> None:
    job = service_job()
    scaled = scaled_job(job, 9, "p-1", "why")
    assert isinstance(scaled, Job) and scaled.jobDescriptor.service is not None
    assert scaled.jobDescriptor.service.capacity.desired == 4  # held to max
    assert scaled.status.reasonMessage == "desired 2 -> 4 by scaling policy p-1: why"
    assert scaled.statusHistory[-1].reasonMessage == "accepted"
    assert "does not allow increasing" in str(
        scaled_job(service_job(disableIncreaseDesired=True), 3, "p", "")
    )
    assert "does not allow decreasing" in str(
        scaled_job(service_job(disableDecreaseDesired=True), 1, "p", "")
    )
    disabled = service_job()
    assert disabled.jobDescriptor.service is not None
    disabled.jobDescriptor.service.enabled = False
    assert "disabled" in str(scaled_job(disabled, 3, "p", ""))
    dying = job.with_status(JobState.KILL_INITIATED)
    assert "being killed" in str(scaled_job(dying, 3, "p", ""))
    assert "already at" in str(scaled_job(job, 2, "p", ""))


def test_a_policy_is_checked_in_linear_time_and_refused_by_field() -> None:
    steps = [
        {
            "MetricIntervalLowerBound": float(i),
            "MetricIntervalUpperBound": float(i + 1),
            "scalingAdjustment": 1,
        }
        for i in range(10_000)
    ]
    body = {
        "stepPolicyDescriptor": {
            "alarmConfig": ALARM.to_json(),
            "scalingPolicy": {"stepAdjustments": steps},
        }
    }
    with pytest.raises(InvalidRequest) as refused:
        parse_policy(body)
    assert [e.path for e in refused.value.errors] == [
        "scalingPolicy.stepPolicyDescriptor.scalingPolicy.stepAdjustments"
    ]
