"""What a job may ask of the host's isolation, and what it may never get.

A job speaks to the agent through attributes, as Titus jobs did: the job's attributes,
its container's attributes and its security profile's attributes, all read the same way.
Keys are `titusParameter.agent.<name>`; the bare `<name>` is read too, because clients
written against other platforms send it that way, and a refusal must not be dodged by
leaving out a prefix.

Granted on request:
- `allowCpuBursting=true`: no CFS quota, only shares: the task may use idle cores.
- `capabilities.add=SYS_PTRACE,SYS_NICE`: capabilities beyond the default set, each one on
  the host's allow-list (anything else is refused, never silently dropped).
- `readOnlyRootFs=true`: the container's root filesystem is mounted read-only (a small
  tmpfs on /tmp keeps ordinary programs working).

Refused with `invalidRequest`, whatever the value says, because each one hands the task
the host: privileged mode (`privileged`), the host's namespaces (`networkMode=host`,
`pidMode=host`, `ipcMode=host`, `utsMode=host`, `userNsMode=host`) and any host path
(`hostPath`, `hostPaths`, `bindMounts`, `volumes`, `mounts`, `devices`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from titus.agent.hooks import LaunchError
from titus.model.launch import TaskSpec
from titus.model.names import AGENT_PARAMETER_PREFIX
from titus.model.states import Reason

PREFIX = AGENT_PARAMETER_PREFIX
ALLOW_CPU_BURSTING = "allowCpuBursting"
CAPABILITIES_ADD = "capabilities.add"
READ_ONLY_ROOT_FS = "readOnlyRootFs"

# Capabilities a job may add by name. Each is useful to ordinary programs (debuggers,
# real-time priorities, locked memory, audit records) and none lets a process leave its
# namespaces or reconfigure the host: SYS_ADMIN, NET_ADMIN, SYS_MODULE, SYS_RAWIO,
# DAC_READ_SEARCH, SYS_BOOT, MAC_ADMIN... are never on it. NET_RAW is not either while
# containers share one bridge: raw sockets there let a task forge its neighbours'
# addresses and answer for them (ARP), which only a network of its own per task prevents.
DEFAULT_CAP_ALLOW_LIST: tuple[str, ...] = (
    "AUDIT_WRITE",
    "IPC_LOCK",
    "SYS_NICE",
    "SYS_PTRACE",
)

_HOST_NAMESPACE_KEYS = ("networkMode", "pidMode", "ipcMode", "utsMode", "userNsMode")
_HOST_PATH_KEYS = ("hostPath", "hostPaths", "bindMounts", "volumes", "mounts", "devices")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def _attributes(spec: TaskSpec) -> dict[str, str]:
    """All attributes a task carries, keyed by their name without the agent prefix."""
    merged: dict[str, str] = {}
    c = spec.container
    for source in (spec.jobAttributes, c.attributes, c.securityProfile.attributes):
        for key, value in source.items():
            name = key[len(PREFIX) :] if key.startswith(PREFIX) else key
            merged[name.lower()] = str(value)
    return merged


@dataclass(frozen=True)
class ContainerPolicy:
    """The isolation choices one task gets, decided before its container is made."""

    cpu_bursting: bool = False
    cap_add: tuple[str, ...] = ()
    read_only_root_fs: bool = False

    @classmethod
    def for_spec(cls, spec: TaskSpec, cap_allow_list: Iterable[str]) -> ContainerPolicy:
        """The task's policy; raises LaunchError(invalidRequest) for what is never granted."""
        attrs = _attributes(spec)
        if attrs.get("privileged", "").strip().lower() not in _FALSE:
            raise LaunchError(Reason.INVALID_REQUEST, "privileged containers are not allowed")
        for key in _HOST_NAMESPACE_KEYS:
            value = attrs.get(key.lower(), "")
            if value.strip().lower() == "host":
                raise LaunchError(
                    Reason.INVALID_REQUEST, f"{key}=host is not allowed: no host namespaces"
                )
        for key in _HOST_PATH_KEYS:
            if attrs.get(key.lower(), "").strip():
                raise LaunchError(
                    Reason.INVALID_REQUEST, f"{key} is not allowed: containers get no host paths"
                )
        allowed = {c.upper() for c in cap_allow_list}
        wanted: list[str] = []
        for raw in attrs.get(CAPABILITIES_ADD.lower(), "").split(","):
            name = raw.strip().upper().removeprefix("CAP_")
            if not name:
                continue
            if name not in allowed:
                raise LaunchError(
                    Reason.INVALID_REQUEST,
                    f"capability {name} is not allowed; allowed: {', '.join(sorted(allowed))}",
                )
            if name not in wanted:
                wanted.append(name)
        return cls(
            cpu_bursting=attrs.get(ALLOW_CPU_BURSTING.lower(), "").lower() in _TRUE,
            cap_add=tuple(wanted),
            read_only_root_fs=attrs.get(READ_ONLY_ROOT_FS.lower(), "").lower() in _TRUE,
        )
