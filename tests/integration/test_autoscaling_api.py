"""Scaling policies through the API as a user sees them: set, list, read, replace and
delete over REST and gRPC (Titus's AutoScalingService contract), every bad input refused
naming its field (400, INVALID_ARGUMENT), only a job's owners or an admin changing its
policies, and the custom-resource endpoint Application Auto Scaling calls moving desired
within the rules of a resize."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, json_format

from tests.integration.test_api_app import BATCH, api, service
from tests.integration.test_api_authz import ALICE, BOB, ROOT, tokens
from tests.integration.test_grpc_jobs import descriptor, grpc_api, violations
from titus.api.grpc.gen import titus_autoscale_api_pb2 as pb
from titus.api.grpc.gen import titus_autoscale_api_pb2_grpc as pb_grpc
from titus.api.grpc.gen import titus_job_api_pb2 as jobs_pb

TARGET: dict[str, Any] = {
    "targetPolicyDescriptor": {
        "targetValue": 50.0,
        "scaleOutCooldownSec": 60,
        "scaleInCooldownSec": 300,
        "customizedMetricSpecification": {
            "namespace": "web",
            "metricName": "RequestsPerTask",
            "statistic": "Average",
        },
    }
}
STEP: dict[str, Any] = {
    "stepPolicyDescriptor": {
        "alarmConfig": {
            "comparisonOperator": "GreaterThanThreshold",
            "evaluationPeriods": 1,
            "periodSec": 60,
            "threshold": 70.0,
            "metricNamespace": "web",
            "metricName": "CPUUtilization",
            "statistic": "Average",
        },
        "scalingPolicy": {
            "adjustmentType": "ChangeInCapacity",
            "cooldownSec": 60,
            "stepAdjustments": [
                {"MetricIntervalUpperBound": 20.0, "scalingAdjustment": 1},
                {"MetricIntervalLowerBound": 20.0, "scalingAdjustment": 3},
            ],
        },
    }
}
URL = "/api/v3/autoscaling"


def with_change(policy: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`policy` with the value at a dotted path (list indexes as numbers) replaced;
    None removes the key."""
    out = copy.deepcopy(policy)
    keys = path.split(".")
    node: Any = out
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return out


#: Bad policies and the field each refusal must name.
BAD: list[tuple[dict[str, Any], str]] = [
    ({}, "scalingPolicy"),
    ({**TARGET, **STEP}, "scalingPolicy"),
    (with_change(TARGET, "targetPolicyDescriptor.targetValue", 0), "targetValue"),
    (with_change(TARGET, "targetPolicyDescriptor.targetValue", None), "targetValue"),
    (
        with_change(TARGET, "targetPolicyDescriptor.scaleInCooldownSec", 90_000),
        "scaleInCooldownSec",
    ),
    (
        with_change(TARGET, "targetPolicyDescriptor.customizedMetricSpecification", None),
        "customizedMetricSpecification",
    ),
    (with_change(TARGET, "targetPolicyDescriptor.targetVal", 3), "targetVal"),
    (with_change(STEP, "stepPolicyDescriptor.alarmConfig.metricName", ""), "metricName"),
    (with_change(STEP, "stepPolicyDescriptor.alarmConfig.threshold", None), "threshold"),
    (with_change(STEP, "stepPolicyDescriptor.alarmConfig.periodSec", 45), "periodSec"),
    (
        with_change(STEP, "stepPolicyDescriptor.alarmConfig.evaluationPeriods", 0),
        "evaluationPeriods",
    ),
    (with_change(STEP, "stepPolicyDescriptor.alarmConfig.statistic", "Median"), "statistic"),
    (with_change(STEP, "stepPolicyDescriptor.scalingPolicy.cooldownSec", -1), "cooldownSec"),
    (
        with_change(STEP, "stepPolicyDescriptor.scalingPolicy.stepAdjustments", []),
        "stepAdjustments",
    ),
    (
        with_change(
            STEP,
            "stepPolicyDescriptor.scalingPolicy.stepAdjustments.1.MetricIntervalLowerBound",
            10.0,
        ),
        "stepAdjustments[1].MetricIntervalLowerBound",
    ),
    (
        with_change(
            STEP,
            "stepPolicyDescriptor.scalingPolicy.stepAdjustments.1.MetricIntervalLowerBound",
            30.0,
        ),
        "stepAdjustments[1].MetricIntervalLowerBound",
    ),
    (
        with_change(
            STEP, "stepPolicyDescriptor.scalingPolicy.stepAdjustments.0.scalingAdjustment", None
        ),
        "stepAdjustments[0].scalingAdjustment",
    ),
]


#: Bad over JSON only (a gRPC message's fields have their types): `true` is no number,
#: nor 0 a switch, as protobuf-JSON has it.
JSON_TYPES: list[tuple[dict[str, Any], str]] = [
    (with_change(STEP, "stepPolicyDescriptor.alarmConfig.threshold", True), "threshold"),
    (with_change(TARGET, "targetPolicyDescriptor.disableScaleIn", 0), "disableScaleIn"),
]


def named(errors: list[dict[str, str]], field: str) -> bool:
    return any(field in e["path"] for e in errors)


def test_policies_are_set_listed_read_replaced_and_deleted_over_rest(tmp_path: Path) -> None:
    with api(tmp_path, autoscaling_max_policies_per_job=2) as (http, store):
        web = http.post("/api/v3/jobs", json=service()).json()["id"]
        other = http.post("/api/v3/jobs", json=service()).json()["id"]
        r = http.post(f"{URL}/scalingPolicy", json={"jobId": web, "scalingPolicy": TARGET})
        assert r.status_code == 200, r.text
        target_id = r.json()["id"]
        step_id = http.post(
            f"{URL}/scalingPolicy", json={"jobId": web, "scalingPolicy": STEP}
        ).json()["id"]
        http.post(f"{URL}/scalingPolicy", json={"jobId": other, "scalingPolicy": TARGET})

        got = http.get(f"{URL}/scalingPolicy/{target_id}").json()["items"]
        assert len(got) == 1 and got[0]["jobId"] == web and got[0]["id"] == {"id": target_id}
        assert got[0]["scalingPolicy"] == TARGET  # the protobuf-JSON shape it was given
        assert got[0]["policyState"]["state"] == "Pending"
        mine = http.get(f"{URL}/scalingPolicies/{web}").json()["items"]
        assert sorted(p["id"]["id"] for p in mine) == sorted([target_id, step_id])
        assert len(http.get(f"{URL}/scalingPolicies").json()["items"]) == 3

        # at most autoscaling_max_policies_per_job live policies per job
        r = http.post(f"{URL}/scalingPolicy", json={"jobId": web, "scalingPolicy": TARGET})
        assert r.status_code == 400 and named(r.json()["errors"], "jobId"), r.text

        replaced = with_change(TARGET, "targetPolicyDescriptor.targetValue", 80.0)
        update = {"policyId": {"id": target_id}, "scalingPolicy": replaced}
        assert http.put(f"{URL}/scalingPolicy", json=update).status_code == 200
        [now] = http.get(f"{URL}/scalingPolicy/{target_id}").json()["items"]
        assert now["scalingPolicy"]["targetPolicyDescriptor"]["targetValue"] == 80.0

        assert http.delete(f"{URL}/scalingPolicy/{step_id}").status_code == 200
        assert http.delete(f"{URL}/scalingPolicy/{step_id}").status_code == 200  # twice is once
        [gone] = http.get(f"{URL}/scalingPolicy/{step_id}").json()["items"]
        assert gone["policyState"]["state"] == "Deleting"
        # a policy being deleted no longer counts against the job's bound
        r = http.post(f"{URL}/scalingPolicy", json={"jobId": web, "scalingPolicy": STEP})
        assert r.status_code == 200, r.text
        assert http.get(f"{URL}/scalingPolicy/nope").status_code == 404
        assert http.get(f"{URL}/scalingPolicies/nope").status_code == 404
        assert store.get_scaling_policy(target_id) is not None


def test_bad_policies_are_refused_naming_the_field(tmp_path: Path) -> None:
    with api(tmp_path) as (http, store):
        web = http.post("/api/v3/jobs", json=service()).json()["id"]
        batch = http.post("/api/v3/jobs", json=BATCH).json()["id"]
        for policy, field in BAD + JSON_TYPES:
            r = http.post(f"{URL}/scalingPolicy", json={"jobId": web, "scalingPolicy": policy})
            assert r.status_code == 400, (field, r.text)
            assert named(r.json()["errors"], field), (field, r.json())
        r = http.post(f"{URL}/scalingPolicy", json={"jobId": batch, "scalingPolicy": TARGET})
        assert r.status_code == 400 and named(r.json()["errors"], "jobId")
        r = http.post(f"{URL}/scalingPolicy", json={"scalingPolicy": TARGET})
        assert r.status_code == 400 and named(r.json()["errors"], "jobId")
        r = http.post(f"{URL}/scalingPolicy", json={"jobId": "nope", "scalingPolicy": TARGET})
        assert r.status_code == 404
        r = http.post(f"{URL}/scalingPolicy", json={"jobId": web, "policy": TARGET})
        assert r.status_code == 400 and named(r.json()["errors"], "policy")
        assert store.list_scaling_policies() == []


def test_only_owners_and_admins_change_a_jobs_policies(tmp_path: Path) -> None:
    with api(tmp_path, auth_tokens_file=tokens(tmp_path)) as (http, _):
        web = http.post("/api/v3/jobs", json=service(), headers=ALICE).json()["id"]
        put = {"jobId": web, "scalingPolicy": TARGET}
        refused = http.post(f"{URL}/scalingPolicy", json=put, headers=BOB)
        assert refused.status_code == 403 and "rule: job owner" in refused.json()["message"]
        assert http.post(f"{URL}/scalingPolicy", json=put).status_code == 401
        policy_id = http.post(f"{URL}/scalingPolicy", json=put, headers=ALICE).json()["id"]
        assert http.delete(f"{URL}/scalingPolicy/{policy_id}", headers=BOB).status_code == 403
        target = f"{URL}/scalableTargetDimensions/{web}"
        assert http.patch(target, json={"desiredCapacity": 2}, headers=BOB).status_code == 403
        assert http.delete(f"{URL}/scalingPolicy/{policy_id}", headers=ROOT).status_code == 200


def test_the_custom_resource_endpoint_moves_desired_as_a_resize_does(tmp_path: Path) -> None:
    with api(tmp_path) as (http, _):
        body = service()
        body["service"] = {"capacity": {"min": 1, "desired": 2, "max": 4}}
        web = http.post("/api/v3/jobs", json=body).json()["id"]
        policy_id = http.post(
            f"{URL}/scalingPolicy", json={"jobId": web, "scalingPolicy": TARGET}
        ).json()["id"]
        target = f"{URL}/scalableTargetDimensions/{web}"
        doc = http.get(target).json()
        assert doc["desiredCapacity"] == 2 and doc["scalableTargetDimensionId"] == web
        r = http.patch(target, json={"desiredCapacity": 3})
        assert r.status_code == 200 and r.json()["desiredCapacity"] == 3
        r = http.patch(target, json={"desiredCapacity": 9})  # held to max
        assert r.json()["desiredCapacity"] == 4
        job = http.get(f"/api/v3/jobs/{web}").json()
        assert "Application Auto Scaling" in job["status"]["reasonMessage"]
        history = [s["reasonMessage"] for s in job["statusHistory"]]
        assert any("desired 2 -> 3" in m for m in history)
        assert policy_id not in job["status"]["reasonMessage"]  # still Pending: not named
        for bad in (-1, True, " 3", "3.0", None):
            r = http.patch(target, json={"desiredCapacity": bad})
            assert r.status_code == 400 and named(r.json()["errors"], "desiredCapacity"), bad
        # as any integer the API reads: its digits do (the description says so)
        r = http.patch(target, json={"desiredCapacity": "3"})
        assert r.status_code == 200 and r.json()["desiredCapacity"] == 3
        r = http.patch(target, json={"desired": 1})
        assert r.status_code == 400 and named(r.json()["errors"], "desired")

        processes = {"disableIncreaseDesired": False, "disableDecreaseDesired": True}
        assert http.put(f"/api/v3/jobs/{web}/jobprocesses", json=processes).status_code == 200
        r = http.patch(target, json={"desiredCapacity": 1})
        assert r.status_code == 400 and "decreasing desired" in r.json()["message"]
        assert http.post(f"/api/v3/jobs/{web}/disable").status_code == 200
        r = http.patch(target, json={"desiredCapacity": 3})
        assert r.status_code == 400 and "disabled" in r.json()["message"]


def put_request(job_id: str, policy: dict[str, Any]) -> pb.PutPolicyRequest:
    return json_format.ParseDict({"jobId": job_id, "scalingPolicy": policy}, pb.PutPolicyRequest())


def test_the_grpc_autoscaling_service_speaks_titus_contract(tmp_path: Path) -> None:
    with grpc_api(tmp_path) as api_:
        job_id = api_.stub.CreateJob(descriptor()).id
        stub = pb_grpc.AutoScalingServiceStub(api_.channel)
        policy_id = stub.SetAutoScalingPolicy(put_request(job_id, STEP)).id
        target_id = stub.SetAutoScalingPolicy(put_request(job_id, TARGET)).id
        [got] = stub.GetScalingPolicy(pb.ScalingPolicyID(id=policy_id)).items
        assert got.jobId == job_id and got.id.id == policy_id
        alarm = got.scalingPolicy.stepPolicyDescriptor.alarmConfig
        assert alarm.threshold.value == 70.0 and alarm.metricName == "CPUUtilization"
        assert alarm.comparisonOperator == pb.AlarmConfiguration.GreaterThanThreshold
        steps = got.scalingPolicy.stepPolicyDescriptor.scalingPolicy.stepAdjustments
        assert [s.scalingAdjustment.value for s in steps] == [1, 3]
        assert got.policyState.state == pb.ScalingPolicyStatus.Pending
        listed = stub.GetJobScalingPolicies(jobs_pb.JobId(id=job_id)).items
        assert sorted(p.id.id for p in listed) == sorted([policy_id, target_id])
        assert len(stub.GetAllScalingPolicies(empty_pb2.Empty()).items) == 2

        replaced = with_change(TARGET, "targetPolicyDescriptor.targetValue", 75.0)
        update = json_format.ParseDict(
            {"policyId": {"id": target_id}, "scalingPolicy": replaced}, pb.UpdatePolicyRequest()
        )
        stub.UpdateAutoScalingPolicy(update)
        [now] = stub.GetScalingPolicy(pb.ScalingPolicyID(id=target_id)).items
        assert now.scalingPolicy.targetPolicyDescriptor.targetValue.value == 75.0

        for policy, field in BAD[2:]:
            try:
                request = put_request(job_id, policy)
            except json_format.ParseError:
                continue  # not expressible as the message: the client refuses it itself
            with pytest.raises(grpc.RpcError) as refused:
                stub.SetAutoScalingPolicy(request)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            assert any(field in path for path in violations(refused.value)), field

        stub.DeleteAutoScalingPolicy(pb.DeletePolicyRequest(id=pb.ScalingPolicyID(id=policy_id)))
        [gone] = stub.GetScalingPolicy(pb.ScalingPolicyID(id=policy_id)).items
        assert gone.policyState.state == pb.ScalingPolicyStatus.Deleting
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetScalingPolicy(pb.ScalingPolicyID(id="nope"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
