"""`titus local` with per-task networking, as `make up` runs it: each task gets its own
address from the local pool, shown in its context; a task reaches another at that
address; and its metadata service says the same address. Bridge and pool are the test's
own, removed after."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.platform import Platform, running_platform

pytestmark = pytest.mark.docker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BRIDGE = "titusbr-e2e"


@pytest.fixture
def networked(tmp_path: Path) -> Iterator[Platform]:
    env = {
        "TITUS_AGENT_NETWORK_PROVIDER": "local",
        "TITUS_AGENT_NETWORK_BRIDGE": BRIDGE,
        "TITUS_AGENT_NETWORK_SUBNET": "100.64.99.0/24",
    }
    try:
        with running_platform(tmp_path, env) as p:
            yield p
    finally:
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)


def job(name: str, command: str, kind: str) -> dict[str, Any]:
    file = "service-web.json" if kind == "service" else "batch-hello.json"
    d: dict[str, Any] = json.loads((EXAMPLES / file).read_text())
    d.pop("jobGroupInfo", None)
    d["applicationName"] = name
    d["container"]["entryPoint"] = ["sh", "-c"]
    # no waiting for eth0: a task's command starts with its network ready (the start gate)
    d["container"]["command"] = [command]
    if kind == "service":
        d["service"]["capacity"] = {"min": 1, "desired": 1, "max": 1}
    return d


def test_each_task_gets_its_own_address_and_reaches_the_others(networked: Platform) -> None:
    p = networked
    server = p.submit(job("server", "while true; do echo hi | nc -l -p 8080; done", "service"))
    (task,) = p.wait_for("the server running", lambda: p.running(server))
    ip = task["taskContext"]["task.containerIp"]
    assert ip.startswith("100.64.99.") and ip != "100.64.99.1"

    engine = docker.DockerClient(base_url=p.env["DOCKER_HOST"])
    container = engine.containers.get(task["taskContext"]["task.containerId"])
    code, said = container.exec_run(
        ["wget", "-q", "-O", "-", "http://169.254.169.254/latest/meta-data/local-ipv4"]
    )
    assert (code, said.decode()) == (0, ip)

    reach = (
        f'for i in $(seq 50); do [ "$(nc -w 1 {ip} 8080)" = hi ] && exit 0; sleep 0.1; done; exit 1'
    )
    client = p.submit(job("client", reach, "batch"))
    done = p.wait_job_finished(client)
    (ended,) = p.tasks(client)
    assert ended["status"]["reasonCode"] == "normal", ended["status"]
    assert ended["taskContext"]["task.containerIp"] not in ("", ip)
    assert done["status"]["state"] == "Finished"
