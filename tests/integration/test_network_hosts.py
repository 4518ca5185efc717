"""Each task on its own address: containers on two agent hosts reach each other by IP.

Two agents, each with its own network namespace for a "host" (tests/support/net_hosts.py),
hand out addresses from disjoint pools of one subnet. A task's context says its address
and interface; a container on one host connects to a container on the other at that
address; and many launches and kills leave no address or link behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.docker_engine import AgentFactory, run_task, task_spec, wait_for_report
from tests.support.net_hosts import HOST_BRIDGE, WAIT_NET, Subnet, reaches, serve
from tests.support.platform import TITUS, free_port
from titus.agent.daemon import AgentDaemon
from titus.agent.network.hook import network_hooks
from titus.agent.network.plumbing import HOST_LINK_PREFIX, NetworkConfigError, link_type_unsupported
from titus.agent.runtime import DockerRuntime
from titus.model.names import TaskContextKey
from titus.model.states import TaskState
from titus.settings import Settings


def net_agent(
    factory: AgentFactory, subnet: Subnet, name: str, pool: str, **more: Any
) -> AgentDaemon:
    ns = subnet.host(name)
    return factory(
        agent_id=f"agent-{subnet.tag}-{name}",
        agent_network_provider="local",
        agent_network_subnet=subnet.cidr,
        agent_network_pool=pool,
        agent_network_host_netns=ns,
        agent_network_bridge=HOST_BRIDGE,
        **more,
    )


def test_containers_on_two_hosts_reach_each_other_by_their_own_ip(
    agent_factory: AgentFactory, net_subnet: Subnet, tmp_path: Any
) -> None:
    a = net_agent(agent_factory, net_subnet, "a", "100.64.7.16/28", data_dir=str(tmp_path / "a"))
    b = net_agent(agent_factory, net_subnet, "b", "100.64.7.32/28", data_dir=str(tmp_path / "b"))

    server = task_spec(WAIT_NET + "while true; do echo hello | nc -l -p 8080; done")
    started = run_task(a, server, TaskState.STARTED)
    ip = started.context[TaskContextKey.CONTAINER_IP]
    assert ip.startswith("100.64.7.") and 16 < int(ip.rsplit(".", 1)[1]) < 32
    assert started.context[TaskContextKey.NETWORK_INTERFACE_ID] == "local"
    assert started.context[TaskContextKey.NETWORK_INTERFACE_INDEX] == "0"

    client = task_spec(
        WAIT_NET + f'for i in $(seq 100); do [ "$(nc -w 1 {ip} 8080)" = hello ] && exit 0; '
        "sleep 0.1; done; exit 1"
    )
    done = run_task(b, client)
    assert done.exitCode == 0, done
    assert done.context[TaskContextKey.CONTAINER_IP] != ip

    a.kill(server.taskId)
    wait_for_report(a, server.taskId, TaskState.FINISHED)


def test_many_launches_and_kills_leave_no_address_or_link(
    agent_factory: AgentFactory, net_subnet: Subnet, tmp_path: Any
) -> None:
    agent = net_agent(
        agent_factory, net_subnet, "a", "100.64.7.16/28", data_dir=str(tmp_path / "a")
    )
    ns = net_subnet.namespaces[-1]
    for _ in range(3):
        specs = [task_spec("sleep 60") for _ in range(4)]
        for spec in specs:
            run_task(agent, spec, TaskState.STARTED)
        assert len(net_subnet.links(ns, HOST_LINK_PREFIX)) == 4
        for spec in specs:
            agent.kill(spec.taskId)
        for spec in specs:
            wait_for_report(agent, spec.taskId, TaskState.FINISHED)
    assert net_subnet.links(ns, HOST_LINK_PREFIX) == []
    pool = tmp_path / "a" / "network" / "local-pool.json"
    assert pool.read_text().strip() in ("{}", "")


def test_a_restarted_agent_adopts_the_address_and_gives_it_back_at_the_end(
    agent_factory: AgentFactory, net_subnet: Subnet, tmp_path: Any
) -> None:
    settings = {"data_dir": str(tmp_path / "a")}
    first = net_agent(agent_factory, net_subnet, "a", "100.64.7.16/28", **settings)
    spec = task_spec("sleep 60")
    ip = run_task(first, spec, TaskState.STARTED).context[TaskContextKey.CONTAINER_IP]
    first.stop()
    ns = net_subnet.namespaces[-1]
    second = agent_factory(
        agent_id=first.agent_id,
        agent_network_provider="local",
        agent_network_subnet=net_subnet.cidr,
        agent_network_pool="100.64.7.16/28",
        agent_network_host_netns=ns,
        agent_network_bridge=HOST_BRIDGE,
        **settings,
    )
    other = task_spec("sleep 60")
    assert run_task(second, other, TaskState.STARTED).context[TaskContextKey.CONTAINER_IP] != ip
    second.kill(spec.taskId)
    second.kill(other.taskId)
    wait_for_report(second, spec.taskId, TaskState.FINISHED)
    wait_for_report(second, other.taskId, TaskState.FINISHED)
    assert net_subnet.links(ns, HOST_LINK_PREFIX) == []


SERVE = serve(8080, 9090)


def test_security_groups_let_in_the_ports_they_allow_and_no_others(
    agent_factory: AgentFactory, net_subnet: Subnet, tmp_path: Any
) -> None:
    groups = {"sg-web": [f"tcp:8000-8085:{net_subnet.cidr}"], "sg-dns": ["udp:53:0.0.0.0/0"]}
    a = net_agent(
        agent_factory,
        net_subnet,
        "a",
        "100.64.7.16/28",
        data_dir=str(tmp_path / "a"),
        agent_network_security_groups=groups,
    )
    b = net_agent(agent_factory, net_subnet, "b", "100.64.7.32/28", data_dir=str(tmp_path / "b"))
    server = task_spec(SERVE)
    server.container.securityProfile.securityGroups = ["sg-web", "sg-dns"]
    ip = run_task(a, server, TaskState.STARTED).context[TaskContextKey.CONTAINER_IP]

    assert run_task(b, task_spec(reaches(ip, 8080, tries=25))).exitCode == 0
    assert run_task(b, task_spec(reaches(ip, 9090))).exitCode == 1

    unknown = task_spec("sleep 1")
    unknown.container.securityProfile.securityGroups = ["sg-nobody"]
    refused = run_task(a, unknown)
    assert refused.reasonCode == "invalidRequest" and "sg-nobody" in refused.reasonMessage
    a.kill(server.taskId)
    wait_for_report(a, server.taskId, TaskState.FINISHED)
    assert net_subnet.links(net_subnet.namespaces[-2], HOST_LINK_PREFIX) == []


# a persistent listener whose every connection is read to its end and thrown away
SINK = "nc -ll -p 9000 -e dd of=/dev/null"


def transfer_mbps(agent: AgentDaemon, container_id: str, ip: str, megabytes: int) -> float:
    """Megabits (10^6 bits, as tc counts) per second of sending `megabytes` MiB from a
    container to ip:9000, timed inside the container: an exec's own start takes tenths of
    a second on a loaded host, which timing from outside would count as a slow link."""
    container = agent.client.containers.get(container_id)
    send = f"dd if=/dev/zero bs=65536 count={megabytes * 16} 2>/dev/null | nc {ip} 9000"
    result = container.exec_run(["busybox", "time", "sh", "-c", send])
    assert result.exit_code == 0, result.output
    timed = re.search(rb"real\s+(\d+)m\s*([\d.]+)s", result.output)
    assert timed is not None, result.output
    took = int(timed[1]) * 60 + float(timed[2])
    return megabytes * 65536 * 16 * 8 / 1e6 / took


def test_a_task_is_held_to_its_network_mbps_both_ways(
    agent_factory: AgentFactory, net_subnet: Subnet, tmp_path: Any
) -> None:
    a = net_agent(agent_factory, net_subnet, "a", "100.64.7.16/28", data_dir=str(tmp_path / "a"))
    b = net_agent(agent_factory, net_subnet, "b", "100.64.7.32/28", data_dir=str(tmp_path / "b"))
    sink = task_spec(WAIT_NET + SINK)
    sink.container.resources.networkMbps = 48
    sink_ip = run_task(a, sink, TaskState.STARTED).context[TaskContextKey.CONTAINER_IP]
    sender = task_spec("sleep 120")
    sender.container.resources.networkMbps = 80
    sent = run_task(b, sender, TaskState.STARTED)
    wide = task_spec(WAIT_NET + SINK)
    wide.container.resources.networkMbps = 1000
    wide_ip = run_task(a, wide, TaskState.STARTED).context[TaskContextKey.CONTAINER_IP]
    assert sent.containerId
    for ip in (sink_ip, wide_ip):
        listening = WAIT_NET + f"until nc -w 1 {ip} 9000 </dev/null; do sleep 0.1; done"
        probe = run_task(b, task_spec(listening))
        assert probe.exitCode == 0, probe.reasonMessage

    egress = transfer_mbps(b, sent.containerId, wide_ip, 10)  # the sender's own limit
    ingress = transfer_mbps(b, sent.containerId, sink_ip, 6)  # the receiver's limit
    assert 80 * 0.8 <= egress <= 80 * 1.2, egress
    assert 48 * 0.8 <= ingress <= 48 * 1.2, ingress


def test_a_tasks_command_starts_with_its_address_and_metadata_service_ready(
    agent_factory: AgentFactory, net_subnet: Subnet, tmp_path: Any
) -> None:
    """The command's first step has the task's own address and reads it from its metadata
    service, without waiting for either: the start gate (titus/agent/gate.py) holds the
    command until the network and metadata hooks are set up. Five times over, as a race
    would not lose every time."""
    agent = net_agent(
        agent_factory, net_subnet, "a", "100.64.7.16/28", data_dir=str(tmp_path / "a")
    )
    first_step = (
        "ip=$(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1); "
        '[ -n "$ip" ] && '
        '[ "$(wget -q -O- http://169.254.169.254/latest/meta-data/local-ipv4)" = "$ip" ]'
    )
    for _ in range(5):
        done = run_task(agent, task_spec(first_step))
        assert done.exitCode == 0, done.reasonMessage
        assert done.context[TaskContextKey.CONTAINER_IP].startswith("100.64.7."), done
    gates = Path(agent.settings.data_dir) / "gates" / agent.agent_id
    assert gates.is_dir() and list(gates.iterdir()) == []  # each went with its task


def test_tasks_that_end_at_once_leave_no_link(
    agent_factory: AgentFactory, net_subnet: Subnet, tmp_path: Any
) -> None:
    agent = net_agent(
        agent_factory, net_subnet, "a", "100.64.7.16/28", data_dir=str(tmp_path / "a")
    )
    for _ in range(5):
        done = run_task(agent, task_spec("exit 3"))
        assert done.exitCode == 3, done.reasonMessage
    assert net_subnet.links(net_subnet.namespaces[-1], HOST_LINK_PREFIX) == []


def test_a_task_that_ends_the_moment_it_has_its_address_still_reports_it(
    agent_factory: AgentFactory, net_subnet: Subnet, tmp_path: Any
) -> None:
    """The address is the last step of a container's networking: a process waiting for
    it (polling without a pause here) may end at once, and its address must not be lost
    from what the task reports because a step after it found the container gone."""
    agent = net_agent(
        agent_factory, net_subnet, "a", "100.64.7.16/28", data_dir=str(tmp_path / "a")
    )
    for _ in range(6):
        done = run_task(
            agent, task_spec("until ip addr show eth0 2>/dev/null | grep -q inet; do :; done")
        )
        assert done.exitCode == 0, done.reasonMessage
        assert done.context.get(TaskContextKey.CONTAINER_IP, "").startswith("100.64.7."), done


def test_ipvlan_is_refused_at_start_on_a_kernel_without_it_naming_the_setting(
    tmp_path: Any, docker_engine: Any
) -> None:
    """This kernel has no ipvlan links: the agent will not start with them, and says which
    setting to change; veth (the default) starts."""
    assert link_type_unsupported("ipvlan") != ""
    settings = Settings(
        agent_network_provider="local",
        agent_network_link_type="ipvlan",
        data_dir=str(tmp_path / "data"),
    )
    with pytest.raises(NetworkConfigError, match="TITUS_AGENT_NETWORK_LINK_TYPE"):
        network_hooks(settings, DockerRuntime(docker_engine))
    veth = settings.model_copy(update={"agent_network_link_type": "veth"})
    assert [h.name for h in network_hooks(veth, DockerRuntime(docker_engine))] == ["network"]

    env = {
        **os.environ,
        "TITUS_DATA_DIR": str(tmp_path / "cli"),
        "TITUS_AGENT_ID": f"ipvlan-{uuid.uuid4().hex[:6]}",
        "TITUS_AGENT_NETWORK_PROVIDER": "local",
        "TITUS_AGENT_NETWORK_BRIDGE": f"tvi{uuid.uuid4().hex[:8]}",
        "TITUS_AGENT_NETWORK_LINK_TYPE": "ipvlan",
        "TITUS_GRPC_PORT": "0",
    }
    done = subprocess.run(
        [TITUS, "local", "--port", str(free_port()), "--agent-port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "agent_network_link_type=ipvlan" in done.stderr, done.stderr[-2000:]
    assert "no ipvlan" in done.stderr
