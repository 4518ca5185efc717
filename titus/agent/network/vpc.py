"""The `vpc` provider: each task gets a secondary private IP on an ENI of this instance.

One ENI per distinct security-group set (more ENIs for a set when one is full), up to
the instance type's limits read from `describe_instance_types`. The cloud enforces
those limits, and that a group exists; the test double does not, so they are enforced
here too, before any call that would break them. A subnet about to run out of
addresses is refused early (the double hangs when one is exhausted). Every ENI made is
tagged with this instance and its group set; allocations are kept in a locked file
like the local provider's. Assignment on one ENI is serialised by a per-ENI lock, so
concurrent launches never take the same IP; an address EC2 hands out that this instance
already holds (on another ENI, or for another task) is given back and another asked
for. When every ENI slot is taken and none of the task's set has room, an ENI without
any task address (only addresses in their grace period) is deleted at once to make
room: the scheduler counts such an ENI's slot as free.

Released addresses are unassigned, and ENIs left idle deleted, only after a grace
period, so that a quick relaunch does not pay for a new ENI. `sweep` does that, bounded
per call; the agent calls it periodically (hook.py), so what a crash or a lost task left
behind goes too, not only what a task's end releases. A restarted agent finds its ENIs
by their tag (`describe_network_interfaces` with a tag filter): the addresses its
running tasks hold are adopted (from the allocation file, or from the address the
task's container has), every other address on them is released and goes after the
grace period, as does an allocation whose task no longer runs.

Security groups are read from EC2: address ranges as rules, and rules that name source
groups (UserIdGroupPairs) as the addresses of the ENIs in those groups, re-read by the
sweep. EC2 calls go through botocore's adaptive retries (throttling:
`RequestLimitExceeded`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from titus.agent.metrics import (
    NETWORK_ADOPTED,
    NETWORK_ENIS_DELETED,
    NETWORK_IN_GRACE,
    NETWORK_RELEASED,
)
from titus.agent.network.firewall import Rule, UnknownGroupError
from titus.agent.network.provider import Allocation, AllocationFile, NetworkError
from titus.model.names import eni_set_key

TAG_INSTANCE = "titus:instance"
TAG_GROUPS = "titus:groups"
RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 8})
#: Most addresses one source group stands for in a task's packet filter.
MAX_SOURCE_ADDRESSES = 1024
#: Tries for a secondary address that no other ENI or task of this instance holds.
MAX_ASSIGN_ATTEMPTS = 3

log = logging.getLogger(__name__)


def ec2_client(region: str) -> Any:
    """An EC2 client with adaptive retries (the environment says where and who)."""
    return boto3.client("ec2", region_name=region or None, config=RETRY_CONFIG)


def group_key(groups: Sequence[str]) -> str:
    return eni_set_key(groups)


def _tags(eni: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in eni.get("TagSet", [])}


def _secondary(eni: dict[str, Any]) -> list[str]:
    return [str(a["PrivateIpAddress"]) for a in eni["PrivateIpAddresses"] if not a["Primary"]]


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
        sweep_batch: int = 32,
    ):
        self.ec2 = ec2
        self.instance_id = instance_id
        self.subnet_id = subnet_id
        self.file = AllocationFile(state_file)
        self.grace = release_grace_sec
        self.reserve = subnet_reserve
        self.clock = clock
        self.batch = max(1, sweep_batch)
        self._lock = threading.Lock()
        self._eni_locks: dict[str, threading.Lock] = {}
        self._released: dict[tuple[str, str], float] = {}  # (eni, ip) -> release time
        self._idle_since: dict[str, float] = {}  # eni -> when it was first seen idle
        self._absent_since: dict[str, float] = {}  # task -> first seen not running
        subnet = self._call("describe_subnets", SubnetIds=[subnet_id])["Subnets"][0]
        self.cidr = str(subnet["CidrBlock"])
        instance = self._call("describe_instances", InstanceIds=[instance_id])
        itype = instance["Reservations"][0]["Instances"][0]["InstanceType"]
        info = self._call("describe_instance_types", InstanceTypes=[itype])
        net = info["InstanceTypes"][0]["NetworkInfo"]
        self.itype = str(itype)
        self.max_enis = int(net["MaximumNetworkInterfaces"])
        self.ips_per_eni = int(net["Ipv4AddressesPerInterface"])
        self.adopted = self._scan()

    # -- limits and what the scheduler is told ---------------------------------------------

    @property
    def task_enis(self) -> int:
        """ENIs tasks may use: the instance's limit less its own primary ENI."""
        return max(self.max_enis - 1, 0)

    @property
    def addresses_per_eni(self) -> int:
        """Task addresses on one ENI: its limit less the ENI's own primary address."""
        return max(self.ips_per_eni - 1, 0)

    def instance_type(self) -> str:
        return self.itype

    def task_slots(self) -> int:
        """Task addresses this host can hold: ENIs x addresses per ENI, primaries left out."""
        return self.task_enis * self.addresses_per_eni

    def published(self) -> dict[str, Any]:
        """The host's ENIs for the scheduler (`AgentInfo.network`): limits, and per
        security-group set the ENIs holding task addresses and how many they hold."""
        with self.file.locked() as table:
            allocations = list(table.values())
        enis: dict[str, set[str]] = {}
        used: dict[str, int] = {}
        for a in allocations:
            key = group_key(a.security_groups)
            enis.setdefault(key, set()).add(a.interface_id)
            used[key] = used.get(key, 0) + 1
        return {
            "maxEnis": self.task_enis,
            "ipsPerEni": self.addresses_per_eni,
            "sets": {key: [len(enis[key]), used[key]] for key in sorted(enis)},
        }

    # -- EC2 -------------------------------------------------------------------------------

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
        """ENIs attached to this instance, its primary one included (the limit counts it)."""
        found = self._call(
            "describe_network_interfaces",
            Filters=[{"Name": "attachment.instance-id", "Values": [self.instance_id]}],
        )
        return list(found["NetworkInterfaces"])

    def _tagged(self) -> list[dict[str, Any]]:
        """ENIs this instance made, attached or not (found by their tag)."""
        found = self._call(
            "describe_network_interfaces",
            Filters=[{"Name": f"tag:{TAG_INSTANCE}", "Values": [self.instance_id]}],
        )
        return list(found["NetworkInterfaces"])

    def _eni_lock(self, eni_id: str) -> threading.Lock:
        with self._lock:
            return self._eni_locks.setdefault(eni_id, threading.Lock())

    # -- security groups -------------------------------------------------------------------

    def rules(self, groups: Sequence[str]) -> list[Rule]:
        """Inbound rules of `groups` as EC2 describes them (a GroupSource): address
        ranges as they are, source groups as the addresses of their ENIs."""
        described = self._call("describe_security_groups", GroupIds=list(groups))
        rules: list[Rule] = []
        sources: dict[str, list[str]] = {}
        for group in described["SecurityGroups"]:
            for perm in group.get("IpPermissions", []):
                proto = str(perm.get("IpProtocol", "-1"))
                proto = "all" if proto == "-1" else proto
                start, end = int(perm.get("FromPort", 0)), int(perm.get("ToPort", 65535))
                if proto in ("all", "icmp"):
                    start, end = 0, 65535
                for r in perm.get("IpRanges", []):
                    rules.append(Rule(proto, start, end, str(r["CidrIp"])))
                for pair in perm.get("UserIdGroupPairs", []):
                    source = str(pair.get("GroupId", ""))
                    if not source:
                        continue
                    if source not in sources:
                        sources[source] = self.group_addresses(source)
                    rules.extend(Rule(proto, start, end, f"{ip}/32") for ip in sources[source])
        return rules

    def group_addresses(self, group: str) -> list[str]:
        """Every private address of the ENIs in `group` (tasks of any host in it)."""
        found = self._call(
            "describe_network_interfaces", Filters=[{"Name": "group-id", "Values": [group]}]
        )
        out: list[str] = []
        for eni in found["NetworkInterfaces"]:
            out.extend(str(a["PrivateIpAddress"]) for a in eni.get("PrivateIpAddresses", []))
        return sorted(set(out))[:MAX_SOURCE_ADDRESSES]

    # -- allocation ------------------------------------------------------------------------

    def _eni_for(
        self, groups: Sequence[str], enis: list[dict[str, Any]], table: dict[str, Allocation]
    ) -> dict[str, Any]:
        """An ENI of this group set with room for one more IP, attached when needed.
        `table`: the allocations (the caller holds the file's lock)."""
        key = group_key(groups)
        for eni in enis:
            if (
                _tags(eni).get(TAG_GROUPS) == key
                and len(eni["PrivateIpAddresses"]) < self.ips_per_eni
            ):
                return eni
        if len(enis) >= self.max_enis:
            if not self._reclaim(enis, table):
                raise NetworkError(
                    f"instance {self.instance_id} has its {self.max_enis} ENIs and none of "
                    f"group set [{key}] has room",
                    transient=False,
                )
            enis = self._enis()
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

    def _reclaim(self, enis: list[dict[str, Any]], table: dict[str, Allocation]) -> bool:
        """Delete one of this instance's ENIs that holds no task address (only addresses
        in their grace period): its slot is wanted for another set."""
        busy = {a.interface_id for a in table.values()}
        for eni in enis:
            eni_id = str(eni["NetworkInterfaceId"])
            if _tags(eni).get(TAG_INSTANCE) != self.instance_id or eni_id in busy:
                continue
            self._delete(eni)
            return True
        return False

    def _guard_subnet(self, need: int) -> None:
        subnet = self._call("describe_subnets", SubnetIds=[self.subnet_id])["Subnets"][0]
        if int(subnet["AvailableIpAddressCount"]) - need < self.reserve:
            raise NetworkError(f"subnet {self.subnet_id} is nearly out of addresses")

    def allocate(self, task_id: str, security_groups: Sequence[str]) -> Allocation:
        with self.file.locked() as table:
            if task_id in table:
                return table[task_id]
            enis = self._enis()
            eni = self._eni_for(security_groups, enis, table)
            eni_id = str(eni["NetworkInterfaceId"])
            held = {a.ip for a in table.values()}
            held.update(str(a["PrivateIpAddress"]) for e in enis for a in e["PrivateIpAddresses"])
            with self._eni_lock(eni_id):
                ip = self._reuse(eni_id) or self._assign(eni_id, held)
            allocation = Allocation(
                task_id=task_id,
                ip=ip,
                subnet=self.cidr,
                interface_id=eni_id,
                interface_index=int(eni["Attachment"]["DeviceIndex"]),
                security_groups=tuple(security_groups),
            )
            table[task_id] = allocation
            with self._lock:
                self._idle_since.pop(eni_id, None)
            return allocation

    def _reuse(self, eni_id: str) -> str:
        """An address of `eni_id` released within its grace period, kept for reuse."""
        with self._lock:
            for eni, ip in list(self._released):
                if eni == eni_id:
                    del self._released[(eni, ip)]
                    return ip
        return ""

    def _assign(self, eni_id: str, held: set[str]) -> str:
        """One new secondary address on `eni_id`. An address the cloud hands out that
        this instance already holds elsewhere (another ENI's, or a task's) is given back
        and another asked for: two containers with one address would each see the
        other's traffic, and the cloud's answer is not taken on trust."""
        for _ in range(MAX_ASSIGN_ATTEMPTS):
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
            clash = sorted(new & held)
            if not clash:
                return sorted(new)[0]
            log.warning("EC2 assigned %s on %s, already held on this instance", clash, eni_id)
            self._call(
                "unassign_private_ip_addresses",
                NetworkInterfaceId=eni_id,
                PrivateIpAddresses=sorted(new),
            )
        raise NetworkError(
            f"EC2 assigned on {eni_id} only addresses this instance already holds "
            f"({MAX_ASSIGN_ATTEMPTS} tries)"
        )

    def _ips(self, eni_id: str) -> set[str]:
        found = self._call("describe_network_interfaces", NetworkInterfaceIds=[eni_id])
        return set(_secondary(found["NetworkInterfaces"][0]))

    def release(self, task_id: str) -> None:
        with self.file.locked() as table:
            allocation = table.pop(task_id, None)
        if allocation is not None:
            with self._lock:
                self._released[(allocation.interface_id, allocation.ip)] = self.clock()
                self._absent_since.pop(task_id, None)

    def allocations(self) -> dict[str, Allocation]:
        with self.file.locked() as table:
            return dict(table)

    # -- adoption after a restart ----------------------------------------------------------

    def _scan(self) -> int:
        """At start: every address on this instance's tagged ENIs that no allocation holds
        is released now (it goes after the grace period unless a running task is found to
        hold it); returns how many addresses allocations hold there."""
        now = self.clock()
        with self.file.locked() as table:
            held = {(a.interface_id, a.ip) for a in table.values()}
        adopted = 0
        with self._lock:
            for eni in self._tagged():
                eni_id = str(eni["NetworkInterfaceId"])
                for ip in _secondary(eni):
                    if (eni_id, ip) in held:
                        adopted += 1
                    else:
                        self._released.setdefault((eni_id, ip), now)
        NETWORK_ADOPTED.inc(adopted)
        return adopted

    def adopt(self, task_id: str, ip: str, security_groups: Sequence[str]) -> Allocation | None:
        """A running task found with address `ip` that the allocation file does not know
        (the file was lost or never written): take it back from the released addresses
        if it is on one of this instance's ENIs."""
        with self.file.locked() as table:
            if task_id in table:
                return table[task_id]
            with self._lock:
                found = next(((e, i) for e, i in self._released if i == ip), None)
                if found is None:
                    return None
                del self._released[found]
            eni_id = found[0]
            index = 0
            for eni in self._enis():
                if eni["NetworkInterfaceId"] == eni_id and eni.get("Attachment"):
                    index = int(eni["Attachment"]["DeviceIndex"])
            allocation = Allocation(
                task_id=task_id,
                ip=ip,
                subnet=self.cidr,
                interface_id=eni_id,
                interface_index=index,
                security_groups=tuple(security_groups),
            )
            table[task_id] = allocation
        NETWORK_ADOPTED.inc()
        return allocation

    def release_absent(self, running: Iterable[str]) -> list[str]:
        """Release the allocations of tasks that have not been running for the grace
        period (a task that ended while no agent ran, or whose end was lost)."""
        now = self.clock()
        alive = set(running)
        gone: list[str] = []
        with self.file.locked() as table:
            tasks = list(table)
        with self._lock:
            for task_id in list(self._absent_since):
                if task_id in alive or task_id not in tasks:
                    del self._absent_since[task_id]
            for task_id in tasks:
                if task_id in alive:
                    continue
                since = self._absent_since.setdefault(task_id, now)
                if now - since >= self.grace:
                    gone.append(task_id)
        for task_id in gone:
            self.release(task_id)
        return gone

    # -- the sweep -------------------------------------------------------------------------

    def sweep(self) -> None:
        """Unassign addresses released longer than the grace ago, then detach and delete
        this instance's tagged ENIs idle (no task address, none in grace) for the grace
        period; at most `sweep_batch` of each per call. An address found on a tagged ENI
        that nobody holds (a launch that crashed between EC2 and the file) is released
        now. Holds the allocation file's lock, so no launch is between making an ENI and
        taking its first address."""
        with self.file.locked() as table:
            self._sweep({(a.interface_id, a.ip) for a in table.values()})

    def _sweep(self, held: set[tuple[str, str]]) -> None:
        now = self.clock()
        with self._lock:
            due = sorted(
                (k for k, at in self._released.items() if now - at >= self.grace),
                key=lambda k: self._released[k],
            )[: self.batch]
        by_eni: dict[str, list[str]] = {}
        for eni_id, ip in due:
            by_eni.setdefault(eni_id, []).append(ip)
        for eni_id, ips in by_eni.items():
            with self._eni_lock(eni_id):
                try:
                    self._call(
                        "unassign_private_ip_addresses",
                        NetworkInterfaceId=eni_id,
                        PrivateIpAddresses=ips,
                    )
                except NetworkError as e:
                    if "NotFound" not in str(e):
                        raise
            with self._lock:
                for ip in ips:
                    at = self._released.pop((eni_id, ip), now)
                    self._idle_since[eni_id] = min(self._idle_since.get(eni_id, at), at)
            NETWORK_RELEASED.inc(len(ips))
        busy = {eni for eni, _ in held}
        deleted = 0
        for eni in self._tagged():
            eni_id = str(eni["NetworkInterfaceId"])
            with self._lock:
                for ip in _secondary(eni):
                    if (eni_id, ip) not in held and (eni_id, ip) not in self._released:
                        self._released[(eni_id, ip)] = now  # nobody's: goes after the grace
                grace_held = any(e == eni_id for e, _ in self._released)
                if eni_id in busy or grace_held:
                    self._idle_since.pop(eni_id, None)
                    continue
                since = self._idle_since.setdefault(eni_id, now)
            if now - since >= self.grace and deleted < self.batch:
                self._delete(eni)
                deleted += 1
        with self._lock:
            NETWORK_IN_GRACE.set(len(self._released))

    def _delete(self, eni: dict[str, Any]) -> None:
        """Detach (when attached) and delete one ENI, forgetting its addresses in grace."""
        eni_id = str(eni["NetworkInterfaceId"])
        attachment = eni.get("Attachment") or {}
        if attachment.get("AttachmentId"):
            self._call(
                "detach_network_interface", AttachmentId=attachment["AttachmentId"], Force=True
            )
        self._call("delete_network_interface", NetworkInterfaceId=eni_id)
        with self._lock:
            for key in [k for k in self._released if k[0] == eni_id]:
                del self._released[key]
            self._idle_since.pop(eni_id, None)
        NETWORK_ENIS_DELETED.inc()
