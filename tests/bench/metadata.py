"""Metadata benchmark: a task's credentials through its metadata service, from inside its
container's network namespace, next to a direct STS call from the host in the same run;
and the service's memory per task.

    DOCKER_HOST=unix:///run/titus/docker.sock .venv/bin/python -m tests.bench.metadata

Needs root and the platform's Docker engine with the busybox image; STS and IAM are a moto
server on loopback. Figures:

- cached: `GET iam/security-credentials/<role>` (what an SDK asks after its token), each on
  a new connection as botocore makes them, timed inside the namespace;
- token + cached: the IMDSv2 pair (PUT token, then GET with it);
- uncached: a task's first fetch, i.e. the agent's AssumeRole at launch, against the same
  call made directly with boto3 from the host (the baseline);
- memory: resident growth of serving one more task (sockets, identity, loop state), over
  --tasks loopback sockets, and the Python heap growth per task (tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import boto3
import docker
from moto.server import ThreadedMotoServer

from tests.support.docker_engine import run_task, task_spec
from titus.agent.daemon import AgentDaemon
from titus.agent.metadata.credentials import CredentialSource, sts_client
from titus.agent.metadata.server import MetadataServer
from titus.agent.metadata.service import MetadataService, TaskIdentity
from titus.agent.metadata.tokens import TokenSigner
from titus.coord.local import LocalCoordinator
from titus.model.job import SecurityProfile
from titus.model.names import TaskContextKey
from titus.model.states import TaskState
from titus.settings import Settings

TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)
CLIENT = """
import http.client, json, sys, time
path, n, tokened = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
out = []
for _ in range(n):
    began = time.perf_counter()
    headers = {}
    if tokened:
        c = http.client.HTTPConnection("169.254.169.254", 80, timeout=5)
        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        c.request("PUT", "/latest/api/token", headers=ttl)
        headers["X-aws-ec2-metadata-token"] = c.getresponse().read().decode()
        c.close()
    c = http.client.HTTPConnection("169.254.169.254", 80, timeout=5)
    c.request("GET", path, headers=headers)
    body = c.getresponse().read()
    c.close()
    assert b"AccessKeyId" in body, body
    out.append(time.perf_counter() - began)
print(json.dumps(out))
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def in_namespace(pid: int, path: str, n: int, tokened: bool) -> list[float]:
    done = subprocess.run(
        [
            "nsenter",
            "-t",
            str(pid),
            "-n",
            sys.executable,
            "-c",
            CLIENT,
            path,
            str(n),
            "1" if tokened else "0",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return [float(x) for x in json.loads(done.stdout)]


def memory_per_task(tasks: int) -> tuple[float, float]:
    server = MetadataServer(MetadataService(TokenSigner(b"k" * 32), None))
    socks = []
    warm = socket.socket()
    warm.bind(("127.0.0.1", 0))
    warm.listen(8)
    server.serve(TaskIdentity("warm", {}, "z", "r", 0.0), warm)
    tracemalloc.start()
    heap0, rss0 = tracemalloc.get_traced_memory()[0], rss_kib()
    for i in range(tasks):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        socks.append(sock)
        server.serve(
            TaskIdentity(f"task-{i}", {TaskContextKey.CONTAINER_IP: "10.0.0.1"}, "z", "r", 0.0),
            sock,
        )
    heap1, rss1 = tracemalloc.get_traced_memory()[0], rss_kib()
    tracemalloc.stop()
    for i in range(tasks):
        server.stop_serving(f"task-{i}")
    server.stop_serving("warm")
    return (rss1 - rss0) / tasks, (heap1 - heap0) / 1024 / tasks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=500, help="sockets for the memory figure")
    args = parser.parse_args()

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    arn = boto3.client("iam").create_role(RoleName="bench", AssumeRolePolicyDocument=TRUST)["Role"][
        "Arn"
    ]

    # uncached: the agent's AssumeRole at launch against boto3 from the host
    sts = boto3.client("sts")
    direct, through = [], []
    source = CredentialSource(sts_client(""))
    for i in range(args.requests // 4):
        began = time.perf_counter()
        sts.assume_role(RoleArn=arn, RoleSessionName=f"direct-{i}", DurationSeconds=3600)
        direct.append(time.perf_counter() - began)
        began = time.perf_counter()
        source.prepare(f"task-{i}", arn)
        through.append(time.perf_counter() - began)
        source.forget(f"task-{i}")

    client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", ""))
    tmp = tempfile.mkdtemp(prefix="titus-bench-md-")
    agent = AgentDaemon(
        Settings(data_dir=tmp, agent_id="bench-md", agent_iam_provider="sts"),
        LocalCoordinator(),
        docker_client=client,
    )
    agent.start()
    cached: list[float] = []
    tokened: list[float] = []
    try:
        for _ in range(args.containers):
            spec = task_spec("sleep 600")
            container = spec.container.model_copy(
                update={"securityProfile": SecurityProfile(iamRole=arn)}
            )
            spec = spec.model_copy(update={"container": container})
            report = run_task(agent, spec, TaskState.STARTED)
            pid = int(
                client.containers.get(report.context[TaskContextKey.CONTAINER_ID]).attrs["State"][
                    "Pid"
                ]
            )
            path = "/latest/meta-data/iam/security-credentials/bench"
            cached += in_namespace(pid, path, args.requests, False)
            tokened += in_namespace(pid, path, args.requests, True)
            agent.kill(spec.taskId)
    finally:
        agent.stop()
        moto.stop()
    rss, heap = memory_per_task(args.tasks)
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'figure':44} {'p50 ms':>8} {'p95 ms':>8}")
    for name, values in (
        ("credentials GET through the service (cached)", cached),
        ("IMDSv2 token PUT + credentials GET (cached)", tokened),
        ("first fetch: agent AssumeRole (uncached)", through),
        ("baseline: boto3 AssumeRole from the host", direct),
    ):
        print(f"{name:44} {pct(values, 0.5):8.2f} {pct(values, 0.95):8.2f}")
    ratio = statistics.median(cached) / statistics.median(direct)
    print(f"cached fetch / direct STS call (p50): {ratio:.3f}")
    print(f"memory per served task: {rss:.1f} KiB resident, {heap:.1f} KiB Python heap")


if __name__ == "__main__":
    main()
