"""Network benchmark: address allocation latency per task against moto (p50, p95),
container start with and without the network hook (same run, ratio), and bandwidth
achieved against a task's networkMbps.

    DOCKER_HOST=unix:///run/titus/docker.sock .venv/bin/python -m tests.bench.network

Needs root (namespaces, links, tc) and the platform's Docker engine with the busybox
image. The agents' hosts are network namespaces (tests/support/net_hosts.py); nothing
leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import docker
from moto.server import ThreadedMotoServer

from tests.support.docker_engine import run_task, task_spec, wait_for_report
from tests.support.net_hosts import HOST_BRIDGE, Subnet, sh
from titus.agent.daemon import AgentDaemon
from titus.agent.network.vpc import VpcProvider, ec2_client
from titus.agent.runtime import LABEL_AGENT
from titus.coord.local import LocalCoordinator
from titus.model.names import TaskContextKey
from titus.model.states import TaskState
from titus.settings import Settings

REGION = "us-east-1"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def allocation_latency(count: int) -> dict[str, float]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    try:
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.0.0/20")["Subnet"]["SubnetId"]
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        instance = ec2.run_instances(
            ImageId=image, InstanceType="m5.4xlarge", MinCount=1, MaxCount=1, SubnetId=subnet
        )["Instances"][0]["InstanceId"]
        sg = ec2.create_security_group(GroupName="b", Description="b", VpcId=vpc)["GroupId"]
        with tempfile.TemporaryDirectory() as tmp:
            p = VpcProvider(ec2_client(REGION), instance, subnet, Path(tmp) / "v.json", 0.0)
            took = []
            for i in range(count):
                began = time.perf_counter()
                p.allocate(f"t{i}", [sg])
                took.append((time.perf_counter() - began) * 1000)
                if i % 2:
                    p.release(f"t{i - 1}")
                    p.sweep()
        return {"alloc_p50_ms": pct(took, 0.5), "alloc_p95_ms": pct(took, 0.95)}
    finally:
        server.stop()


def agent(client: docker.DockerClient, data: Path, **network: Any) -> AgentDaemon:
    settings = Settings(
        data_dir=str(data), agent_id=f"bench-{uuid.uuid4().hex[:6]}", kill_grace_sec=1.0,
        **network,
    )  # fmt: skip
    daemon = AgentDaemon(settings, LocalCoordinator(), docker_client=client)
    daemon.start()
    return daemon


def start_times(daemon: AgentDaemon, count: int) -> list[float]:
    took = []
    for _ in range(count):
        spec = task_spec("sleep 30")
        began = time.perf_counter()
        run_task(daemon, spec, TaskState.STARTED)
        took.append((time.perf_counter() - began) * 1000)
        daemon.kill(spec.taskId)
        wait_for_report(daemon, spec.taskId, TaskState.FINISHED)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--allocations", type=int, default=40)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--mbps", type=int, default=80)
    args = parser.parse_args()
    out: dict[str, float] = allocation_latency(args.allocations)
    client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", ""))
    subnet = Subnet(tag=uuid.uuid4().hex[:6], cidr="100.64.9.0/24")
    sh("ip", "netns", "add", subnet.netns)
    subnet.namespaces.append(subnet.netns)
    daemons: list[AgentDaemon] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sh("ip", "-n", subnet.netns, "link", "add", "sub", "type", "bridge")
            sh("ip", "-n", subnet.netns, "link", "set", "sub", "up")
            net = {
                "agent_network_provider": "local",
                "agent_network_subnet": subnet.cidr,
                "agent_network_bridge": HOST_BRIDGE,
            }
            plain = agent(client, Path(tmp) / "plain")
            a = agent(client, Path(tmp) / "a", agent_network_pool="100.64.9.16/28",
                      agent_network_host_netns=subnet.host("a"), **net)  # fmt: skip
            b = agent(client, Path(tmp) / "b", agent_network_pool="100.64.9.32/28",
                      agent_network_host_netns=subnet.host("b"), **net)  # fmt: skip
            daemons += [plain, a, b]
            without = statistics.median(start_times(plain, args.starts))
            with_hook = statistics.median(start_times(a, args.starts))
            out.update(start_ms_without=without, start_ms_with=with_hook)
            out["start_ratio"] = with_hook / without
            wait = "until ip addr show eth0 | grep -q inet; do sleep 0.05; done; "
            sink = task_spec(wait + "nc -ll -p 9000 -e dd of=/dev/null")
            sink.container.resources.networkMbps = 1000
            ip = run_task(a, sink, TaskState.STARTED).context[TaskContextKey.CONTAINER_IP]
            sender = task_spec("sleep 60")
            sender.container.resources.networkMbps = args.mbps
            sent = run_task(b, sender, TaskState.STARTED)
            container = client.containers.get(sent.containerId)
            probe = f"until nc -w 1 {ip} 9000 </dev/null; do sleep 0.1; done"
            container.exec_run(["sh", "-c", probe])
            mib = max(4, args.mbps // 8)
            began = time.monotonic()
            container.exec_run(
                ["sh", "-c", f"dd if=/dev/zero bs=65536 count={mib * 16} | nc {ip} 9000"]
            )
            achieved = mib * 1048576 * 8 / 1e6 / (time.monotonic() - began)
            out.update(limit_mbps=args.mbps, achieved_mbps=achieved)
        finally:
            for d in daemons:
                label = {"label": f"{LABEL_AGENT}={d.agent_id}"}
                for c in client.containers.list(all=True, filters=label):
                    c.remove(force=True)
                d.stop()
            for ns in reversed(subnet.namespaces):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    print(json.dumps({k: round(v, 2) for k, v in out.items()}, indent=1))


if __name__ == "__main__":
    main()
