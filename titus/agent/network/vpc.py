"""The `vpc` provider: each task gets a secondary private IP on an ENI of this instance.

One ENI per distinct security-group set (more ENIs for a set when one is full), up to
the instance type's limits read from `describe_instance_types`. The cloud enforces
those limits, and that a group exists; the test double does not, so they are enforced
here too, before any call that would break them. A subnet about to run out of
addresses is refused early (the double hangs when one is exhausted). Every ENI made is
tagged with this instance and its group set, so a restarted agent finds and reuses it;
allocations are kept in a locked file like the local provider's. Assignment on one ENI
is serialised by a per-ENI lock, so concurrent launches never take the same IP.
Released addresses are unassigned, and ENIs left without any deleted, only after a
grace period (`sweep`), so that a quick relaunch does not pay for a new ENI. EC2 calls go
through botocore's adaptive retries (throttling: `RequestLimitExceeded`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from titus.agent.network.firewall import Rule, UnknownGroupError
from titus.agent.network.provider import Allocation, AllocationFile, NetworkError

TAG_INSTANCE = "titus:instance"
TAG_GROUPS = "titus:groups"
RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 8})


def ec2_client(region: str) -> Any:
    """An EC2 client with adaptive retries (the environment says where and who)."""
    return boto3.client("ec2", region_name=region, config=RETRY_CONFIG)


def group_key(groups: Sequence[str]) -> str:
    return ",".join(sorted(set(groups)))


class VpcProvider:
    def __init__(
        self,
        ec2: Any,
        instance_id: str,
        subnet_id: str,
        state_file: Path,
        release_grace_sec: float = 120.0,
        subnet_reserve: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.ec2 = ec2
        self.instance_id = instance_id
        self.subnet_id = subnet_id
        self.file = AllocationFile(state_file)
        self.grace = release_grace_sec
        self.reserve = subnet_reserve
        self.clock = clock
        self._lock = threading.Lock()
        self._eni_locks: dict[str, threading.Lock] = {}
        self._released: dict[tuple[str, str], float] = {}  # (eni, ip) -> release time
        subnet = self._call("describe_subnets", SubnetIds=[subnet_id])["Subnets"][0]
        self.cidr = str(subnet["CidrBlock"])
        instance = self._call("describe_instances", InstanceIds=[instance_id])
        itype = instance["Reservations"][0]["Instances"][0]["InstanceType"]
        info = self._call("describe_instance_types", InstanceTypes=[itype])
        net = info["InstanceTypes"][0]["NetworkInfo"]
        self.max_enis = int(net["MaximumNetworkInterfaces"])
        self.ips_per_eni = int(net["Ipv4AddressesPerInterface"])

    def _call(self, name: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.ec2, name)(**kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code.startswith("InvalidGroup"):
                groups = kwargs.get("GroupIds") or kwargs.get("Groups") or []
                raise UnknownGroupError(groups) from e
            raise NetworkError(f"EC2 {name}: {code}: {e}") from e
        except BotoCoreError as e:
            raise NetworkError(f"EC2 {name}: {e}") from e

    def _enis(self) -> list[dict[str, Any]]:
        found = self._call(
            "describe_network_interfaces",
            Filters=[{"Name": "attachment.instance-id", "Values": [self.instance_id]}],
        )
        return list(found["NetworkInterfaces"])

    def _eni_lock(self, eni_id: str) -> threading.Lock:
        with self._lock:
            return self._eni_locks.setdefault(eni_id, threading.Lock())

    def rules(self, groups: Sequence[str]) -> list[Rule]:
        """Inbound rules of `groups` as EC2 describes them (a GroupSource)."""
        described = self._call("describe_security_groups", GroupIds=list(groups))
        rules: list[Rule] = []
        for group in described["SecurityGroups"]:
            for perm in group.get("IpPermissions", []):
                proto = str(perm.get("IpProtocol", "-1"))
                proto = "all" if proto == "-1" else proto
                start, end = int(perm.get("FromPort", 0)), int(perm.get("ToPort", 65535))
                if proto in ("all", "icmp"):
                    start, end = 0, 65535
                for r in perm.get("IpRanges", []):
                    rules.append(Rule(proto, start, end, str(r["CidrIp"])))
        return rules

    def _eni_for(self, groups: Sequence[str], enis: list[dict[str, Any]]) -> dict[str, Any]:
        """An ENI of this group set with room for one more IP, attached when needed."""
        key = group_key(groups)
        for eni in enis:
            tags = {t["Key"]: t["Value"] for t in eni.get("TagSet", [])}
            if tags.get(TAG_GROUPS) == key and len(eni["PrivateIpAddresses"]) < self.ips_per_eni:
                return eni
        if len(enis) >= self.max_enis:
            raise NetworkError(
                f"instance {self.instance_id} has its {self.max_enis} ENIs and none of group "
                f"set [{key}] has room",
                transient=False,
            )
        if groups:
            self._call("describe_security_groups", GroupIds=list(groups))
        self._guard_subnet(1)
        created = self._call(
            "create_network_interface",
            SubnetId=self.subnet_id,
            Groups=list(groups),
            TagSpecifications=[
                {
                    "ResourceType": "network-interface",
                    "Tags": [
                        {"Key": TAG_INSTANCE, "Value": self.instance_id},
                        {"Key": TAG_GROUPS, "Value": key},
                    ],
                }
            ],
        )["NetworkInterface"]
        taken = {int(e["Attachment"]["DeviceIndex"]) for e in enis if e.get("Attachment")}
        index = next(i for i in range(self.max_enis + 1) if i not in taken)
        self._call(
            "attach_network_interface",
            NetworkInterfaceId=created["NetworkInterfaceId"],
            InstanceId=self.instance_id,
            DeviceIndex=index,
        )
        created["Attachment"] = {"DeviceIndex": index}
        return dict(created)

    def _guard_subnet(self, need: int) -> None:
        subnet = self._call("describe_subnets", SubnetIds=[self.subnet_id])["Subnets"][0]
        if int(subnet["AvailableIpAddressCount"]) - need < self.reserve:
            raise NetworkError(f"subnet {self.subnet_id} is nearly out of addresses")

    def allocate(self, task_id: str, security_groups: Sequence[str]) -> Allocation:
        with self.file.locked() as table:
            if task_id in table:
                return table[task_id]
            eni = self._eni_for(security_groups, self._enis())
            eni_id = str(eni["NetworkInterfaceId"])
            with self._eni_lock(eni_id):
                ip = self._reuse(eni_id) or self._assign(eni_id)
            allocation = Allocation(
                task_id=task_id,
                ip=ip,
                subnet=self.cidr,
                interface_id=eni_id,
                interface_index=int(eni["Attachment"]["DeviceIndex"]),
                security_groups=tuple(security_groups),
            )
            table[task_id] = allocation
            return allocation

    def _reuse(self, eni_id: str) -> str:
        """An address of `eni_id` released within its grace period, kept for reuse."""
        for eni, ip in list(self._released):
            if eni == eni_id:
                del self._released[(eni, ip)]
                return ip
        return ""

    def _assign(self, eni_id: str) -> str:
        self._guard_subnet(1)
        before = self._ips(eni_id)
        self._call(
            "assign_private_ip_addresses",
            NetworkInterfaceId=eni_id,
            SecondaryPrivateIpAddressCount=1,
        )
        new = self._ips(eni_id) - before
        if not new:
            raise NetworkError(f"no address was assigned on {eni_id}")
        return sorted(new)[0]

    def _ips(self, eni_id: str) -> set[str]:
        found = self._call("describe_network_interfaces", NetworkInterfaceIds=[eni_id])
        eni = found["NetworkInterfaces"][0]
        return {str(a["PrivateIpAddress"]) for a in eni["PrivateIpAddresses"] if not a["Primary"]}

    def release(self, task_id: str) -> None:
        with self.file.locked() as table:
            allocation = table.pop(task_id, None)
        if allocation is not None:
            with self._lock:
                self._released[(allocation.interface_id, allocation.ip)] = self.clock()

    def allocations(self) -> dict[str, Allocation]:
        with self.file.locked() as table:
            return dict(table)

    def sweep(self) -> None:
        """Unassign addresses released longer than the grace ago; then detach and delete
        this instance's tagged ENIs that hold no address of ours. Holds the allocation
        file's lock, so no launch is between making an ENI and taking its first address."""
        with self.file.locked():
            self._sweep()

    def _sweep(self) -> None:
        now = self.clock()
        with self._lock:
            due = [k for k, at in self._released.items() if now - at >= self.grace]
            for k in due:
                del self._released[k]
        for eni_id, ip in due:
            with self._eni_lock(eni_id):
                self._call(
                    "unassign_private_ip_addresses",
                    NetworkInterfaceId=eni_id,
                    PrivateIpAddresses=[ip],
                )
        with self._lock:
            held = {eni for eni, _ in self._released}
        for eni in self._enis():
            tags = {t["Key"]: t["Value"] for t in eni.get("TagSet", [])}
            secondary = [a for a in eni["PrivateIpAddresses"] if not a["Primary"]]
            if tags.get(TAG_INSTANCE) != self.instance_id or secondary:
                continue
            if eni["NetworkInterfaceId"] in held:
                continue
            self._call(
                "detach_network_interface",
                AttachmentId=eni["Attachment"]["AttachmentId"],
                Force=True,
            )
            self._call("delete_network_interface", NetworkInterfaceId=eni["NetworkInterfaceId"])
