"""The multi-process cluster of tests/support/cluster.py, wired so faults can be injected.

Each master and agent reaches ZooKeeper through a ZkProxy of its own, so one process's
session can be cut until the server expires it without touching anyone else. Three
agents, one per zone, each open to a different fault:

- `a-plain`: on the platform's Docker engine, on loopback (kills, kills mid-launch), its
  wall clock under libfaketime (Debian's faketime, scripts/faketime.sh), so it can be
  stepped (`step_clock`) while its monotonic clocks stay real;
- `a-netns`: inside a network namespace of the suite's own (partitions from the master);
- `a-engine`: on a private dockerd that the suite stops and starts under it.

The store (SQLite) and every process's data directory sit on a small tmpfs, so the disk
can be filled. ZooKeeper is a server of the suite's own, so that it can be killed and
started again. `close()` stops every process, removes every container, ZooKeeper node,
namespace, engine and mount it made.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.chaos.netns import NetNamespace, TcpRelay
from tests.support.cluster import SESSION_TIMEOUT, Cluster, Proc, cleanup, make_cluster
from tests.support.cql.server import CqlServer
from tests.support.docker_engine import BUSYBOX, PrivateEngine
from tests.support.platform import TITUS, _remove_containers, free_port
from tests.support.setup_script import run_setup_script
from tests.support.zookeeper import PrivateZooKeeper, ZkProxy

#: Size of the tmpfs the store lives on: ample for the suite's jobs, quick to fill.
DISK_MB = 64
#: A container nobody owns is killed after this grace; leaks are checked after it.
ORPHAN_GRACE_SEC = 5.0

PLAIN, NETNS, ENGINE = "a-plain", "a-netns", "a-engine"
#: What the agent under libfaketime loads first (tests/chaos/faketime_site).
FAKETIME_SITE = Path(__file__).resolve().parent / "faketime_site"
#: The zone of each agent: jobs pinned to a zone run on that agent only.
PLAIN_ZONE, NETNS_ZONE, ENGINE_ZONE = "zone-a", "zone-b", "zone-c"


@dataclass
class NsProc(Proc):
    """A process started inside a network namespace."""

    netns: NetNamespace | None = None

    def start(self, env: dict[str, str]) -> None:
        assert self.netns is not None
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.netns.command([TITUS, *self.args]),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@dataclass
class ChaosCluster(Cluster):
    proxies: dict[str, ZkProxy] = field(default_factory=dict)
    proc_env: dict[str, dict[str, str]] = field(default_factory=dict)
    agent_ports: dict[str, int] = field(default_factory=dict)
    agent_ids: dict[str, str] = field(default_factory=dict)
    netns: NetNamespace | None = None
    relay: TcpRelay | None = None
    engine: PrivateEngine | None = None
    disk: Path | None = None
    zk_server: PrivateZooKeeper | None = None
    #: libfaketime's offset file for a-plain's wall clock ("+0": the real time).
    clock_file: Path | None = None
    libfaketime: str | None = None
    #: The CQL test server the store is on (the Cassandra variant), None on SQLite.
    cql: CqlServer | None = None

    # ---- processes --------------------------------------------------------------------
    def _coord(self, name: str) -> str:
        proxy = self.proxies.setdefault(name, ZkProxy(self.zookeeper))
        hosts = proxy.hosts
        if name == NETNS:
            assert self.netns is not None
            # the namespace cannot reach loopback: it goes through a relay on the veth
            self.relay = TcpRelay(self.netns.host_ip, proxy.hosts)
            hosts = self.relay.address
        return f"zk://{hosts}{self.zk_root}?session_timeout={SESSION_TIMEOUT}"

    def _launch(self, name: str, args: list[str], env: dict[str, str]) -> None:
        proc: Proc
        if name == NETNS:
            proc = NsProc(name, args, self.root / f"{name}.log", netns=self.netns)
        else:
            proc = Proc(name, args, self.root / f"{name}.log")
        self.procs[name] = proc
        self.proc_env[name] = env
        proc.start(env)

    def start_master(self, name: str) -> Proc:
        self._launch(name, ["master", "--coord", self._coord(name), "--id", name], self.env)
        return self.procs[name]

    def start_agent(self, name: str, zone: str, cpu: float = 4, memory_mb: int = 4096) -> Proc:
        agent_id = f"{name}-{uuid.uuid4().hex[:6]}"
        self.agent_ids[name] = agent_id
        self.agents.append(agent_id)
        port = free_port()
        self.agent_ports[name] = port
        env = {**self.env, "TITUS_LOG_DIR": str(self.root / f"logs-{name}")}
        if name == NETNS:
            assert self.netns is not None
            env["TITUS_AGENT_HOST"] = self.netns.ns_ip
        if name == PLAIN and self.libfaketime is not None:
            assert self.clock_file is not None
            env.update(
                LD_PRELOAD=self.libfaketime,
                FAKETIME_TIMESTAMP_FILE=str(self.clock_file),
                FAKETIME_CACHE_DURATION="1",  # the file is read again each second
                FAKETIME_DONT_FAKE_MONOTONIC="1",  # a real step leaves monotonic alone
                PYTHONPATH=os.pathsep.join(
                    p for p in (str(FAKETIME_SITE), env.get("PYTHONPATH", "")) if p
                ),
            )
        if name == ENGINE:
            assert self.engine is not None
            env["DOCKER_HOST"] = self.engine.url
            env["TITUS_AGENT_ALLOW_NO_USERNS"] = "true"  # the private engine does not remap
        args = ["agent", "--coord", self._coord(name), "--id", agent_id, "--zone", zone]
        args += ["--instance-type", "local.small", "--cpu", str(cpu)]
        args += ["--memory-mb", str(memory_mb), "--agent-port", str(port)]
        self._launch(name, args, env)
        return self.procs[name]

    @property
    def keyspace(self) -> str:
        return self.env["TITUS_STORE"].split("/")[3].split("?")[0]

    def all_tasks(self, job_id: str) -> list[dict[str, Any]]:
        """Active and archived tasks of a job, straight from the store."""
        if self.cql is None:
            return super().all_tasks(job_id)
        ks = self.keyspace
        active = [r for r in self.cql.rows(ks, "active_tasks") if r["job_id"] == job_id]
        archived_ids = {
            r["task_id"] for r in self.cql.rows(ks, "archived_task_ids") if r["job_id"] == job_id
        }
        archived = [r for r in self.cql.rows(ks, "archived_tasks") if r["task_id"] in archived_ids]
        return [json.loads(r["value"]) for r in (*active, *archived)]

    def diagnosis(self, outcome_breaches: list[str]) -> str:
        """What a failed scenario prints, most telling first (CI keeps only so much of
        it): the breaches; who is registered, in ZooKeeper and as the API sees them; each
        process's last warnings; then the tail of every log."""
        parts = ["\n".join(outcome_breaches[:20])]
        try:
            parts.append(f"registered in ZooKeeper: {self.registered_agents()}")
            agents = self.http.get("/api/v3/agents", timeout=10).json().get("items", [])
            parts.append(
                "agents as the API sees them: "
                + "; ".join(
                    f"{a.get('id')} healthy={a.get('healthy')} {a.get('healthReasons')}"
                    for a in agents
                )
            )
        except Exception as exc:  # noqa: BLE001 - a diagnosis never hides the failure
            parts.append(f"registry not readable: {exc!r}")
        for name, proc in self.procs.items():
            warnings = [
                line[:300]
                for line in proc.logs().splitlines()
                if " WARNING " in line or " ERROR " in line
            ]
            if warnings:
                parts.append(f"== {name}: last warnings\n" + "\n".join(warnings[-12:]))
        parts.append(self.logs()[-6000:])
        return "\n".join(parts)

    def step_clock(self, offset_sec: float) -> None:
        """Set a-plain's wall clock `offset_sec` away from the real time (0: real again);
        it reads the change within a second."""
        assert self.clock_file is not None
        self.clock_file.write_text(f"{offset_sec:+.0f}\n")

    def epoch(self) -> int:
        """The last leadership epoch (raised by each election), as ZooKeeper holds it."""
        return int(self._zk_get(f"{self.zk_root}/leader/epoch") or b"0")

    def restart(self, name: str) -> None:
        """Start a killed process again with the same command, as a supervisor would."""
        proc = self.procs[name]
        if not proc.alive:
            proc.start(self.proc_env[name])

    def kill(self, name: str) -> None:
        self.procs[name].kill(signal.SIGKILL)

    def name_of(self, agent_id: str) -> str | None:
        return next((n for n, a in self.agent_ids.items() if a == agent_id), None)

    def docker_host(self, name: str) -> str:
        return self.proc_env[name]["DOCKER_HOST"]

    # ---- disk -------------------------------------------------------------------------
    def fill_disk(self) -> None:
        """Write a file that takes every free byte of the store's disk (large writes
        first, then smaller ones down to a page, so no room is left over)."""
        assert self.disk is not None
        with (self.disk / "filler").open("wb", buffering=0) as f:
            for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
                chunk = b"\0" * size
                with contextlib.suppress(OSError):
                    while f.write(chunk):
                        pass

    @property
    def lost_after_sec(self) -> float:
        """How long the master waits for an agent that does not answer."""
        return float(self.env["TITUS_AGENT_LOST_AFTER_SEC"])

    def free_disk(self) -> None:
        assert self.disk is not None
        (self.disk / "filler").unlink(missing_ok=True)

    # ---- teardown ---------------------------------------------------------------------
    def close(self) -> None:
        try:
            cleanup(self)
        finally:
            for name, agent_id in self.agent_ids.items():
                if name in self.proc_env:
                    _remove_containers(self.docker_host(name), agent_id)
            for proxy in self.proxies.values():
                proxy.close()
            if self.relay is not None:
                self.relay.close()
            if self.netns is not None:
                self.netns.close()
            if self.engine is not None:
                self.engine.cleanup()
            if self.disk is not None:
                subprocess.run(["umount", str(self.disk)], capture_output=True, check=False)
            if self.zk_server is not None:
                self.zk_server.kill()


def require_libfaketime() -> str:
    """The path of libfaketimeMT (installed by scripts/faketime.sh), or the test fails."""
    try:
        path = run_setup_script("faketime.sh", "LIBFAKETIME", timeout=600)
    except RuntimeError as exc:
        pytest.fail(f"libfaketime is needed to step an agent's clock: {exc}", pytrace=False)
    if not path:
        pytest.fail("scripts/faketime.sh printed no LIBFAKETIME= line", pytrace=False)
    return path


def start_chaos_cluster(tmp: Path, cql: CqlServer | None = None) -> ChaosCluster:
    """API, masters m1 (leads first) and m2, and the three agents above, all up; the store
    on SQLite on the tmpfs, or with `cql` in a keyspace of its own on that CQL test server
    (its requests time out after 2 s, so that an injected fault is ridden out quickly)."""
    extra = {"TITUS_AGENT_ORPHAN_GRACE_SEC": str(ORPHAN_GRACE_SEC)}
    if cql is not None:
        keyspace = f"chaos_{uuid.uuid4().hex[:10]}"
        extra["TITUS_STORE"] = (
            f"cassandra://{cql.host}:{cql.port}/{keyspace}?replication=1&timeout=2"
        )
    base = make_cluster(tmp, extra)
    zk_server = PrivateZooKeeper(base.root / "zookeeper", free_port())
    c = ChaosCluster(
        root=base.root,
        zookeeper=zk_server.address,
        zk_root=base.zk_root,
        env=base.env,
        api_port=base.api_port,
        zk_server=zk_server,
        cql=cql,
    )
    try:
        c.libfaketime = require_libfaketime()
        c.clock_file = c.root / "a-plain.clock"
        c.step_clock(0)
        zk_server.start()
        c.disk = c.root / "data"
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(c.disk)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        c.netns = NetNamespace()
        client = docker.DockerClient(base_url=c.env["DOCKER_HOST"])
        try:
            image = b"".join(client.images.get(f"{BUSYBOX}:latest").save(named=True))
        finally:
            client.close()
        c.engine = PrivateEngine(image)
        c.engine.start()
        c.start_api()
        c.start_master("m1")
        c.wait_for("m1 to lead", lambda: c.leader() == "m1", timeout=60)
        c.start_master("m2")
        for name, zone in ((PLAIN, PLAIN_ZONE), (NETNS, NETNS_ZONE), (ENGINE, ENGINE_ZONE)):
            c.start_agent(name, zone)
        c.wait_ready(agents=3)
    except BaseException:
        c.close()
        raise
    return c
