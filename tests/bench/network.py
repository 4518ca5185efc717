"""Network benchmark: address allocation latency per task against moto (p50, p95),
container start with and without the network hook (same run, ratio), for the local pool
and for the vpc provider (addresses from ENIs that moto holds), and bandwidth achieved
against a task's networkMbps. Each figure is measured `--runs` times (default 3); the
medians are printed last, with the load average.

    DOCKER_HOST=unix:///run/titus/docker.sock .venv/bin/python -m tests.bench.network

Needs root (namespaces, links, tc) and the platform's Docker engine with the busybox
image. The agents' hosts are network namespaces (tests/support/net_hosts.py); nothing
leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import docker
import httpx
from moto.server import ThreadedMotoServer

from tests.support.docker_engine import run_task, task_spec, wait_for_report
from tests.support.moto_server import EXAMPLE_IMAGE
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


def moto() -> ThreadedMotoServer:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    return server


def ec2_instance(cidr: str, itype: str) -> tuple[str, str, str]:
    """(instance, subnet, security group) in a new VPC whose subnet is `cidr`."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="100.64.0.0/16" if cidr.startswith("100.") else "10.30.0.0/16")
    vpc_id = vpc["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr)["Subnet"]["SubnetId"]
    image = EXAMPLE_IMAGE
    instance = ec2.run_instances(
        ImageId=image, InstanceType=itype, MinCount=1, MaxCount=1, SubnetId=subnet
    )["Instances"][0]["InstanceId"]
    name = uuid.uuid4().hex[:8]
    sg = ec2.create_security_group(GroupName=name, Description="b", VpcId=vpc_id)["GroupId"]
    return str(instance), str(subnet), str(sg)


def allocation_latency(count: int) -> dict[str, float]:
    instance, subnet, sg = ec2_instance("10.30.0.0/20", "m5.4xlarge")
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


def agent(client: docker.DockerClient, data: Path, **network: Any) -> AgentDaemon:
    network.setdefault("agent_id", f"bench-{uuid.uuid4().hex[:6]}")
    settings = Settings(data_dir=str(data), kill_grace_sec=1.0, **network)
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


def measure(client: docker.DockerClient, args: argparse.Namespace) -> dict[str, float]:
    # every run against an empty moto, so runs are alike
    httpx.post(os.environ["AWS_ENDPOINT_URL"] + "/moto-api/reset", timeout=30)
    out: dict[str, float] = allocation_latency(args.allocations)
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
            instance, vpc_subnet, _ = ec2_instance(subnet.cidr, "m5.4xlarge")
            v = agent(
                client, Path(tmp) / "v", agent_id=instance, agent_network_provider="vpc",
                agent_network_vpc_subnet_id=vpc_subnet, agent_aws_region=REGION,
                agent_network_bridge=HOST_BRIDGE, agent_network_host_netns=subnet.host("v"),
            )  # fmt: skip
            daemons += [plain, a, b, v]
            without = statistics.median(start_times(plain, args.starts))
            with_hook = statistics.median(start_times(a, args.starts))
            with_vpc = statistics.median(start_times(v, args.starts))
            out.update(start_ms_without=without, start_ms_with=with_hook)
            out["start_ratio"] = with_hook / without
            out.update(start_ms_with_vpc=with_vpc, start_ratio_vpc=with_vpc / without)
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
            # timed inside the container: an exec's own start is not the link's time
            send = f"dd if=/dev/zero bs=65536 count={mib * 16} 2>/dev/null | nc {ip} 9000"
            result = container.exec_run(["busybox", "time", "sh", "-c", send])
            timed = re.search(rb"real\s+(\d+)m\s*([\d.]+)s", result.output)
            if result.exit_code != 0 or timed is None:
                raise RuntimeError(f"the transfer failed: {result.output!r}")
            took = int(timed[1]) * 60 + float(timed[2])
            out.update(limit_mbps=args.mbps, achieved_mbps=mib * 1048576 * 8 / 1e6 / took)
        finally:
            # the agents first, so none tears a task down while its files are removed
            for d in daemons:
                d.stop()
            for d in daemons:
                label = {"label": f"{LABEL_AGENT}={d.agent_id}"}
                for c in client.containers.list(all=True, filters=label):
                    c.remove(force=True)
            for ns in reversed(subnet.namespaces):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--allocations", type=int, default=40)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--mbps", type=int, default=80)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", ""))
    server = moto()
    runs = []
    try:
        for n in range(max(1, args.runs)):
            figures = measure(client, args)
            runs.append(figures)
            print(f"run {n + 1}:", json.dumps({k: round(v, 2) for k, v in figures.items()}))
    finally:
        server.stop()
    median = {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps({"median_of_runs": len(runs), "loadavg": loadavg, **median}, indent=1))


if __name__ == "__main__":
    main()
