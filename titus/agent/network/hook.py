"""The network hook: a task's own address, link, packet filter and bandwidth on a host.

It runs after the container hook (it needs the container's process to find its network
namespace), so the task's process starts before its link has an address: a command that
needs the network waits for `eth0`'s address, which is given last, once the filters and
limits are in place. A container that ends before it is plumbed just ends (nothing is
left). Setup takes an address from the provider and plumbs the link; the task's context
then says `task.containerIp`, `task.networkInterfaceId` and `task.networkInterfaceIndex`.
A task that names security groups gets their rules as its link's packet filter
(firewall.py); a group nobody knows fails the launch as an invalid request. Its
`networkMbps` holds it both ways (bandwidth.py). A task with `allocateIP: false` gets
nothing (loopback only). After an agent restart `adopt` finds the address in the
provider's records and the link by its name; teardown removes the link and gives the
address back, so a task's end leaves nothing behind. An address or link that cannot be
had ends the launch as a transient system error: the master places the task again
without using up its retries.
"""

from __future__ import annotations

import logging
from pathlib import Path

from titus.agent.hooks import LaunchError, TaskContext, TaskHook
from titus.agent.host import agent_id
from titus.agent.metadata.netns import process_alive
from titus.agent.network import bandwidth, firewall
from titus.agent.network.firewall import GroupSource, LocalGroups, UnknownGroupError
from titus.agent.network.local import LocalPoolProvider
from titus.agent.network.plumbing import Plumbing
from titus.agent.network.provider import AddressProvider, Allocation, NetworkError
from titus.agent.network.vpc import VpcProvider, ec2_client
from titus.agent.runtime import DockerRuntime
from titus.model.names import TaskContextKey
from titus.model.states import Reason
from titus.settings import Settings

log = logging.getLogger(__name__)


class NetworkHook(TaskHook):
    name = "network"

    def __init__(
        self,
        runtime: DockerRuntime,
        provider: AddressProvider,
        plumbing: Plumbing,
        groups: GroupSource,
        burst_mbps: int = 0,
    ):
        self.runtime = runtime
        self.provider = provider
        self.plumbing = plumbing
        self.groups = groups
        self.burst_mbps = burst_mbps

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
                link = self.plumbing.attach(ctx.task_id, pid)
                mbps = container.resources.networkMbps
                if mbps > 0:
                    bandwidth.shape(pid, link, self.plumbing.host_netns, mbps, self.burst_mbps)
                if rules is not None:
                    firewall.apply(pid, rules)
                self.plumbing.address(pid, allocation)
            except BaseException:
                self.teardown(ctx)
                if pid > 0 and process_alive(pid):
                    raise
                return  # the container already ended: its exit is the task's outcome
        except UnknownGroupError as e:
            raise LaunchError(Reason.INVALID_REQUEST, str(e)) from e
        except NetworkError as e:
            reason = Reason.TRANSIENT_SYSTEM_ERROR if e.transient else Reason.LOCAL_SYSTEM_ERROR
            raise LaunchError(reason, f"network setup failed: {e}") from e
        self._describe(ctx, allocation)

    def adopt(self, ctx: TaskContext) -> None:
        allocation = self.provider.allocations().get(ctx.task_id)
        if allocation is not None:
            self._describe(ctx, allocation)

    def teardown(self, ctx: TaskContext) -> None:
        self.plumbing.detach(ctx.task_id)
        self.provider.release(ctx.task_id)
        try:
            self.provider.sweep()
        except NetworkError:
            log.warning("task %s: giving back released addresses failed", ctx.task_id)

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
        )
    subnet, pool = settings.agent_network_subnet, settings.agent_network_pool
    return LocalPoolProvider(subnet, pool, state / "local-pool.json")


def network_hooks(settings: Settings, runtime: DockerRuntime) -> list[TaskHook]:
    """The network hook when per-task networking is on, else none."""
    if settings.agent_network_provider == "none":
        return []
    plumbing = Plumbing(settings.agent_network_bridge, settings.agent_network_host_netns)
    provider = address_provider(settings)
    groups: GroupSource = (
        provider
        if isinstance(provider, VpcProvider)
        else LocalGroups(settings.agent_network_security_groups)
    )
    burst = settings.agent_network_burst_mbps
    return [NetworkHook(runtime, provider, plumbing, groups, burst)]


def container_network_mode(settings: Settings) -> str:
    """The engine network of task containers: none (a namespace of their own, which the
    hook plumbs) when per-task networking is on, else the engine's default."""
    return "" if settings.agent_network_provider == "none" else "none"
