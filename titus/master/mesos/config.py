"""The Mesos framework's configuration: what `titus master --cluster mesos://...` is told.

The knobs an operator sets come from `titus.settings.Settings`, which defines each default
once; `MesosConfig`'s own defaults are read from there, so a config built by hand (tests,
benchmarks) and one built from the environment agree. The remaining fields are timings of
the protocol itself that no operator has needed to change.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from titus.settings import Settings

#: Executor module the agents run (`python -m titus.agent.mesos_executor`).
EXECUTOR_MODULE = "titus.agent.mesos_executor"

#: Settings with nothing but their defaults (no environment read), to take defaults from.
_DEFAULTS = Settings.model_construct()


def master_uri(url: str) -> str:
    """The pymesos form of a cluster URL: `mesos://host[:5050]` -> `host:5050`,
    `mesos+zk://zk1:2181,zk2:2181/mesos` -> `zk://zk1:2181,zk2:2181/mesos`."""
    if url.startswith("mesos+zk://"):
        rest = url[len("mesos+zk://") :]
        if "/" not in rest.strip("/"):
            raise ValueError(f"{url!r}: a mesos+zk:// URL names the ZooKeeper path, e.g. /mesos")
        return f"zk://{rest}"
    if url.startswith("mesos://"):
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"{url!r}: no master host")
        return f"{parts.hostname}:{parts.port or 5050}"
    raise ValueError(f"{url!r}: use mesos://host:5050 or mesos+zk://zk1:2181/mesos")


def default_executor_command() -> str:
    """This interpreter running the executor module: the agents share the platform's install."""
    return f"{shlex.quote(sys.executable)} -m {EXECUTOR_MODULE}"


@dataclass
class MesosConfig:
    """The framework's knobs (see the module docstring for where their defaults live)."""

    url: str
    framework_name: str = _DEFAULTS.mesos_framework_name
    user: str = _DEFAULTS.mesos_user
    role: str = _DEFAULTS.mesos_role
    failover_timeout: float = _DEFAULTS.mesos_failover_timeout_sec
    #: Refuse time of declined offers and of the unused part of accepted ones.
    refuse_seconds: float = _DEFAULTS.mesos_refuse_sec
    #: Offers not used for this long are declined, so Mesos may offer them afresh.
    offer_hold_seconds: float = 5.0
    reconcile_interval: float = _DEFAULTS.mesos_reconcile_interval_sec
    #: Explicit reconciliation is sent again for tasks still unanswered after this.
    reconcile_retry: float = 5.0
    #: No event (heartbeats come every 15 s) for this long: the connection is dead.
    heartbeat_timeout: float = 75.0
    #: Shell command of the executor; empty: `default_executor_command()`.
    executor_command: str = _DEFAULTS.mesos_executor_command
    #: Environment given to every executor (on top of what the agent gives it).
    executor_env: dict[str, str] = field(default_factory=dict)
    #: Host capacities Mesos does not offer: from agent attributes of the same name if any.
    network_mbps: float = float(_DEFAULTS.agent_network_mbps)
    ip_slots: float = 32.0
    #: Longest wait before connecting again after a lost connection (the backoff's cap).
    restart_backoff_max: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> MesosConfig:
        return cls(
            url=settings.cluster,
            framework_name=settings.mesos_framework_name,
            user=settings.mesos_user,
            role=settings.mesos_role,
            failover_timeout=settings.mesos_failover_timeout_sec,
            refuse_seconds=settings.mesos_refuse_sec,
            reconcile_interval=settings.mesos_reconcile_interval_sec,
            executor_command=settings.mesos_executor_command,
            network_mbps=float(settings.agent_network_mbps),
        )

    @property
    def command(self) -> str:
        """The executor command agents run."""
        return self.executor_command or default_executor_command()
