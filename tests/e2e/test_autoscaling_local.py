"""Autoscaling in `titus local`, from the `titus` command: a target tracking policy on the
tasks' own published metric (the default executor, no AWS) grows a service job when its
tasks report more load than the target and shrinks it when they report less, each step in
the job's history naming the policy; the policy is listed Applied and can be deleted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli_commands import titus, titus_json
from tests.e2e.test_moves import capacity, service
from tests.support.platform import Platform, running_platform

pytestmark = pytest.mark.docker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def scaling_platform(tmp_path: Path) -> Iterator[Platform]:
    env = {
        "TITUS_AUTOSCALING_INTERVAL_SEC": "1",
        "TITUS_AUTOSCALING_METRICS": "tasks",
        # what the tasks published before the change ages out of the average sooner
        "TITUS_AUTOSCALING_TARGET_WINDOW_SEC": "5",
    }
    with running_platform(tmp_path, env) as p:
        yield p


def publish(platform: Platform, job_id: str, value: float) -> None:
    for task in platform.running(job_id):
        titus(
            platform,
            "task",
            "set-attributes",
            task["id"],
            f"autoscaling.metric.RequestsPerTask={value}",
        )


def test_a_target_tracking_policy_sizes_a_job_on_its_tasks_metric(
    scaling_platform: Platform, tmp_path: Path
) -> None:
    platform = scaling_platform
    descriptor = tmp_path / "web.json"
    body = service("scaled", 1)
    body["service"]["capacity"] = {"min": 1, "desired": 1, "max": 3}
    descriptor.write_text(json.dumps(body))
    job_id = titus(platform, "job", "submit", str(descriptor)).strip()
    policy = json.loads((EXAMPLES / "scaling-target.json").read_text())
    policy["targetPolicyDescriptor"].update({"scaleOutCooldownSec": 0, "scaleInCooldownSec": 0})
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(policy))
    policy_id = titus(platform, "autoscaling", "set", job_id, str(policy_file)).strip()
    platform.wait_for("the task running", lambda: len(platform.running(job_id)) == 1)

    def state() -> str:
        return str(titus_json(platform, "autoscaling", "get", policy_id)["policyState"]["state"])

    platform.wait_for("the policy Applied", lambda: state() == "Applied")
    assert policy_id in titus(platform, "autoscaling", "list", "--job", job_id)

    publish(platform, job_id, 150.0)  # three times the target: three tasks (the max)
    platform.wait_for("desired 3", lambda: capacity(platform, job_id)["desired"] == 3)
    platform.wait_for("three tasks running", lambda: len(platform.running(job_id)) == 3)
    publish(platform, job_id, 10.0)  # far under: back to the fewest that keep it (min 1)
    platform.wait_for("desired 1", lambda: capacity(platform, job_id)["desired"] == 1)
    job = platform.job(job_id)
    lines = [s["reasonMessage"] for s in [*job["statusHistory"], job["status"]]]
    assert any(f"desired 1 -> 3 by scaling policy {policy_id}" in line for line in lines), lines
    # in at once or a step at a time, as the tasks' reports come in
    assert any(f"-> 1 by scaling policy {policy_id}" in line for line in lines), lines

    titus(platform, "autoscaling", "delete", policy_id)
    platform.wait_for("the policy Deleted", lambda: state() == "Deleted")
