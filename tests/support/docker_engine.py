"""Fixtures for tests against the platform's own Docker engine (scripts/docker-engine.sh).

The root conftest.py registers this module as a pytest plugin: tests name the fixtures as
arguments and import nothing.

- `docker_engine` (session): runs the script once (it is idempotent: it reuses a running
  engine and the image) and yields a Docker client for its socket. Set
  `TITUS_TEST_DOCKER_HOST` to use another engine that has `titus/busybox:latest`.
- `agent_factory` (function): makes started AgentDaemons on that engine, each with a
  LocalCoordinator and log files under the test's tmp_path, and one agent id per test (so
  tests never see each other's containers; pass `agent_id=` for a second agent). Keyword
  arguments override Settings fields. At the end every daemon is stopped and every
  container carrying one of their agent ids is removed.

- `private_engine` (function): a second dockerd of the test's own (PrivateEngine: its own
  socket, data root, exec root and pid file under a short tmp dir, vfs storage, no
  bridge, the busybox image copied from `docker_engine`), for tests that stop and start
  an engine.

Plus `task_spec` to build a TaskSpec for the busybox image; `wait_for_report` to follow a
daemon's reports until a task reaches a state (`follow_reports` for any other source of
report pages, such as the agent's HTTP API) and `run_task` to launch a task and wait for
it; `task_containers` to list a task's containers. (`wait_until`, the suite's polling
helper, lives in tests/support/poll.py and is importable from here too.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.poll import wait_until
from tests.support.setup_script import run_setup_script
from titus.agent.daemon import AgentDaemon
from titus.agent.runtime import LABEL_AGENT, LABEL_TASK, RuntimeConfig
from titus.coord.local import LocalCoordinator
from titus.model.job import Container, Image, Resources
from titus.model.launch import TaskReport, TaskReportPage, TaskSpec
from titus.model.states import TaskState, task_rank
from titus.settings import Settings

DEFAULT_HOST = "unix:///run/titus/docker.sock"
BUSYBOX = "titus/busybox"
# Generous bounds for waiting on the engine; never asserted as timings.
WAIT_SEC = 60.0


def start_docker_engine() -> str:
    """Run scripts/docker-engine.sh and return the DOCKER_HOST it prints."""
    override = os.environ.get("TITUS_TEST_DOCKER_HOST")
    if override:
        return override
    return run_setup_script("docker-engine.sh", "DOCKER_HOST", timeout=600) or DEFAULT_HOST


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[docker.DockerClient]:
    url = start_docker_engine()
    client = docker.DockerClient(base_url=url, version="auto", timeout=120, max_pool_size=64)
    try:
        client.ping()
        yield client
    finally:
        client.close()


def task_spec(
    command: str,
    *,
    task_id: str | None = None,
    image: str = BUSYBOX,
    memory_mb: int = 64,
    disk_mb: int = 100,
    env: dict[str, str] | None = None,
    job_type: str = "BATCH",
    runtime_limit_sec: int | None = None,
) -> TaskSpec:
    """A task that runs `sh -c command` in the busybox image (or whatever `image` names)."""
    name, _, tag = image.partition(":")
    return TaskSpec(
        taskId=task_id or f"task-{uuid.uuid4().hex[:12]}",
        jobId=f"job-{uuid.uuid4().hex[:8]}",
        jobType=job_type,
        applicationName="agenttest",
        container=Container(
            image=Image(name=name, tag=tag or None),
            entryPoint=["sh", "-c"],
            command=[command],
            env=env or {},
            resources=Resources(cpu=0.5, memoryMB=memory_mb, diskMB=disk_mb),
        ),
        runtimeLimitSec=runtime_limit_sec,
    )


def wait_for_report(
    daemon: AgentDaemon, task_id: str, state: TaskState, timeout: float = WAIT_SEC
) -> TaskReport:
    """Long-poll the daemon until `task_id` reports `state` (or a later one); return it."""
    return follow_reports(daemon.reports, task_id, state, timeout)


def follow_reports(
    poll: Callable[[int, float], TaskReportPage],
    task_id: str,
    state: TaskState,
    timeout: float = WAIT_SEC,
) -> TaskReport:
    """Long-poll with `poll(since, wait)` (the daemon, or its HTTP API) as the master does,
    until `task_id` reports `state` (or a later one); return that report."""
    deadline = time.monotonic() + timeout
    since = 0
    last: TaskReport | None = None
    while time.monotonic() < deadline:
        page = poll(since, min(2.0, max(0.0, deadline - time.monotonic())))
        since = page.seq
        for report in page.tasks:
            if report.taskId == task_id:
                last = report
        if last is not None and task_rank(last.state) >= task_rank(state):
            return last
    raise AssertionError(f"task {task_id} did not reach {state}; last report: {last}")


def run_task(
    daemon: AgentDaemon, spec: TaskSpec, until: TaskState = TaskState.FINISHED
) -> TaskReport:
    """Launch `spec` and wait until it reports `until` (or a later state); return that."""
    daemon.launch(spec)
    return wait_for_report(daemon, spec.taskId, until)


def task_containers(client: docker.DockerClient, task_id: str) -> list[Any]:
    """Every container of a task on the engine, running or not."""
    return list(client.containers.list(all=True, filters={"label": f"{LABEL_TASK}={task_id}"}))


AgentFactory = Callable[..., AgentDaemon]


@pytest.fixture
def agent_factory(docker_engine: docker.DockerClient, tmp_path: Path) -> Iterator[AgentFactory]:
    agent_id = f"agent-{uuid.uuid4().hex[:8]}"
    daemons: list[AgentDaemon] = []

    def make(
        start: bool = True, runtime_config: RuntimeConfig | None = None, **overrides: Any
    ) -> AgentDaemon:
        values: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            "agent_id": agent_id,
            "kill_grace_sec": 2.0,
            "agent_lost_after_sec": 30.0,
        }
        values.update(overrides)
        daemon = AgentDaemon(
            Settings(**values),
            LocalCoordinator(),
            docker_client=docker_engine,
            runtime_config=runtime_config,
        )
        daemons.append(daemon)
        if start:
            daemon.start()
        return daemon

    yield make
    for daemon in daemons:
        daemon.stop()
    for an_agent in {d.agent_id for d in daemons}:
        remove_agent_containers(docker_engine, an_agent)


def remove_agent_containers(client: docker.DockerClient, agent_id: str) -> None:
    """Remove every container of `agent_id`: a test's cleanup, which a task ending at that
    moment (its executor removing its container) must not fail."""
    label = {"label": f"{LABEL_AGENT}={agent_id}"}
    for container in client.containers.list(all=True, filters=label, ignore_removed=True):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass  # removed meanwhile
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: its removal is already in progress
                raise


class PrivateEngine:
    """A second dockerd of the test's own (socket, data root, exec root, pid file under a
    short tmp dir; vfs storage; no bridge) that a test may stop and start without
    touching the engine every other test shares."""

    def __init__(self, image: bytes) -> None:
        """`image`: the test image as `docker save` writes it, loaded on first start."""
        self.image = image
        self.dir = Path(tempfile.mkdtemp(prefix="tde-", dir="/tmp"))  # short: socket paths
        self.url = f"unix://{self.dir}/d.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.namespace = f"titus-test-{uuid.uuid4().hex[:6]}"

    def start(self) -> None:
        log = (self.dir / "dockerd.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "-H",
                self.url,
                "--data-root",
                str(self.dir / "data"),
                "--exec-root",
                str(self.dir / "exec"),
                "--pidfile",
                str(self.dir / "d.pid"),
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--storage-driver",
                "vfs",
                "--containerd-namespace",
                self.namespace,
                "--containerd-plugins-namespace",
                f"{self.namespace}-plugins",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        client = docker.DockerClient(base_url=self.url, version="1.41", timeout=30)
        log_path = self.dir / "dockerd.log"
        proc = self.proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"private dockerd exited ({proc.returncode}): {log_path}")
            return bool(client.ping())

        try:
            wait_until(
                f"the private dockerd to answer (log: {log_path})",
                answers,
                WAIT_SEC,
                interval=0.1,
                retry_on=(docker.errors.DockerException, OSError),
            )
            try:
                client.images.get(f"{BUSYBOX}:latest")
            except docker.errors.ImageNotFound:
                client.images.load(self.image)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=WAIT_SEC)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        subprocess.run(["umount", "-R", str(self.dir)], capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_engine(docker_engine: docker.DockerClient) -> Iterator[PrivateEngine]:
    # the image scripts/docker-engine.sh made, so both engines run the same test image
    image = b"".join(docker_engine.images.get(f"{BUSYBOX}:latest").save(named=True))
    engine = PrivateEngine(image)
    try:
        engine.start()
        yield engine
    finally:
        engine.cleanup()
