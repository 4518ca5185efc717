"""`titus local` with the vpc provider against moto, behind a fault injector: an address
allocation that finally fails (EC2 refuses it, and no retry helps) ends the task as a
system error, and the job, which allows no retry of its own, still runs to success on a
replacement: system errors never use up the job's retries. Addresses come from an ENI
of the agent's EC2 instance on a bridge of the test's own; nothing leaves the machine.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest

from tests.support.aws_faults import AwsFaults
from tests.support.docker_engine import remove_agent_containers
from tests.support.moto_server import EXAMPLE_IMAGE, REGION
from tests.support.platform import Platform, running_platform
from titus.agent.network.vpc import TAG_INSTANCE

pytestmark = pytest.mark.docker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WAIT_NET = "until ip addr show eth0 2>/dev/null | grep -q inet; do sleep 0.05; done; "
CIDR = "100.64.96.0/24"


@pytest.fixture
def vpc_platform(aws_env: str, tmp_path: Path) -> Iterator[tuple[Platform, AwsFaults, Any]]:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_id = ec2.create_vpc(CidrBlock="100.64.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=CIDR)["Subnet"]["SubnetId"]
    image = EXAMPLE_IMAGE
    instance = ec2.run_instances(
        ImageId=image, InstanceType="t3.medium", MinCount=1, MaxCount=1, SubnetId=subnet
    )["Instances"][0]["InstanceId"]
    group = ec2.create_security_group(GroupName="app", Description="a", VpcId=vpc_id)["GroupId"]
    faults = AwsFaults(aws_env).start()
    bridge = f"tvf{uuid.uuid4().hex[:8]}"
    env = {
        "AWS_ENDPOINT_URL": faults.url,
        "TITUS_AGENT_ID": instance,
        "TITUS_AGENT_AWS_REGION": REGION,
        "TITUS_AGENT_NETWORK_PROVIDER": "vpc",
        "TITUS_AGENT_NETWORK_VPC_SUBNET_ID": subnet,
        "TITUS_AGENT_NETWORK_BRIDGE": bridge,
        "TITUS_AGENT_NETWORK_RELEASE_GRACE_SEC": "1",
        "TITUS_AGENT_NETWORK_SWEEP_INTERVAL_SEC": "1",
    }
    try:
        with running_platform(tmp_path, env) as p:
            try:
                yield p, faults, (ec2, instance, group)
            finally:
                engine = docker.DockerClient(base_url=p.env["DOCKER_HOST"])
                remove_agent_containers(engine, instance)
    finally:
        faults.stop()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)


def job(command: str, group: str) -> dict[str, Any]:
    d: dict[str, Any] = json.loads((EXAMPLES / "batch-hello.json").read_text())
    d["applicationName"] = "vpcfault"
    d["container"]["command"] = [WAIT_NET + command]
    d["container"]["securityProfile"] = {"securityGroups": [group]}
    d["batch"]["retryPolicy"] = {"immediate": {"retries": 0}}
    return d


def test_an_allocation_that_finally_fails_is_a_system_error_that_uses_no_retry(
    vpc_platform: tuple[Platform, AwsFaults, Any],
) -> None:
    p, faults, (ec2, instance, group) = vpc_platform
    # EC2 refuses the next address assignment with an error no retry helps
    faults.fail(
        "AssignPrivateIpAddresses", 400, "InsufficientFreeAddressesInSubnet",
        "The specified subnet does not have enough free addresses.",
    )  # fmt: skip
    job_id = p.submit(job("exit 0", group))
    done = p.wait_job_finished(job_id, timeout=120)
    tasks = sorted(p.tasks(job_id), key=lambda t: t["status"]["timestamp"])
    assert len(tasks) == 2, [t["status"] for t in tasks]
    failed, replacement = tasks
    assert failed["status"]["reasonCode"] == "transientSystemError", failed["status"]
    assert "network setup failed" in failed["status"]["reasonMessage"]
    assert "InsufficientFreeAddressesInSubnet" in failed["status"]["reasonMessage"]
    assert replacement["status"]["reasonCode"] == "normal", replacement["status"]
    assert replacement["taskContext"]["task.containerIp"].startswith("100.64.96.")
    # the replacement is a system resubmit: the job's own retries (none) stay unused
    context = replacement["taskContext"]
    assert context["task.resubmitNumber"] == context["task.systemResubmitNumber"] == "1"
    assert done["status"]["state"] == "Finished"
    assert faults.calls.get("AssignPrivateIpAddresses", 0) >= 2
    # and what the tasks held goes back after the grace period
    p.wait_for(
        "the task's address and ENI given back",
        lambda: (
            not ec2.describe_network_interfaces(
                Filters=[{"Name": f"tag:{TAG_INSTANCE}", "Values": [instance]}]
            )["NetworkInterfaces"]
        ),
        60,
    )


def test_enis_per_security_group_set_are_scheduled_from_what_the_agent_publishes(
    vpc_platform: tuple[Platform, AwsFaults, Any],
) -> None:
    """A t3.medium has two ENIs for tasks: tasks of two group sets run, a third set waits
    (why-pending names the ENI rule) until one set's tasks end and its ENI goes."""
    p, _, (ec2, instance, group) = vpc_platform
    vpc_id = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["VpcId"]
    second, third = (
        ec2.create_security_group(GroupName=n, Description=n, VpcId=vpc_id)["GroupId"]
        for n in ("second", "third")
    )
    first_job = p.submit(job("sleep 300", group))
    second_job = p.submit(job("sleep 300", second))
    for job_id in (first_job, second_job):
        p.wait_for(f"job {job_id} running", lambda j=job_id: p.running(j), 90)
    waiting = p.submit(job("exit 0", third))

    def pending_on_enis() -> bool:
        tasks = p.tasks(waiting)
        return bool(tasks) and "eniPerSecurityGroups" in tasks[0]["status"].get("reasonMessage", "")

    p.wait_for("the third set's task pending on the ENI rule", pending_on_enis, 60)
    assert p.tasks(waiting)[0]["status"]["state"] == "Accepted"
    r = p.http.delete(f"/api/v3/jobs/{first_job}")
    assert r.status_code == 200, r.text
    done = p.wait_job_finished(waiting, timeout=120)
    (task,) = p.tasks(waiting)
    assert task["status"]["reasonCode"] == "normal", task["status"]
    assert done["status"]["state"] == "Finished"
