"""The vpc provider with real containers: agents on namespaced test hosts take their
tasks' addresses from ENIs that moto holds (a VPC whose subnet has the test bridge's
CIDR, one EC2 instance per host), containers reach each other across hosts at those
addresses, and security groups (address ranges and source groups) let in what they
allow and nothing else. A restarted agent adopts its running tasks' addresses from EC2
and gives back what nobody holds after the grace period; many launches and kills leave
nothing behind; throttled EC2 calls fail no task.

Needs root (network namespaces, veth, iptables, tc), the Docker engine and moto (in
process, loopback only).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.aws_throttle import ThrottlingProxy
from tests.support.docker_engine import AgentFactory, run_task, task_spec, wait_for_report
from tests.support.moto_server import EXAMPLE_IMAGE, REGION
from tests.support.net_hosts import HOST_BRIDGE, Subnet, reaches, serve
from tests.support.poll import wait_until
from titus.agent.daemon import AgentDaemon
from titus.agent.metrics import NETWORK_RELEASED
from titus.agent.network.plumbing import HOST_LINK_PREFIX
from titus.agent.network.vpc import TAG_INSTANCE
from titus.model import names
from titus.model.launch import TaskSpec
from titus.model.names import TaskContextKey, eni_set_key
from titus.model.states import TaskState

pytestmark = pytest.mark.docker

SERVE = serve(8080, 9090, 5432)


@dataclass
class Vpc:
    ec2: Any
    subnet: str
    web: str
    db: str
    other: str

    def instance(self) -> str:
        image = EXAMPLE_IMAGE
        return str(
            self.ec2.run_instances(
                ImageId=image, InstanceType="t3.medium", MinCount=1, MaxCount=1,
                SubnetId=self.subnet,
            )["Instances"][0]["InstanceId"]
        )  # fmt: skip

    def tagged(self, instance: str) -> list[dict[str, Any]]:
        return list(
            self.ec2.describe_network_interfaces(
                Filters=[{"Name": f"tag:{TAG_INSTANCE}", "Values": [instance]}]
            )["NetworkInterfaces"]
        )

    def secondary(self, instance: str) -> set[str]:
        return {
            a["PrivateIpAddress"]
            for eni in self.tagged(instance)
            for a in eni["PrivateIpAddresses"]
            if not a["Primary"]
        }


@pytest.fixture
def vpc(aws_env: str, net_subnet: Subnet) -> Vpc:
    """A VPC whose subnet is the test bridge's CIDR, and three groups: web (8080 from the
    subnet), db (5432 from members of web) and other (nothing)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_id = ec2.create_vpc(CidrBlock="100.64.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=net_subnet.cidr)["Subnet"]["SubnetId"]

    def group(name: str) -> str:
        return str(
            ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc_id)["GroupId"]
        )

    web, db, other = group("web"), group("db"), group("other")
    ec2.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
             "IpRanges": [{"CidrIp": net_subnet.cidr}]}
        ],
    )  # fmt: skip
    ec2.authorize_security_group_ingress(
        GroupId=db,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
             "UserIdGroupPairs": [{"GroupId": web}]}
        ],
    )  # fmt: skip
    return Vpc(ec2, subnet, web, db, other)


def vpc_agent(
    factory: AgentFactory, subnet: Subnet, vpc: Vpc, ns: str, instance: str, data: Path,
    **more: Any,
) -> AgentDaemon:  # fmt: skip
    settings: dict[str, Any] = {
        "agent_id": instance,
        "agent_network_provider": "vpc",
        "agent_network_vpc_subnet_id": vpc.subnet,
        "agent_aws_region": REGION,
        "agent_network_host_netns": ns,
        "agent_network_bridge": HOST_BRIDGE,
        "agent_network_release_grace_sec": 2.0,
        "agent_network_sweep_interval_sec": 1.0,
        "data_dir": str(data),
    }
    settings.update(more)
    return factory(**settings)


def in_groups(spec: TaskSpec, *groups: str) -> TaskSpec:
    spec.container.securityProfile.securityGroups = list(groups)
    return spec


def test_containers_on_two_hosts_reach_each_other_at_their_eni_addresses_as_groups_allow(
    agent_factory: AgentFactory, net_subnet: Subnet, vpc: Vpc, tmp_path: Path
) -> None:
    ia, ib = vpc.instance(), vpc.instance()
    a = vpc_agent(agent_factory, net_subnet, vpc, net_subnet.host("a"), ia, tmp_path / "a")
    b = vpc_agent(agent_factory, net_subnet, vpc, net_subnet.host("b"), ib, tmp_path / "b")
    # t3.medium: 3 ENIs of 6 addresses; the primary ENI and each ENI's primary address
    # are not for tasks
    assert a.info.resources[names.IP_SLOTS] == 2 * 5

    server = run_task(a, in_groups(task_spec(SERVE), vpc.web, vpc.db), TaskState.STARTED)
    ip = server.context[TaskContextKey.CONTAINER_IP]
    assert ip in vpc.secondary(ia)
    assert server.context[TaskContextKey.NETWORK_INTERFACE_ID].startswith("eni-")
    assert server.context[TaskContextKey.NETWORK_INTERFACE_INDEX] == "1"

    # its ENI is what the scheduler is told of, keyed by the task's group set
    published = wait_until(
        "the host's ENIs published",
        lambda: a.info.network if a.info.network.get("sets") else None,
        30,
    )
    assert published == {
        "maxEnis": 2, "ipsPerEni": 5, "sets": {eni_set_key([vpc.web, vpc.db]): [1, 1]}
    }  # fmt: skip

    # web allows 8080 from the subnet: any task reaches it; 9090 is allowed by no group
    plain = run_task(b, in_groups(task_spec(reaches(ip, 8080, tries=25)), vpc.other))
    assert plain.exitCode == 0, plain.reasonMessage
    assert plain.context[TaskContextKey.CONTAINER_IP] in vpc.secondary(ib)
    assert run_task(b, in_groups(task_spec(reaches(ip, 9090)), vpc.other)).exitCode == 1
    # db allows 5432 from members of web only: a web task on the other host gets in, a
    # task of another group does not
    assert run_task(b, in_groups(task_spec(reaches(ip, 5432)), vpc.other)).exitCode == 1
    member = run_task(b, in_groups(task_spec(reaches(ip, 5432)), vpc.web))
    assert member.exitCode == 0, member.reasonMessage

    a.kill(server.taskId)
    wait_for_report(a, server.taskId, TaskState.FINISHED)


def test_a_source_group_rule_follows_members_that_arrive_after_the_task_started(
    agent_factory: AgentFactory, net_subnet: Subnet, vpc: Vpc, tmp_path: Path
) -> None:
    ia = vpc.instance()
    a = vpc_agent(agent_factory, net_subnet, vpc, net_subnet.host("a"), ia, tmp_path / "a")
    server = run_task(a, in_groups(task_spec(SERVE), vpc.db), TaskState.STARTED)
    ip = server.context[TaskContextKey.CONTAINER_IP]
    # a web task started later on the same host: the db task's filter is loaded again by
    # the sweep (every second here) with the newcomer's address
    client = in_groups(task_spec(reaches(ip, 5432, tries=100)), vpc.web)
    done = run_task(a, client)
    assert done.exitCode == 0, done.reasonMessage
    a.kill(server.taskId)
    wait_for_report(a, server.taskId, TaskState.FINISHED)


def test_a_restarted_agent_adopts_running_tasks_addresses_and_gives_back_the_rest(
    agent_factory: AgentFactory, net_subnet: Subnet, vpc: Vpc, tmp_path: Path
) -> None:
    ia = vpc.instance()
    ns = net_subnet.host("a")
    long_grace = {"agent_network_release_grace_sec": 600.0}
    # the second agent's grace must outlast adopting the running task (seconds here)
    grace = {"agent_network_release_grace_sec": 5.0}
    first = vpc_agent(agent_factory, net_subnet, vpc, ns, ia, tmp_path / "a", **long_grace)
    kept = run_task(first, in_groups(task_spec("sleep 300"), vpc.web), TaskState.STARTED)
    gone = run_task(first, in_groups(task_spec("sleep 300"), vpc.web), TaskState.STARTED)
    kept_ip = kept.context[TaskContextKey.CONTAINER_IP]
    gone_ip = gone.context[TaskContextKey.CONTAINER_IP]
    first.stop()  # the agent goes away; its containers keep running
    # while no agent runs: one task ends, its records are lost, and a launch crashed
    # between taking an address in EC2 and writing it down
    first.client.containers.get(gone.containerId).remove(force=True)
    (tmp_path / "a" / "network" / "vpc.json").unlink()
    eni = vpc.tagged(ia)[0]["NetworkInterfaceId"]
    vpc.ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=1)
    stray = vpc.secondary(ia) - {kept_ip, gone_ip}
    assert len(stray) == 1
    released = NETWORK_RELEASED._value.get()

    second = vpc_agent(agent_factory, net_subnet, vpc, ns, ia, tmp_path / "a", **grace)
    report = wait_for_report(second, kept.taskId, TaskState.STARTED)
    assert report.context[TaskContextKey.CONTAINER_IP] == kept_ip
    # the running task's address is adopted (from its container: the records were lost);
    # the ended task's and the stray one go after the grace period, with no task ending
    wait_until(
        "addresses nobody holds given back",
        lambda: vpc.secondary(ia) == {kept_ip},
        60,
    )
    # counted by the sweep just after EC2 answers its unassign call, which the look above
    # may see first
    wait_until(
        "both counted as given back",
        lambda: NETWORK_RELEASED._value.get() - released >= 2,
        10,
    )
    network = next(h for h in second.hooks.hooks if h.name == "network")
    assert network.provider.allocations()[kept.taskId].ip == kept_ip  # type: ignore[attr-defined]
    # the adopted address goes back like any other when its task ends, then its ENI
    second.kill(kept.taskId)
    wait_for_report(second, kept.taskId, TaskState.FINISHED)
    wait_until("the idle ENI deleted", lambda: vpc.tagged(ia) == [], 60)
    assert net_subnet.links(ns, HOST_LINK_PREFIX) == []


def host_leftovers(ns: str, prefix: str) -> dict[str, Any]:
    """What per-task networking could leave in a host namespace: task links, traffic
    classes and packet-filter rules."""

    def sh(*args: str) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *args], capture_output=True, text=True, check=True
        ).stdout

    links = [
        line.split(":")[1].strip().split("@")[0]
        for line in sh("ip", "-o", "link", "show").splitlines()
    ]
    return {
        "links": [n for n in links if n.startswith(prefix)],
        "classes": sh("tc", "class", "show", "dev", HOST_BRIDGE).strip(),
        "htb": [line for line in sh("tc", "qdisc", "show").splitlines() if "htb" in line],
        "rules": [line for line in sh("iptables-save").splitlines() if line.startswith("-A")],
    }


def test_many_launches_and_kills_leave_no_address_eni_link_class_or_rule(
    agent_factory: AgentFactory, net_subnet: Subnet, vpc: Vpc, tmp_path: Path
) -> None:
    ia = vpc.instance()
    ns = net_subnet.host("a")
    agent = vpc_agent(agent_factory, net_subnet, vpc, ns, ia, tmp_path / "a")
    clean = host_leftovers(ns, HOST_LINK_PREFIX)
    namespaces: set[str] = set()  # the tasks' network namespaces, as "net:[inode]"
    containers: set[str] = set()
    groups = [(vpc.web,), (vpc.db,), (vpc.web, vpc.db)]
    for round_ in range(3):  # 2 cores: a dozen tasks at most at once
        specs = []
        for i in range(4):
            # two sets a round (t3.medium has two ENIs for tasks): the ENI of the set the
            # last round used and this round does not is deleted to make room
            spec = in_groups(task_spec("sleep 60"), *groups[(round_ + i % 2) % len(groups)])
            spec.container.resources.networkMbps = 50 + 10 * i
            specs.append(spec)
            started = run_task(agent, spec, TaskState.STARTED)
            assert started.state == TaskState.STARTED, started
            containers.add(started.containerId or "")
            namespaces.add(
                os.readlink(f"/proc/{agent.runtime.pid(started.containerId or '')}/ns/net")
            )
        assert len(net_subnet.links(ns, HOST_LINK_PREFIX)) == 4
        for spec in specs:
            agent.kill(spec.taskId)
        for spec in specs:
            wait_for_report(agent, spec.taskId, TaskState.FINISHED)
    assert host_leftovers(ns, HOST_LINK_PREFIX) == clean
    network = next(h for h in agent.hooks.hooks if h.name == "network")
    assert network.provider.allocations() == {}  # type: ignore[attr-defined]
    wait_until("every address and ENI given back", lambda: vpc.tagged(ia) == [], 60)
    # no process of a task is in its namespace any more (a namespace number may be reused
    # by someone else's meanwhile: the processes are told apart by their containers)
    listed = subprocess.run(
        ["lsns", "-t", "net", "-n", "-o", "NS,PID"], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    for line in listed:
        fields = line.split()
        if len(fields) != 2 or f"net:[{fields[0]}]" not in namespaces:
            continue
        try:
            cgroup = Path(f"/proc/{fields[1]}/cgroup").read_text()
        except OSError:
            continue
        assert not any(c in cgroup for c in containers), (line, cgroup)
    held = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            held.add(os.readlink(fd))
        except OSError:
            continue
    assert not held & namespaces


def test_throttled_ec2_fails_no_task(
    agent_factory: AgentFactory,
    net_subnet: Subnet,
    vpc: Vpc,
    tmp_path: Path,
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ia = vpc.instance()
    proxy = ThrottlingProxy(aws_env, every=4)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        agent = vpc_agent(agent_factory, net_subnet, vpc, net_subnet.host("a"), ia, tmp_path)
        specs = [in_groups(task_spec("sleep 60"), vpc.web) for _ in range(4)]
        for spec in specs:
            agent.launch(spec)
        started = [wait_for_report(agent, s.taskId, TaskState.STARTED) for s in specs]
        assert [r.state for r in started] == [TaskState.STARTED] * 4, started
        assert len({r.context[TaskContextKey.CONTAINER_IP] for r in started}) == 4
        assert proxy.throttled > 0
        for spec in specs:
            agent.kill(spec.taskId)
        for spec in specs:
            done = wait_for_report(agent, spec.taskId, TaskState.FINISHED)
            assert done.reasonCode == "killed", done
    finally:
        proxy.close()
