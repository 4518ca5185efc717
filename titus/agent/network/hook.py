"""The network hook: a task's own address, link, packet filter and bandwidth on a host.

It runs after the container hook (it needs the container's process to find its network
namespace); the task's own command waits behind the start gate (gate.py) until this hook
and the metadata hook are set up, so its first step has its address. The address is
given last, once the filters and limits are in place. A container that ends before it
is plumbed (killed at once, or on a host without the gate's shell) just ends (nothing is
left). Setup takes an address from the provider and plumbs the link; the task's context
then says `task.containerIp`, `task.networkInterfaceId` and `task.networkInterfaceIndex`.
A task that names security groups gets their rules as its link's packet filter
(firewall.py); a group nobody knows fails the launch as an invalid request. Its
`networkMbps` holds it both ways (bandwidth.py). A task with `allocateIP: false` gets
nothing (loopback only). After an agent restart `adopt` finds the address in the
provider's records and the link by its name; teardown removes the link and gives the
address back, so a task's end leaves nothing behind. An address or link that cannot be
had ends the launch as a system error: the master places the task again without using
up its retries.

Agent-wide (`upkeep`, every `agent_network_sweep_interval_sec`): addresses of tasks that
no longer run are released, what is past its grace period goes back to the cloud (the
provider's `sweep`, bounded), and packet filters whose source groups now stand for other
addresses are loaded again. `describe_host` tells the master the host's task address
count and ENIs per security-group set, which the scheduler's ENI rule counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from titus.agent.hooks import LaunchError, TaskContext, TaskHook
from titus.agent.host import agent_id
from titus.agent.metadata.netns import process_alive
from titus.agent.metrics import NETWORK_SWEEP_SECONDS, NETWORK_SWEEPS
from titus.agent.network import bandwidth, firewall
from titus.agent.network.firewall import GroupSource, LocalGroups, UnknownGroupError
from titus.agent.network.local import LocalPoolProvider
from titus.agent.network.plumbing import NetworkConfigError, Plumbing, link_type_unsupported
from titus.agent.network.provider import AddressProvider, Allocation, NetworkError
from titus.agent.network.vpc import VpcProvider, ec2_client
from titus.agent.runtime import DockerRuntime
from titus.coord.base import AgentInfo
from titus.model import names
from titus.model.names import TaskContextKey
from titus.model.states import Reason
from titus.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class _Filtered:
    """A task whose packet filter this hook loaded: what to load it again from."""

    pid: int
    groups: tuple[str, ...]
    ruleset: str


class NetworkHook(TaskHook):
    name = "network"

    def __init__(
        self,
        runtime: DockerRuntime,
        provider: AddressProvider,
        plumbing: Plumbing,
        groups: GroupSource,
        burst_mbps: int = 0,
        sweep_interval_sec: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.runtime = runtime
        self.provider = provider
        self.plumbing = plumbing
        self.groups = groups
        self.burst_mbps = burst_mbps
        self.sweep_interval = sweep_interval_sec
        self.clock = clock
        self._last_sweep = clock()
        self._lock = threading.Lock()
        self._filtered: dict[str, _Filtered] = {}

    def _live_pid(self, ctx: TaskContext) -> int:
        """The container's process id; 0 when it no longer runs."""
        return self.runtime.pid(ctx.container_id or "")

    def _pid(self, ctx: TaskContext) -> int:
        pid = self._live_pid(ctx)
        if pid <= 0:
            raise NetworkError("the container has no running process to network")
        return pid

    def setup(self, ctx: TaskContext) -> None:
        container = ctx.spec.container
        if not container.resources.allocateIP:
            return
        groups = container.securityProfile.securityGroups
        try:
            rules = self.groups.rules(groups) if groups else None
            allocation = self.provider.allocate(ctx.task_id, groups)
            pid = 0
            try:
                pid = self._pid(ctx)
                link = self.plumbing.attach(ctx.task_id, pid, allocation)
                mbps = container.resources.networkMbps
                if mbps > 0:
                    bandwidth.shape(pid, link, self.plumbing.host_netns, mbps, self.burst_mbps)
                if rules is not None:
                    firewall.apply(pid, rules)
                    self._remember(ctx.task_id, pid, groups, rules)
                self.plumbing.address(pid, allocation)
            except BaseException:
                self.teardown(ctx)
                if pid > 0 and process_alive(pid):
                    raise
                return  # the container already ended: its exit is the task's outcome
        except UnknownGroupError as e:
            raise LaunchError(Reason.INVALID_REQUEST, str(e)) from e
        except NetworkError as e:
            # Either way a system error: the master places the task again without using
            # up the job's retries.
            reason = Reason.TRANSIENT_SYSTEM_ERROR if e.transient else Reason.LOCAL_SYSTEM_ERROR
            raise LaunchError(reason, f"network setup failed: {e}") from e
        self._describe(ctx, allocation)

    def adopt(self, ctx: TaskContext) -> None:
        """Find the task's address again: in the provider's records, else (records lost)
        the address its container's `eth0` has, if the provider can vouch for it. Its
        packet filter is loaded again at the next upkeep."""
        container = ctx.spec.container
        allocation = self.provider.allocations().get(ctx.task_id)
        pid = self._live_pid(ctx)
        if allocation is None and container.resources.allocateIP and pid > 0:
            ip = self.plumbing.container_address(pid)
            if ip:
                allocation = self.provider.adopt(
                    ctx.task_id, ip, container.securityProfile.securityGroups
                )
        if allocation is None:
            return
        groups = container.securityProfile.securityGroups
        if groups and pid > 0:
            with self._lock:
                self._filtered[ctx.task_id] = _Filtered(pid, tuple(groups), "")
        self._describe(ctx, allocation)

    def teardown(self, ctx: TaskContext) -> None:
        with self._lock:
            self._filtered.pop(ctx.task_id, None)
        self.plumbing.detach(ctx.task_id)
        # The address is kept for its grace period; the periodic sweep (upkeep) gives it
        # back, so a mass kill makes no burst of cloud calls.
        self.provider.release(ctx.task_id)

    # agent-wide

    def describe_host(self, info: AgentInfo) -> None:
        """Task addresses the host offers (the provider's count when it has one) and, for
        the scheduler, its ENIs per security-group set."""
        slots = self.provider.task_slots()
        if slots is not None:
            info.resources[names.IP_SLOTS] = float(slots)
        info.network = self.provider.published()
        itype = self.provider.instance_type()
        if itype:
            info.attributes["itype"] = itype

    def upkeep(self, running: Collection[str]) -> None:
        """Every `sweep_interval_sec`: release what tasks no longer running hold, give
        back what is past its grace period, and load again the packet filters whose
        source groups now stand for other addresses. Bounded by the provider's batch;
        counted in `titus_agent_network_sweeps_total` and timed."""
        now = self.clock()
        if now - self._last_sweep < self.sweep_interval:
            return
        self._last_sweep = now
        began = time.perf_counter()
        try:
            gone = self.provider.release_absent(running)
            for task_id in gone:
                log.warning("task %s no longer runs: its address is released", task_id)
            self.provider.sweep()
            self.refresh_filters()
        except NetworkError as e:
            NETWORK_SWEEPS.labels("failed").inc()
            log.warning("network sweep failed: %s", e)
            return
        finally:
            NETWORK_SWEEP_SECONDS.observe(time.perf_counter() - began)
        NETWORK_SWEEPS.labels("ok").inc()

    def refresh_filters(self) -> int:
        """Load again each running task's packet filter whose rules changed (a source
        group's members come and go); how many were loaded."""
        with self._lock:
            tasks = dict(self._filtered)
        resolved: dict[tuple[str, ...], list[firewall.Rule]] = {}
        loaded = 0
        for task_id, known in tasks.items():
            if known.groups not in resolved:
                resolved[known.groups] = self.groups.rules(known.groups)
            rules = resolved[known.groups]
            if firewall.ruleset(rules) == known.ruleset or not process_alive(known.pid):
                continue
            try:
                firewall.apply(known.pid, rules)
            except NetworkError as e:
                log.warning("task %s: loading its packet filter again failed: %s", task_id, e)
                continue
            self._remember(task_id, known.pid, known.groups, rules)
            loaded += 1
        return loaded

    def _remember(
        self, task_id: str, pid: int, groups: Sequence[str], rules: Sequence[firewall.Rule]
    ) -> None:
        with self._lock:
            self._filtered[task_id] = _Filtered(pid, tuple(groups), firewall.ruleset(rules))

    @staticmethod
    def _describe(ctx: TaskContext, allocation: Allocation) -> None:
        if ctx.container is not None:
            ctx.container.ip = allocation.ip
        ctx.context[TaskContextKey.CONTAINER_IP] = allocation.ip
        ctx.context[TaskContextKey.NETWORK_INTERFACE_ID] = allocation.interface_id
        ctx.context[TaskContextKey.NETWORK_INTERFACE_INDEX] = str(allocation.interface_index)


def address_provider(settings: Settings) -> VpcProvider | LocalPoolProvider:
    """The provider `agent_network_provider` names."""
    state = Path(settings.data_dir) / "network"
    if settings.agent_network_provider == "vpc":
        return VpcProvider(
            ec2_client(settings.agent_aws_region),
            agent_id(settings),
            settings.agent_network_vpc_subnet_id,
            state / "vpc.json",
            settings.agent_network_release_grace_sec,
            sweep_batch=settings.agent_network_sweep_batch,
        )
    subnet, pool = settings.agent_network_subnet, settings.agent_network_pool
    return LocalPoolProvider(subnet, pool, state / "local-pool.json", agent_id(settings))


def network_hooks(settings: Settings, runtime: DockerRuntime) -> list[TaskHook]:
    """The network hook when per-task networking is on, else none. A link type this
    kernel cannot make is refused here, at the agent's start (NetworkConfigError)."""
    if settings.agent_network_provider == "none":
        return []
    link_type = settings.agent_network_link_type
    why = link_type_unsupported(link_type, settings.agent_network_host_netns)
    if why:
        raise NetworkConfigError(
            f"agent_network_link_type={link_type} (TITUS_AGENT_NETWORK_LINK_TYPE) cannot be "
            f"used on this host: {why}; use veth"
        )
    plumbing = Plumbing(
        settings.agent_network_bridge,
        settings.agent_network_host_netns,
        link_type,
        settings.agent_network_ipvlan_parent,
    )
    provider = address_provider(settings)
    groups: GroupSource = (
        provider
        if isinstance(provider, VpcProvider)
        else LocalGroups(settings.agent_network_security_groups, provider.group_addresses)
    )
    return [
        NetworkHook(
            runtime,
            provider,
            plumbing,
            groups,
            settings.agent_network_burst_mbps,
            settings.agent_network_sweep_interval_sec,
        )
    ]


def container_network_mode(settings: Settings) -> str:
    """The engine network of task containers: none (a namespace of their own, which the
    hook plumbs) when per-task networking is on, else the engine's default."""
    return "" if settings.agent_network_provider == "none" else "none"
