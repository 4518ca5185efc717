"""The platform on Mesos as separate processes: `titus api`, two `titus master --cluster
mesos+zk://...` in ZooKeeper coordination, and the Mesos master double as its own process,
published in ZooKeeper the way Mesos publishes itself. The leader is killed outright; the
other master takes over as the same Mesos framework and keeps the running task.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.docker_engine import remove_agent_containers, start_docker_engine
from tests.support.mesos.fixture import MesosMasterProcess
from tests.support.platform import free_port
from tests.support.poll import wait_until
from tests.support.zookeeper import start_zookeeper

pytestmark = [pytest.mark.docker, pytest.mark.zookeeper, pytest.mark.timeout(240)]

TITUS = str(Path(sys.executable).parent / "titus")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def batch(command: str) -> dict[str, Any]:
    d: dict[str, Any] = json.loads((EXAMPLES / "batch-hello.json").read_text())
    d["container"]["entryPoint"] = ["sh", "-c", command]
    d["container"].pop("command", None)
    return d


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
    return wait_until(what, check, timeout, interval=0.2, retry_on=(httpx.HTTPError,))


class Processes:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [TITUS, *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(30)

    def stop_all(self) -> None:
        for name in list(self.procs):
            try:
                self.kill(name, signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.kill(name, signal.SIGKILL)


@pytest.fixture
def mesos_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    docker_host = start_docker_engine()
    zk = start_zookeeper()
    root = f"/titus-e2e-{uuid.uuid4().hex[:8]}"
    log_dir = tmp_path / "task-logs"
    # the double runs executors with its own environment, as a Mesos agent does
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    monkeypatch.setenv("TITUS_LOG_DIR", str(log_dir))
    monkeypatch.setenv("TITUS_KILL_GRACE_SEC", "1")
    double = MesosMasterProcess(
        "--heartbeat=0.5",
        "--allocation-interval=0.05",
        "--update-retry=2",
        "--grace=2",
        f"--work-dir={tmp_path / 'mesos'}",
        f"--zk={zk}",
        f"--zk-path={root}/mesos",
    )
    port = free_port()
    env = dict(os.environ)
    env.update(
        TITUS_DATA_DIR=str(tmp_path / "data"),
        TITUS_API_PORT=str(port),
        TITUS_COORD_SESSION_TIMEOUT_SEC="3",
        TITUS_MASTER_LOOP_INTERVAL_SEC="0.1",
        TITUS_MESOS_FAILOVER_TIMEOUT_SEC="3600",
        TITUS_MESOS_REFUSE_SEC="1",
    )
    coord = f"zk://{zk}{root}/coord"
    procs = Processes(tmp_path)
    procs.start("api", ["api", "--coord", coord], env)
    cluster = f"mesos+zk://{zk}{root}/mesos"
    for name in ("m1", "m2"):
        procs.start(name, ["master", "--coord", coord, "--cluster", cluster, "--id", name], env)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
    wait_for("the API", lambda: http.get("/health").status_code == 200)
    try:
        yield {"http": http, "double": double, "procs": procs, "log_dir": log_dir}
    finally:
        procs.stop_all()
        double.stop()
        http.close()
        client = docker.DockerClient(base_url=docker_host)
        for agent in double_agent_ids(tmp_path / "mesos"):
            remove_agent_containers(client, agent)
        client.close()


def double_agent_ids(work_dir: Path) -> set[str]:
    return {p.name for p in (work_dir / "slaves").glob("*")} if work_dir.exists() else set()


def tasks_of(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    r = http.get("/api/v3/tasks", params={"jobIds": job_id, "pageSize": "100"})
    return list(r.json()["items"])


def job_state(http: httpx.Client, job_id: str) -> str:
    return str(http.get(f"/api/v3/jobs/{job_id}").json()["status"]["state"])


def test_jobs_run_on_mesos_and_survive_the_leader_being_killed(
    mesos_platform: dict[str, Any],
) -> None:
    http: httpx.Client = mesos_platform["http"]
    double: MesosMasterProcess = mesos_platform["double"]
    procs: Processes = mesos_platform["procs"]

    quick = http.post("/api/v3/jobs", json=batch("echo hello over mesos; exit 0"))
    assert quick.status_code == 202, quick.text
    quick_id = quick.json()["id"]
    wait_for("the quick job to finish", lambda: job_state(http, quick_id) == "Finished")
    [done] = tasks_of(http, quick_id)
    assert done["status"]["reasonCode"] == "normal", done["status"]
    out = mesos_platform["log_dir"] / done["id"] / "stdout"
    assert "hello over mesos" in out.read_text()

    long = http.post("/api/v3/jobs", json=batch("echo up; sleep 600"))
    long_id = long.json()["id"]
    [task] = wait_for(
        "the long task to start",
        lambda: [t for t in tasks_of(http, long_id) if t["status"]["state"] == "Started"],
    )
    [framework] = double.state()["frameworks"]
    assert framework["connected"]

    # who leads? the master whose log says it leads; kill it outright
    leader = next(n for n in ("m1", "m2") if "leads with epoch" in procs.log(n))
    other = "m2" if leader == "m1" else "m1"
    procs.kill(leader)
    wait_for(
        f"{other} to subscribe as the same framework",
        lambda: "subscribed to Mesos as framework" in procs.log(other),
    )
    [again] = double.state()["frameworks"]
    assert again["id"] == framework["id"] and again["connected"]
    wait_for(
        "reconciliation by the new leader",
        lambda: "reconciliation done" in procs.log(other),
    )
    running = [t for t in tasks_of(http, long_id) if t["status"]["state"] == "Started"]
    assert [t["id"] for t in running] == [task["id"]]

    assert http.delete(f"/api/v3/jobs/{long_id}").status_code == 200
    wait_for("the long job to finish", lambda: job_state(http, long_id) == "Finished")
    [killed] = tasks_of(http, long_id)
    assert killed["status"]["reasonCode"] == "killed"
    assert not any(c["type"] == "TEARDOWN" for c in double.calls)
