"""A multi-process titus cluster on this machine, for end-to-end tests and benchmarks.

`titus api`, two `titus master` and several `titus agent` processes, each started with
the same command an operator uses (see deploy/), sharing a ZooKeeper root of their own
(on the server scripts/zookeeper.sh starts) and one SQLite store file, all running
containers on the platform's Docker engine. Agents sit in different zones, as a
multi-zone cluster would. ZooKeeper sessions are short so failover takes seconds.

Processes can be killed the hard way (`kill -9`) and restarted; containers and ZooKeeper
nodes a test leaves are removed when it ends.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tests.support.docker_engine import start_docker_engine
from tests.support.platform import (
    TITUS,
    ApiHelpers,
    _remove_containers,
    free_port,
    spawn,
    stop_process,
)
from tests.support.zookeeper import start_zookeeper

#: What only the masters and the API hold; agent hosts get credentials of their own.
PLATFORM_ONLY = ("TITUS_CLUSTER_SECRET", "TITUS_CLUSTER_SECRET_FILE", "TITUS_COORD_AUTH")

#: Seconds ZooKeeper keeps a silent session: how long a killed leader holds on.
SESSION_TIMEOUT = 2.0


@dataclass
class Proc:
    name: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        self.proc = spawn(self.args, env, self.log_path)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, sig)
        self.proc = None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Cluster(ApiHelpers):
    wait_sec: ClassVar[float] = 90.0

    root: Path
    zookeeper: str
    zk_root: str
    env: dict[str, str]
    api_port: int
    procs: dict[str, Proc] = field(default_factory=dict)
    agents: list[str] = field(default_factory=list)
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def coord_url(self) -> str:
        return f"zk://{self.zookeeper}{self.zk_root}?session_timeout={SESSION_TIMEOUT}"

    @property
    def store_path(self) -> Path:
        return self.root / "data" / "titus.db"

    # ---- processes ----------------------------------------------------------------------
    def _add(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        p = Proc(name, args, self.root / f"{name}.log")
        self.procs[name] = p
        p.start(self.env if env is None else env)
        return p

    def start_api(self) -> None:
        self._add("api", ["api", "--coord", self.coord_url, "--port", str(self.api_port)])

    def start_master(self, name: str, metrics_port: int = 0) -> Proc:
        """A master; with `metrics_port`, serving its Prometheus metrics there."""
        env = {**self.env, "TITUS_MASTER_METRICS_PORT": str(metrics_port)}
        return self._add(name, ["master", "--coord", self.coord_url, "--id", name], env)

    def start_agent(self, name: str, zone: str, cpu: float = 4, memory_mb: int = 4096) -> Proc:
        if name not in self.agents:
            self.agents.append(name)
        args = [
            "agent",
            "--coord",
            self.coord_url,
            "--id",
            name,
            "--zone",
            zone,
            "--instance-type",
            "local.small",
            "--cpu",
            str(cpu),
            "--memory-mb",
            str(memory_mb),
            "--agent-port",
            str(free_port()),
        ]
        return self._add(name, args, self.agent_env(name))

    def agent_env(self, name: str) -> dict[str, str]:
        """An agent host's environment, as production has it: its own credentials
        (`titus agent-credentials`), neither the cluster secret nor the platform's
        ZooKeeper credentials."""
        credentials = self.root / f"credentials-{name}.json"
        if not credentials.exists():
            made = subprocess.run(
                [TITUS, "agent-credentials", name],
                env=self.env,
                capture_output=True,
                text=True,
                check=True,
            )
            credentials.write_text(made.stdout)
            credentials.chmod(0o600)
        env = {k: v for k, v in self.env.items() if k not in PLATFORM_ONLY}
        env["TITUS_AGENT_CREDENTIALS_FILE"] = str(credentials)
        env["TITUS_LOG_DIR"] = str(self.root / f"logs-{name}")
        return env

    def stop_all(self) -> None:
        for p in self.procs.values():
            p.kill(signal.SIGTERM)

    def logs(self) -> str:
        return "\n".join(
            f"==== {name}\n{p.logs()[-4000:]}" for name, p in self.procs.items() if p.log_path
        )

    # ---- coordination and store views ---------------------------------------------------
    @contextmanager
    def zk(self) -> Iterator[KazooClient]:
        """A ZooKeeper client with the cluster's credentials (its nodes are closed)."""
        auth = self.env.get("TITUS_COORD_AUTH", "")
        client = KazooClient(
            hosts=self.zookeeper, timeout=5.0, auth_data=[("digest", auth)] if auth else None
        )
        client.start(timeout=10)
        try:
            yield client
        finally:
            client.stop()
            client.close()

    def _zk_get(self, path: str) -> bytes | None:
        """A node's data, or None when there is none (an ephemeral node may go at any time,
        between any two calls)."""
        with self.zk() as client:
            try:
                data, _ = client.get(path)
            except NoNodeError:
                return None
            return bytes(data)

    def leader(self) -> str | None:
        """The id of the master that leads now, as published in ZooKeeper."""
        data = self._zk_get(f"{self.zk_root}/leader/address")
        return str(json.loads(data)["id"]) if data else None

    def registered_agents(self) -> list[str]:
        with self.zk() as client:
            path = f"{self.zk_root}/agents"
            return sorted(client.get_children(path)) if client.exists(path) else []

    def meta(self, key: str) -> Any:
        """A JSON record the leader keeps in the store's meta table (read-only access)."""
        conn = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True, timeout=30)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        finally:
            conn.close()
        return json.loads(row[0]) if row else None

    # ---- API helpers --------------------------------------------------------------------
    def submit(self, descriptor: dict[str, Any]) -> str:
        for _ in range(50):
            r = self.http.post("/api/v3/jobs", json=descriptor)
            if r.status_code == 429:  # the API's own rate limit: come back shortly
                time.sleep(0.2)
                continue
            assert r.status_code == 202, r.text
            return str(r.json()["id"])
        raise AssertionError("the API kept refusing with 429")

    def all_tasks(self, job_id: str) -> list[dict[str, Any]]:
        """Active and archived tasks of a job, straight from the store (read-only)."""
        conn = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute(
                "SELECT value FROM active_tasks WHERE job_id=? UNION ALL "
                "SELECT value FROM archived_tasks WHERE job_id=?",
                (job_id, job_id),
            ).fetchall()
        finally:
            conn.close()
        return [json.loads(r[0]) for r in rows]

    def wait_ready(self, agents: int) -> None:
        def ready() -> bool:
            r = self.http.get("/health")
            return (
                r.status_code == 200
                and bool(r.json().get("leader"))
                and len(self.registered_agents()) >= agents
            )

        self.wait_for("the cluster to come up", ready, timeout=60)


def make_cluster(tmp: Path, extra_env: dict[str, str] | None = None) -> Cluster:
    docker_host = start_docker_engine()
    zookeeper = start_zookeeper()
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DOCKER_HOST": docker_host,
        "TITUS_DATA_DIR": str(data),
        "TITUS_AGENT_DISK_MB": "1000000",
        "TITUS_KILL_GRACE_SEC": "2",
        "TITUS_AGENT_POLL_WAIT_SEC": "5",
        "TITUS_AGENT_LOST_AFTER_SEC": "10",
        "TITUS_MASTER_LOOP_INTERVAL_SEC": "0.2",
        "TITUS_MASTER_METRICS_PORT": "0",
        "TITUS_GRPC_PORT": "0",
        # bursts of submissions in tests are not what the API's rate limit is for
        "TITUS_RATE_LIMIT_BUCKETS": "[]",
        # as a real cluster runs: agents take signed calls only, ZooKeeper nodes are closed
        "TITUS_CLUSTER_SECRET": f"cluster-{uuid.uuid4().hex}",
        "TITUS_COORD_AUTH": f"titus:{uuid.uuid4().hex}",
        **(extra_env or {}),
    }
    return Cluster(
        root=tmp,
        zookeeper=zookeeper,
        zk_root=f"/titus-test/cluster-{uuid.uuid4().hex[:8]}",
        env=env,
        api_port=free_port(),
    )


def cleanup(cluster: Cluster) -> None:
    cluster.stop_all()
    for agent in cluster.agents:
        _remove_containers(cluster.env["DOCKER_HOST"], agent)
    # ephemeral nodes of sessions still closing may refuse the delete: they go on their own
    with cluster.zk() as client, suppress(Exception):
        client.delete(cluster.zk_root, recursive=True)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """API, two masters (m1 starts first and leads) and three agents in three zones."""
    c = make_cluster(tmp_path)
    try:
        c.start_api()
        c.start_master("m1")
        c.wait_for("m1 to lead", lambda: c.leader() == "m1", timeout=60)
        c.start_master("m2")
        prefix = f"e2e-{uuid.uuid4().hex[:6]}"
        for i, zone in enumerate(("zone-a", "zone-b", "zone-c")):
            c.start_agent(f"{prefix}-a{i}", zone)
        c.wait_ready(agents=3)
        yield c
    finally:
        cleanup(c)
