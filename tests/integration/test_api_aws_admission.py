"""Admission against AWS: a job whose IAM role or security group AWS does not have is a
400 that names the field, before anything is stored (against a moto server)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.test_api_app import BATCH, api
from tests.support.aws_faults import AwsFaults

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
}


def job(role: str = "", groups: list[str] | None = None) -> dict[str, Any]:
    body = copy.deepcopy(BATCH)
    body["container"]["securityProfile"] = {"iamRole": role, "securityGroups": groups or []}
    return body


def test_a_role_or_group_aws_does_not_have_is_refused_naming_the_field(
    aws_env: str, tmp_path: Path
) -> None:
    iam, ec2 = boto3.client("iam"), boto3.client("ec2")
    arn = iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    untrusting = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:TagSession",
            }
        ],
    }
    iam.create_role(RoleName="closed", AssumeRolePolicyDocument=json.dumps(untrusting))
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]

    with api(tmp_path, api_aws_admission="closed", api_aws_vpc_id=vpc) as (http, store):
        for role in (arn, "app"):
            r = http.post("/api/v3/jobs", json=job(role, [group]))
            assert r.status_code == 202, r.text

        r = http.post("/api/v3/jobs", json=job("missing-role", ["sg-0123456789abcdef0"]))
        assert r.status_code == 400
        problems = {e["path"]: e["message"] for e in r.json()["errors"]}
        assert "does not exist" in problems["container.securityProfile.iamRole"]
        assert "sg-0123456789abcdef0" in problems["container.securityProfile.securityGroups[0]"]

        r = http.post("/api/v3/jobs", json=job("closed"))
        assert r.status_code == 400 and "cannot be assumed" in r.text

        other = arn.replace("123456789012", "210987654321")
        r = http.post("/api/v3/jobs", json=job(other))
        assert r.status_code == 400 and "does not exist" in r.text
        assert len(store.list_active_jobs()) == 2


@pytest.mark.parametrize("mode, status", [("closed", 503), ("open", 202)])
def test_an_unreachable_aws_fails_closed_or_open_as_configured(
    aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, status: int
) -> None:
    faults = AwsFaults(aws_env).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", faults.url)
    try:
        faults.fail("GetRole", 503, "ServiceUnavailable", "down", times=20)
        with api(tmp_path, api_aws_admission=mode) as (http, store):
            r = http.post("/api/v3/jobs", json=job("app"))
            assert r.status_code == status, r.text
            if status == 503:
                assert "iamRole" in r.json()["message"]
                assert r.headers["Retry-After"]
                assert store.list_active_jobs() == []
    finally:
        faults.stop()


def test_answers_are_cached(aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("iam").create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps(TRUST))
    faults = AwsFaults(aws_env).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", faults.url)
    try:
        with api(tmp_path, api_aws_admission="closed") as (http, _):
            for _ in range(5):
                assert http.post("/api/v3/jobs", json=job("app")).status_code == 202
        assert faults.calls.get("GetRole") == 1
    finally:
        faults.stop()
