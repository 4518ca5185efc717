"""Cluster configuration as the leader reads it: capacity groups (what each application
may use) and the lifecycle of instance groups (which hosts take new work).

Operators change both through the API, which stores them; the leader reads them again
every few seconds (`MasterConfig.cluster_config_refresh`) and keeps the last good copy
when a read fails, since placement must go on.
"""

from __future__ import annotations

import json
import logging

from titus.master.cluster import HostView
from titus.master.scheduler import CapacityGroup
from titus.store.base import JobStore

log = logging.getLogger("titus.master")

#: Instance group lifecycle states whose hosts take no new work.
PHASED_OUT = frozenset({"phasedOut", "removable"})
#: Host attribute naming its instance group.
ATTR_MACHINE_GROUP = "machineGroup"
#: Host attribute an agent sets ("true") once it asked the cloud to terminate its instance
#: (quarantine.py): anything placed there now would die with the host.
ATTR_TERMINATING = "terminating"


def schedulable(host: HostView, instance_groups: dict[str, str]) -> bool:
    """Whether a host may take new tasks: not when its instance group is phased out,
    nor when the host is being terminated (its tasks there would die with it)."""
    if host.attributes.get(ATTR_TERMINATING, "").lower() == "true":
        return False
    group = host.attributes.get(ATTR_MACHINE_GROUP, "")
    return instance_groups.get(group, "active") not in PHASED_OUT


def phased_out(instance_groups: dict[str, str]) -> set[str]:
    return {g for g, state in instance_groups.items() if state in PHASED_OUT}


def read_instance_groups(store: JobStore) -> dict[str, str] | None:
    """Each instance group's lifecycle state, or None when the store cannot say now."""
    try:
        return dict(store.list_instance_groups())
    except Exception as exc:  # keep the last known; placement must go on
        log.warning("cannot read instance groups: %s", exc)
        return None


def read_capacity_groups(store: JobStore) -> dict[str, CapacityGroup] | None:
    """The capacity groups by name, or None when the store cannot say now."""
    try:
        raw = store.list_capacity_groups()
    except Exception as exc:
        log.warning("cannot read capacity groups: %s", exc)
        return None
    groups = {}
    for name, value in raw.items():
        group = capacity_group(name, value)
        if group is not None:
            groups[group.name] = group
    return groups


def capacity_group(name: str, value: str) -> CapacityGroup | None:
    """A stored capacity group (the API's JSON document, Titus ApplicationSla fields)."""
    try:
        data = json.loads(value)
    except ValueError:
        log.warning("ignoring unreadable capacity group %s", name)
        return None
    if not isinstance(data, dict):
        return None
    tier = str(data.get("tier", "Flex"))
    return CapacityGroup(
        name=str(data.get("appName") or data.get("name") or name),
        tier="Critical" if tier.lower() == "critical" else "Flex",
        instance_cpu=float(data.get("instanceCPU", 0) or 0),
        instance_memory_mb=float(data.get("instanceMemoryMB", 0) or 0),
        instance_disk_mb=float(data.get("instanceDiskMB", 0) or 0),
        instance_network_mbps=float(
            data.get("instanceNetworkMbs", data.get("instanceNetworkMbps", 0)) or 0
        ),
        instance_gpu=float(data.get("instanceGPU", 0) or 0),
        instance_count=int(data.get("instanceCount", 0) or 0),
    )
