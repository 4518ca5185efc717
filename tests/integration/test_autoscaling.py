"""Scaling policies carried out by the leader against a moto server (Application Auto
Scaling, CloudWatch): with the local executor a metric put into CloudWatch moves the
job's desired size up and down within min and max, each change named in the job's
history, and the policy goes on acting after a failover; with the aws executor the
job's scalable target, its policies and their alarms exist in AWS while wanted, are kept
in line by a new leader after a failover, and go when the policy or the job goes, and
the ResourceId AWS holds is the endpoint that moves the job. Policies are set through
the API, as a user does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from tests.integration.test_api_app import api, service
from tests.integration.test_autoscaling_api import STEP, TARGET, with_change
from tests.support.aws_throttle import ThrottlingProxy
from tests.support.poll import wait_until
from tests.unit.test_leader import Clock, Hosts, host
from titus.coord.base import Leadership
from titus.coord.local import LocalCoordinator
from titus.master.cluster import HostReport
from titus.master.leader import Master, MasterConfig
from titus.model.launch import TaskReport
from titus.model.states import TaskState
from titus.store.sqlite import SqliteJobStore

URL = "/api/v3/autoscaling"
INTERVAL = 10.0


def step_policy(operator: str, statistic: str, threshold: float, adjustment: int) -> dict[str, Any]:
    policy = with_change(STEP, "stepPolicyDescriptor.alarmConfig.comparisonOperator", operator)
    policy = with_change(policy, "stepPolicyDescriptor.alarmConfig.statistic", statistic)
    policy = with_change(policy, "stepPolicyDescriptor.alarmConfig.threshold", threshold)
    steps = [
        {"MetricIntervalLowerBound": 0.0, "scalingAdjustment": adjustment}
        if operator.startswith("Greater")
        else {"MetricIntervalUpperBound": 0.0, "scalingAdjustment": adjustment}
    ]
    return with_change(policy, "stepPolicyDescriptor.scalingPolicy.stepAdjustments", steps)


def master(store: SqliteJobStore, clock: Clock, epoch: int = 1, **config: Any) -> Master:
    """A leader past its start-up, its clocks moved by the test only."""
    settings = {"autoscaling_interval": INTERVAL, "load_balancer_interval": 0.0, **config}
    m = Master(
        store,
        LocalCoordinator(),
        Hosts(host("h1", cpu=16)),
        config=MasterConfig(**settings),
        clock=clock,
        elapsed=clock,
    )
    m.begin(Leadership(epoch))
    m.sync_hosts({"h1": []})
    return m


def aws_master(store: SqliteJobStore, clock: Clock, epoch: int = 1) -> Master:
    """A leader whose policies are kept in AWS, its endpoint the one ResourceIds name."""
    return master(
        store,
        clock,
        epoch,
        autoscaling_executor="aws",
        autoscaling_endpoint_url="https://titus.example:7001",
    )


@contextmanager
def platform(
    tmp_path: Path, capacity: dict[str, int]
) -> Iterator[tuple[TestClient, SqliteJobStore, str]]:
    """The API and its store, and a service job of the given capacity."""
    with api(tmp_path) as (http, store):
        body = service()
        body["service"] = {"capacity": capacity}
        job_id = http.post("/api/v3/jobs", json=body).json()["id"]
        yield http, store, job_id


def set_policy(http: TestClient, job_id: str, policy: dict[str, Any]) -> str:
    r = http.post(f"{URL}/scalingPolicy", json={"jobId": job_id, "scalingPolicy": policy})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def state_of(http: TestClient, policy_id: str) -> str:
    return str(
        http.get(f"{URL}/scalingPolicy/{policy_id}").json()["items"][0]["policyState"]["state"]
    )


def desired(store: SqliteJobStore, job_id: str) -> int:
    job = store.get_job(job_id)
    assert job is not None and job.jobDescriptor.service is not None
    return job.jobDescriptor.service.capacity.desired


def history(store: SqliteJobStore, job_id: str) -> list[str]:
    job = store.get_job(job_id)
    assert job is not None
    return [s.reasonMessage for s in [*job.statusHistory, job.status]]


def put_metric(clock: Clock, value: float) -> None:
    boto3.client("cloudwatch").put_metric_data(
        Namespace="web",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Value": value,
                "Timestamp": clock.now - 1,
            }
        ],
    )


def drive(m: Master, clock: Clock, what: str, until: Any, load: float | None = None) -> None:
    """Let time pass an interval at a time (the metric sustained at `load`) until
    `until()` holds."""

    def step() -> Any:
        clock.advance(INTERVAL)
        if load is not None:
            put_metric(clock, load)
        m.iterate()
        return until()

    wait_until(what, step, timeout=60)


def settle(m: Master, clock: Clock, load: float | None, passes: int) -> None:
    """`passes` whole passes of the worker with the load sustained (None: the metric is
    not CloudWatch's, the tasks' own stays as they published it)."""
    term = m.term.autoscaling
    assert term is not None
    for _ in range(passes):
        before = term.worker.passes if term.worker is not None else 0
        clock.advance(INTERVAL)
        if load is not None:
            put_metric(clock, load)
        m.iterate()
        wait_until(
            "a worker pass",
            lambda b=before: term.worker is not None and term.worker.passes > b,
        )
        m.iterate()  # what it asked for applied


def test_a_cloudwatch_metric_moves_desired_within_min_and_max(aws_env: str, tmp_path: Path) -> None:
    with platform(tmp_path, {"min": 1, "desired": 2, "max": 4}) as (http, store, job_id):
        up = set_policy(http, job_id, step_policy("GreaterThanThreshold", "Minimum", 70.0, 1))
        down = set_policy(http, job_id, step_policy("LessThanThreshold", "Maximum", 30.0, -1))
        clock = Clock()
        m = master(store, clock, autoscaling_metrics="cloudwatch")
        drive(
            m,
            clock,
            "both policies Applied",
            lambda: {state_of(http, up), state_of(http, down)} == {"Applied"},
        )

        drive(m, clock, "desired raised to 3", lambda: desired(store, job_id) == 3, load=90.0)
        assert any(f"desired 2 -> 3 by scaling policy {up}" in h for h in history(store, job_id))
        assert any("CPUUtilization Minimum 90 > threshold 70" in h for h in history(store, job_id))
        drive(m, clock, "desired raised to max", lambda: desired(store, job_id) == 4, load=90.0)
        settle(m, clock, 90.0, passes=8)  # past several cooldowns: never past max
        assert desired(store, job_id) == 4
        live = [t for t in store.list_tasks(job_id) if t.state != TaskState.FINISHED]
        assert len(live) == 4  # the job's tasks follow its size

        # the load falls: once high values leave the window, the other policy scales in
        drive(m, clock, "desired lowered to min", lambda: desired(store, job_id) == 1, load=10.0)
        assert any(f"desired 4 -> 3 by scaling policy {down}" in h for h in history(store, job_id))
        settle(m, clock, 10.0, passes=8)
        assert desired(store, job_id) == 1  # never below min

        # a disabled job is not scaled, however loud the metric
        assert http.post(f"/api/v3/jobs/{job_id}/disable").status_code == 200
        m.iterate()
        settle(m, clock, 95.0, passes=8)
        assert desired(store, job_id) == 1


def test_a_policy_survives_failover(aws_env: str, tmp_path: Path) -> None:
    with platform(tmp_path, {"min": 1, "desired": 1, "max": 5}) as (http, store, job_id):
        up = set_policy(http, job_id, step_policy("GreaterThanThreshold", "Average", 70.0, 1))
        clock = Clock()
        first = master(store, clock, autoscaling_metrics="cloudwatch")
        drive(first, clock, "desired raised to 2", lambda: desired(store, job_id) == 2, load=85.0)
        assert first.term.autoscaling is not None
        first.term.autoscaling.stop()  # the leader dies

        successor = master(store, clock, epoch=2, autoscaling_metrics="cloudwatch")
        # the cooldown the first leader started holds (60 s); then the successor goes on
        drive(
            successor,
            clock,
            "desired raised to 3 by the successor",
            lambda: desired(store, job_id) == 3,
            load=85.0,
        )
        lines = [h for h in history(store, job_id) if f"by scaling policy {up}" in h]
        assert len(lines) == 2 and "desired 2 -> 3" in lines[-1]
        assert state_of(http, up) == "Applied"
        # a delete after the failover is carried out by the successor
        assert http.delete(f"{URL}/scalingPolicy/{up}").status_code == 200
        drive(successor, clock, "the policy Deleted", lambda: state_of(http, up) == "Deleted")
        settle(successor, clock, 99.0, passes=8)
        assert desired(store, job_id) == 3


def test_target_tracking_on_the_tasks_own_published_metric(tmp_path: Path) -> None:
    policy = with_change(TARGET, "targetPolicyDescriptor.scaleOutCooldownSec", 0)
    policy = with_change(policy, "targetPolicyDescriptor.scaleInCooldownSec", 0)
    with platform(tmp_path, {"min": 1, "desired": 2, "max": 6}) as (http, store, job_id):
        policy_id = set_policy(http, job_id, policy)
        clock = Clock()
        m = master(store, clock, autoscaling_metrics="tasks")
        serving: set[str] = set()

        def serve() -> None:
            """Every task the job wants is placed and starts."""

            def all_serving() -> bool:
                for t in store.list_tasks(job_id):
                    if t.state == TaskState.LAUNCHED and t.id not in serving:
                        serving.add(t.id)
                        report = TaskReport(taskId=t.id, jobId=job_id, state=TaskState.STARTED)
                        m.receive([HostReport("h1", report)])
                m.iterate()
                started = [t for t in store.list_tasks(job_id) if t.state == TaskState.STARTED]
                return len(started) == desired(store, job_id)

            wait_until("the job's tasks serving", all_serving)

        def publish(value: float) -> None:
            for t in store.list_tasks(job_id):
                if t.state == TaskState.STARTED:
                    http.put(
                        f"/api/v3/tasks/{t.id}/attributes",
                        json={"attributes": {"autoscaling.metric.RequestsPerTask": str(value)}},
                    )

        serve()
        publish(100.0)  # twice the target of 50 per task: twice the tasks
        drive(m, clock, "desired 4", lambda: desired(store, job_id) == 4)
        assert any(
            f"by scaling policy {policy_id}: RequestsPerTask 100 against target 50" in h
            for h in history(store, job_id)
        )
        serve()
        publish(10.0)  # a fifth of the target: in to the fewest that keep it
        drive(m, clock, "desired 1", lambda: desired(store, job_id) == 1)


def test_scaling_out_stops_at_the_platforms_max_active_tasks(tmp_path: Path) -> None:
    """A user's resize past maxActiveTasks is refused at the API; a policy evaluated by
    the platform is held to it the same way, the job's history saying so."""
    policy = with_change(TARGET, "targetPolicyDescriptor.scaleOutCooldownSec", 0)
    with platform(tmp_path, {"min": 1, "desired": 2, "max": 10}) as (http, store, job_id):
        policy_id = set_policy(http, job_id, policy)
        clock = Clock()
        m = master(store, clock, autoscaling_metrics="tasks", max_active_tasks=3)
        m.iterate()
        for t in store.list_tasks(job_id):
            report = TaskReport(taskId=t.id, jobId=job_id, state=TaskState.STARTED)
            m.receive([HostReport("h1", report)])
        m.iterate()
        for t in store.list_tasks(job_id):
            http.put(
                f"/api/v3/tasks/{t.id}/attributes",
                json={"attributes": {"autoscaling.metric.RequestsPerTask": "250"}},
            )
        # five times the target: ten tasks wanted, three allowed in all
        drive(m, clock, "desired 3", lambda: desired(store, job_id) == 3)
        assert any(
            f"by scaling policy {policy_id}" in h and "held to 3 by maxActiveTasks (3)" in h
            for h in history(store, job_id)
        ), history(store, job_id)
        settle(m, clock, None, 2)  # the metric stays high: no further step past the limit
        assert desired(store, job_id) == 3


def test_the_aws_executor_keeps_targets_policies_and_alarms_in_aws(
    aws_env: str, tmp_path: Path
) -> None:
    aas, cloudwatch = boto3.client("application-autoscaling"), boto3.client("cloudwatch")
    with platform(tmp_path, {"min": 1, "desired": 2, "max": 4}) as (http, store, job_id):
        step = set_policy(http, job_id, STEP)
        target = set_policy(http, job_id, TARGET)
        clock = Clock()
        m = aws_master(store, clock)
        drive(
            m,
            clock,
            "both Applied",
            lambda: {state_of(http, step), state_of(http, target)} == {"Applied"},
        )

        [held] = aas.describe_scalable_targets(ServiceNamespace="custom-resource")[
            "ScalableTargets"
        ]
        resource = (
            f"https://titus.example:7001/api/v3/autoscaling/scalableTargetDimensions/{job_id}"
        )
        assert held["ResourceId"] == resource and (held["MinCapacity"], held["MaxCapacity"]) == (
            1,
            4,
        )
        policies = aas.describe_scaling_policies(ServiceNamespace="custom-resource")[
            "ScalingPolicies"
        ]
        by_name = {p["PolicyName"]: p for p in policies}
        assert set(by_name) == {step, target}
        assert by_name[step]["PolicyType"] == "StepScaling"
        assert by_name[target]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 50.0
        [alarm] = cloudwatch.describe_alarms(AlarmNamePrefix="titus-policy-")["MetricAlarms"]
        assert alarm["AlarmName"] == f"titus-policy-{step}"
        assert alarm["AlarmActions"] == [by_name[step]["PolicyARN"]]
        assert (alarm["MetricName"], alarm["Threshold"]) == ("CPUUtilization", 70.0)

        # what Application Auto Scaling does with it: the ResourceId is the endpoint
        path = held["ResourceId"].removeprefix("https://titus.example:7001")
        r = http.patch(path, json={"desiredCapacity": 3})
        assert r.status_code == 200 and desired(store, job_id) == 3

        # the leader dies; its successor takes over what AWS holds and keeps it in line:
        # a new max reaches the scalable target, drift (a policy removed by hand) is repaired
        assert m.term.autoscaling is not None
        m.term.autoscaling.stop()
        m = aws_master(store, clock, epoch=2)
        assert (
            http.put(
                f"/api/v3/jobs/{job_id}/instances", json={"min": 1, "desired": 3, "max": 6}
            ).status_code
            == 200
        )
        aas.delete_scaling_policy(
            PolicyName=target,
            ServiceNamespace="custom-resource",
            ResourceId=resource,
            ScalableDimension="custom-resource:ResourceType:Property",
        )

        def repaired() -> bool:
            [t] = aas.describe_scalable_targets(ServiceNamespace="custom-resource")[
                "ScalableTargets"
            ]
            names = {
                p["PolicyName"]
                for p in aas.describe_scaling_policies(ServiceNamespace="custom-resource")[
                    "ScalingPolicies"
                ]
            }
            return t["MaxCapacity"] == 6 and target in names

        drive(m, clock, "max 6 in AWS and the policy back", repaired)

        # the step policy goes: its alarm and policy go with it
        assert http.delete(f"{URL}/scalingPolicy/{step}").status_code == 200
        drive(m, clock, "the step policy Deleted", lambda: state_of(http, step) == "Deleted")
        assert cloudwatch.describe_alarms(AlarmNamePrefix="titus-policy-")["MetricAlarms"] == []
        left = aas.describe_scaling_policies(ServiceNamespace="custom-resource")["ScalingPolicies"]
        assert [p["PolicyName"] for p in left] == [target]

        # the job goes: everything the platform made for it goes
        assert http.delete(f"/api/v3/jobs/{job_id}").status_code == 200
        drive(m, clock, "the target policy Deleted", lambda: state_of(http, target) == "Deleted")
        assert (
            aas.describe_scaling_policies(ServiceNamespace="custom-resource")["ScalingPolicies"]
            == []
        )
        assert (
            aas.describe_scalable_targets(ServiceNamespace="custom-resource")["ScalableTargets"]
            == []
        )


def test_the_aws_executor_rides_out_throttling(
    aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Application Auto Scaling and CloudWatch throttle the leader's calls (every third):
    a throttle is tried again (by the client, else at the next pass), never taken for a
    refusal: the policies end Applied with what AWS holds right, never shown Error."""
    aas = boto3.client("application-autoscaling")
    proxy = ThrottlingProxy(aws_env, every=3)
    try:
        with platform(tmp_path, {"min": 1, "desired": 2, "max": 4}) as (http, store, job_id):
            step = set_policy(http, job_id, STEP)
            target = set_policy(http, job_id, TARGET)
            monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)  # the leader's clients only
            clock = Clock()
            m = aws_master(store, clock)
            seen: set[str] = set()

            def applied() -> bool:
                states = {state_of(http, step), state_of(http, target)}
                seen.update(states)
                return states == {"Applied"}

            drive(m, clock, "both Applied", applied)
            assert "Error" not in seen, seen
            policies = aas.describe_scaling_policies(ServiceNamespace="custom-resource")
            assert {p["PolicyName"] for p in policies["ScalingPolicies"]} == {step, target}
            assert m.term.autoscaling is not None
            m.term.autoscaling.stop()
    finally:
        proxy.close()
    assert proxy.throttled > 0, proxy.calls
