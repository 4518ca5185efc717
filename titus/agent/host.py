"""What this host offers and how it describes itself to the master.

Resources come from settings when set, else from the machine: all its cores, 80% of its
memory (the rest stays for the host, the engine and the agent).
"""

from __future__ import annotations

import ipaddress
import os
import socket

from titus.agent.gpus import host_gpus
from titus.coord.base import AgentInfo
from titus.model import names
from titus.model.names import AgentContext
from titus.settings import Settings

MEMORY_SHARE = 0.8
# Task IP addresses offered when nothing else says how many: networking off, or until the
# vpc provider has read the instance type's limits (the network hook then says them).
IP_SLOTS = 32


def machine_memory_mb() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))


def agent_id(settings: Settings) -> str:
    return settings.agent_id or socket.gethostname()


def resources(settings: Settings) -> dict[str, float]:
    cpu = settings.agent_cpu or float(os.cpu_count() or 1)
    memory = settings.agent_memory_mb or int(machine_memory_mb() * MEMORY_SHARE)
    return {
        names.CPU: float(cpu),
        names.MEMORY_MB: float(memory),
        names.DISK_MB: float(settings.agent_disk_mb),
        names.NETWORK_MBPS: float(settings.agent_network_mbps),
        names.GPU: float(len(host_gpus(settings))),
        names.IP_SLOTS: float(ip_slots(settings)),
    }


def ip_slots(settings: Settings) -> int:
    """Task addresses this host offers: its local pool's size when per-task networking
    hands them out from one, else the fixed count (for vpc the network hook replaces it
    with the instance type's: ENIs x addresses per ENI, primaries left out)."""
    if settings.agent_network_provider != "local":
        return IP_SLOTS
    subnet, pool = settings.agent_network_subnet, settings.agent_network_pool
    hosts = ipaddress.ip_network(pool or subnet).num_addresses
    # the network and broadcast addresses, and the subnet's gateway when in the pool
    gateway = next(ipaddress.ip_network(subnet).hosts())
    return max(0, hosts - 2 - (gateway in ipaddress.ip_network(pool or subnet)))


def attributes(settings: Settings) -> dict[str, str]:
    return {
        "host": socket.gethostname(),
        "zone": settings.agent_zone,
        "region": settings.agent_region,
        "itype": settings.agent_instance_type,
        "instanceId": agent_id(settings),
        "machineGroup": settings.agent_machine_group,
    }


def agent_info(settings: Settings) -> AgentInfo:
    published = settings.agent_advertise_host or settings.agent_host
    return AgentInfo(
        id=agent_id(settings),
        address=f"http://{published}:{settings.agent_port}",
        resources=resources(settings),
        attributes=attributes(settings),
    )


def task_context(info: AgentInfo) -> dict[str, str]:
    """The `agent.*` part of every task report from this host."""
    a = info.attributes
    return {
        AgentContext.ID: info.id,
        AgentContext.HOST: a.get("host", ""),
        AgentContext.ZONE: a.get("zone", ""),
        AgentContext.REGION: a.get("region", ""),
        AgentContext.INSTANCE_ID: a.get("instanceId", ""),
        AgentContext.INSTANCE_TYPE: a.get("itype", ""),
    }
