"""The vpc provider against moto: ENIs per group set, the limits AWS enforces, tags,
grace-period release, concurrent launches, subnet exhaustion and EC2 throttling."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.ec2.models import elastic_network_interfaces as moto_enis

from tests.support.aws_throttle import ThrottlingProxy
from tests.support.moto_server import EXAMPLE_IMAGE, REGION
from titus.agent.network import NetworkError
from titus.agent.network.firewall import UnknownGroupError
from titus.agent.network.vpc import TAG_GROUPS, TAG_INSTANCE, VpcProvider, ec2_client


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def vpc(aws_env: str) -> dict[str, Any]:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    small = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.2.0/28")["Subnet"]["SubnetId"]
    image = EXAMPLE_IMAGE
    instance = ec2.run_instances(
        ImageId=image, InstanceType="t3.medium", MinCount=1, MaxCount=1, SubnetId=subnet
    )["Instances"][0]["InstanceId"]
    web = ec2.create_security_group(GroupName="web", Description="w", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 80,
                "ToPort": 81,
                "IpRanges": [{"CidrIp": "10.0.0.0/8"}],
            }
        ],
    )
    db = ec2.create_security_group(GroupName="db", Description="d", VpcId=vpc_id)["GroupId"]
    return {
        "ec2": ec2,
        "subnet": subnet,
        "small": small,
        "instance": instance,
        "web": web,
        "db": db,
    }


def provider(vpc: dict[str, Any], tmp_path: Path, **kw: Any) -> VpcProvider:
    return VpcProvider(
        ec2_client(REGION), vpc["instance"], kw.pop("subnet", vpc["subnet"]),
        tmp_path / "vpc.json", **kw,
    )  # fmt: skip


def test_one_eni_per_group_set_tagged_with_its_index_and_own_ips(
    vpc: dict[str, Any], tmp_path: Path
) -> None:
    p = provider(vpc, tmp_path)
    assert (p.max_enis, p.ips_per_eni) == (3, 6)  # t3.medium as describe_instance_types says
    a = p.allocate("t1", [vpc["web"]])
    b = p.allocate("t2", [vpc["web"]])
    c = p.allocate("t3", [vpc["db"], vpc["web"]])
    assert a.interface_id == b.interface_id != c.interface_id
    assert len({a.ip, b.ip, c.ip}) == 3 and a.ip.startswith("10.20.1.")
    assert {a.interface_index, c.interface_index} == {1, 2}
    eni = vpc["ec2"].describe_network_interfaces(NetworkInterfaceIds=[a.interface_id])
    tags = {t["Key"]: t["Value"] for t in eni["NetworkInterfaces"][0]["TagSet"]}
    assert tags == {TAG_INSTANCE: vpc["instance"], TAG_GROUPS: vpc["web"]}
    assert provider(vpc, tmp_path).allocations()["t1"] == a  # a restarted agent adopts it
    assert [(r.protocol, r.from_port, r.to_port) for r in p.rules([vpc["web"]])] == [
        ("tcp", 80, 81)
    ]


def test_limits_are_refused_as_aws_would_and_unknown_groups_too(
    vpc: dict[str, Any], tmp_path: Path
) -> None:
    p = provider(vpc, tmp_path)
    for i in range(10):  # two ENIs beside the primary, five secondary IPs each
        p.allocate(f"t{i}", [vpc["web"]])
    with pytest.raises(NetworkError, match="ENIs"):
        p.allocate("t10", [vpc["web"]])
    with pytest.raises(UnknownGroupError):
        provider(vpc, tmp_path / "other").rules(["sg-00000000"])


def test_released_ips_and_empty_enis_go_only_after_the_grace(
    vpc: dict[str, Any], tmp_path: Path
) -> None:
    clock = Clock()
    p = provider(vpc, tmp_path, release_grace_sec=60, clock=clock)
    a = p.allocate("t1", [vpc["db"]])
    p.release("t1")
    p.sweep()
    assert vpc["ec2"].describe_network_interfaces(NetworkInterfaceIds=[a.interface_id])
    again = p.allocate("t2", [vpc["db"]])
    assert (again.interface_id, again.ip) == (a.interface_id, a.ip)  # reused, no new ENI
    p.release("t2")
    clock.now = 61
    p.sweep()
    left = vpc["ec2"].describe_network_interfaces(
        Filters=[{"Name": f"tag:{TAG_INSTANCE}", "Values": [vpc["instance"]]}]
    )["NetworkInterfaces"]
    assert left == []


def test_concurrent_launches_never_share_an_ip(vpc: dict[str, Any], tmp_path: Path) -> None:
    p = provider(vpc, tmp_path)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: p.allocate(f"t{i}", [vpc["web"]]).ip, range(8)))
    assert len(set(got)) == 8


def test_an_address_ec2_hands_out_twice_is_given_back_and_another_taken(
    vpc: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cloud handing the db ENI the address a web task already has: the second task
    must not share it (moto draws addresses at random per ENI, so this happens there)."""
    drawn = iter(["10.20.1.10", "10.20.1.11", "10.20.1.12", "10.20.1.11", "10.20.1.13"])
    monkeypatch.setattr(moto_enis, "random_private_ip", lambda *a, **kw: next(drawn))
    p = provider(vpc, tmp_path)
    web = p.allocate("t1", [vpc["web"]])  # web ENI .10, its task .11
    db = p.allocate("t2", [vpc["db"]])  # db ENI .12, then .11 again, then .13
    assert (web.ip, db.ip) == ("10.20.1.11", "10.20.1.13")
    found = vpc["ec2"].describe_network_interfaces(NetworkInterfaceIds=[db.interface_id])
    on_db = {a["PrivateIpAddress"] for a in found["NetworkInterfaces"][0]["PrivateIpAddresses"]}
    assert on_db == {"10.20.1.12", "10.20.1.13"}  # the clashing address went back


def test_a_nearly_exhausted_subnet_is_refused_before_it_runs_out(
    vpc: dict[str, Any], tmp_path: Path
) -> None:
    p = provider(vpc, tmp_path, subnet=vpc["small"], subnet_reserve=8)
    taken = []
    with pytest.raises(NetworkError, match="nearly out"):
        for i in range(12):
            taken.append(p.allocate(f"t{i}", [vpc["web"]]))
    assert len(taken) < 11


def test_throttled_ec2_calls_are_retried_and_no_allocation_fails(
    vpc: dict[str, Any], tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = ThrottlingProxy(aws_env, every=5)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        p = provider(vpc, tmp_path)
        got = {p.allocate(f"t{i}", [vpc["web"]]).ip for i in range(3)}
        assert len(got) == 3
        assert proxy.throttled > 0
    finally:
        proxy.close()


def test_slots_and_published_enis_follow_the_instance_type_and_allocations(
    vpc: dict[str, Any], tmp_path: Path
) -> None:
    p = provider(vpc, tmp_path)
    assert p.instance_type() == "t3.medium"
    assert p.task_slots() == (3 - 1) * (6 - 1)  # primary ENI and primary addresses left out
    assert p.published() == {"maxEnis": 2, "ipsPerEni": 5, "sets": {}}
    p.allocate("t1", [vpc["web"]])
    p.allocate("t2", [vpc["web"]])
    p.allocate("t3", [vpc["db"]])
    assert p.published()["sets"] == {vpc["web"]: [1, 2], vpc["db"]: [1, 1]}


def test_an_eni_holding_only_released_addresses_makes_room_for_another_set(
    vpc: dict[str, Any], tmp_path: Path
) -> None:
    p = provider(vpc, tmp_path, release_grace_sec=600)
    a = p.allocate("t1", [vpc["web"]])
    p.allocate("t2", [vpc["db"]])
    p.release("t1")  # web's ENI now holds an address in its grace period only
    both = p.allocate("t3", [vpc["web"], vpc["db"]])  # both slots taken: web's goes
    assert both.interface_id != a.interface_id
    with pytest.raises(Exception, match="InvalidNetworkInterfaceID"):
        vpc["ec2"].describe_network_interfaces(NetworkInterfaceIds=[a.interface_id])
    with pytest.raises(NetworkError, match="ENIs"):
        p.allocate("t4", [vpc["web"]])  # and no ENI is idle now


def test_a_sweep_gives_back_at_most_its_batch(vpc: dict[str, Any], tmp_path: Path) -> None:
    clock = Clock()
    p = provider(vpc, tmp_path, release_grace_sec=10, clock=clock, sweep_batch=2)
    for i in range(5):
        p.allocate(f"t{i}", [vpc["web"]])
    for i in range(5):
        p.release(f"t{i}")
    clock.now = 11
    held = []
    for _ in range(4):
        p.sweep()
        eni = vpc["ec2"].describe_network_interfaces(
            Filters=[{"Name": f"tag:{TAG_INSTANCE}", "Values": [vpc["instance"]]}]
        )["NetworkInterfaces"]
        held.append(sum(1 for e in eni for a in e["PrivateIpAddresses"] if not a["Primary"]))
    assert held == [3, 1, 0, 0]


def test_source_groups_stand_for_the_addresses_of_their_enis(
    vpc: dict[str, Any], tmp_path: Path
) -> None:
    ec2 = vpc["ec2"]
    ec2.authorize_security_group_ingress(
        GroupId=vpc["db"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
             "UserIdGroupPairs": [{"GroupId": vpc["web"]}]}
        ],
    )  # fmt: skip
    p = provider(vpc, tmp_path)
    assert p.rules([vpc["db"]]) == []  # no ENI is in web yet
    web = p.allocate("t1", [vpc["web"]])
    rules = p.rules([vpc["db"]])
    sources = {r.cidr for r in rules}
    assert f"{web.ip}/32" in sources and all(r.from_port == 5432 for r in rules)
    # every address of web's ENIs (its primary one too), nobody else's
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[web.interface_id])
    expected = {
        f"{a['PrivateIpAddress']}/32" for a in eni["NetworkInterfaces"][0]["PrivateIpAddresses"]
    }
    assert sources == expected
