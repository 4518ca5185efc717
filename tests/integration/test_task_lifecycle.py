"""One set of task lifecycle scenarios, run against both hosts a task can have: the agent
daemon (direct mode, in this process) and the Mesos executor (one process per task,
started by the Mesos double's agent, driven the way the platform's framework drives it).

Both run the task through the same runner (titus/agent/lifecycle.py) with the same hooks,
so a task must end the same way on either: same reason, same exit code, same output, no
container left behind. Each scenario is what a task's owner would notice: normal and
failed exits, the memory limit, the runtime limit, the disk quota (measured: both hosts
run with `disk_enforcement="measure"`), a kill that lands while the task starts, a
container created but never started, and a restart of the host's controller (agent
daemon, or executor) that adopts the running container instead of starting another.
Real containers throughout; sizes and sleeps are small for a 2-core machine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import docker
import pytest

from tests.support.docker_engine import (
    BUSYBOX,
    docker_engine,
    remove_agent_containers,
    start_docker_engine,
    task_containers,
    task_spec,
    wait_until,
)
from tests.support.mesos.fixture import mesos_master, mesos_master_factory
from tests.support.mesos.master import MesosMasterDouble
from tests.support.mesos_tasks import MesosTasks
from titus.agent.daemon import AgentDaemon
from titus.agent.logs import LogFiles
from titus.agent.runtime import LABEL_AGENT, LABEL_TASK, DockerRuntime, RuntimeConfig
from titus.coord.local import LocalCoordinator
from titus.model.launch import TaskSpec
from titus.model.states import Reason, TaskState
from titus.settings import Settings

__all__ = ["docker_engine", "mesos_master", "mesos_master_factory"]  # fixtures used by name

pytestmark = [pytest.mark.docker, pytest.mark.timeout(240)]

WAIT = 90.0
KILL_GRACE = "2"
DISK_CHECK = "0.5"


@dataclass
class End:
    """How a task ended, in the words both hosts share; `mesos_state` is the terminal
    Mesos state on the executor host (None on the agent)."""

    reason: str
    message: str
    exit_code: int | None
    container_id: str | None
    seen: list[str] = field(default_factory=list)  # what the host reported, in order
    mesos_state: str | None = None


class Host(Protocol):
    name: str
    agent_id: str

    def launch(self, spec: TaskSpec) -> None: ...
    def wait_starting(self, task_id: str) -> None: ...
    def wait_running(self, task_id: str) -> str: ...
    def wait_end(self, task_id: str) -> End: ...
    def kill(self, task_id: str) -> None: ...
    def restart(self, spec: TaskSpec) -> None: ...
    def output(self, task_id: str, stream: str = "stdout") -> bytes: ...
    def close(self) -> None: ...


class DaemonHost:
    """An AgentDaemon in this process; a restart is a new daemon on the same engine."""

    name = "agent"

    def __init__(self, engine: docker.DockerClient, tmp: Path) -> None:
        self.engine = engine
        self.agent_id = f"agent-{uuid.uuid4().hex[:8]}"
        self.settings = Settings(
            data_dir=str(tmp / "data"),
            agent_id=self.agent_id,
            kill_grace_sec=float(KILL_GRACE),
            agent_lost_after_sec=30.0,
            agent_disk_check_interval_sec=float(DISK_CHECK),
        )
        self.daemons: list[AgentDaemon] = []
        self.seen: dict[str, list[TaskState]] = {}
        self._since = 0
        self.daemon = self._start()

    def _start(self) -> AgentDaemon:
        daemon = AgentDaemon(
            self.settings,
            LocalCoordinator(),
            docker_client=self.engine,
            runtime_config=RuntimeConfig(disk_enforcement="measure"),
        )
        self.daemons.append(daemon)
        daemon.start()
        self._since = 0
        return daemon

    def launch(self, spec: TaskSpec) -> None:
        self.seen[spec.taskId] = []
        self.daemon.launch(spec)

    def _wait(self, task_id: str, state: TaskState) -> Any:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            page = self.daemon.reports(self._since, 1.0)
            self._since = page.seq
            for report in page.tasks:
                self.seen.setdefault(report.taskId, []).append(report.state)
            report = next((r for r in self.daemon.reports(0).tasks if r.taskId == task_id), None)
            if report is not None and (report.state == state or report.terminal):
                return report
        raise AssertionError(f"task {task_id} did not reach {state}: {self.seen.get(task_id)}")

    def wait_starting(self, task_id: str) -> None:
        self._wait(task_id, TaskState.START_INITIATED)

    def wait_running(self, task_id: str) -> str:
        report = self._wait(task_id, TaskState.STARTED)
        assert report.state == TaskState.STARTED, report
        return str(report.containerId)

    def wait_end(self, task_id: str) -> End:
        report = self._wait(task_id, TaskState.FINISHED)
        assert report.state == TaskState.FINISHED, report
        return End(
            report.reasonCode,
            report.reasonMessage,
            report.exitCode,
            report.containerId,
            [str(s) for s in self.seen.get(task_id, [])],
        )

    def kill(self, task_id: str) -> None:
        assert self.daemon.kill(task_id)

    def restart(self, spec: TaskSpec) -> None:
        self.daemon.stop()
        self.daemon = self._start()

    def output(self, task_id: str, stream: str = "stdout") -> bytes:
        return self.daemon.log_files.read(task_id, stream)

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.stop()


_MESOS_SEEN = {"TASK_STARTING": "StartInitiated", "TASK_RUNNING": "Started"}


class ExecutorHost:
    """Titus executors started by the Mesos double's first agent; a restart kills the
    task's executor outright and launches the same task again on the same agent."""

    name = "mesos"

    def __init__(self, double: MesosMasterDouble, tmp: Path) -> None:
        self.double = double
        self.logs = LogFiles(tmp / "task-logs")
        self.agent_id = sorted(double.agents)[0]
        self.tasks = MesosTasks(
            double.address,
            {
                "TITUS_LOG_DIR": str(self.logs.root),
                "TITUS_DATA_DIR": str(tmp / "data"),
                "TITUS_KILL_GRACE_SEC": KILL_GRACE,
                "TITUS_AGENT_DISK_ENFORCEMENT": "measure",
                "TITUS_AGENT_DISK_CHECK_INTERVAL_SEC": DISK_CHECK,
                "DOCKER_HOST": start_docker_engine(),
            },
        )

    def launch(self, spec: TaskSpec) -> None:
        self.tasks.launch(spec, self.agent_id)

    def wait_starting(self, task_id: str) -> None:
        self.tasks.wait(task_id, {"TASK_STARTING"})

    def wait_running(self, task_id: str) -> str:
        update = self.tasks.wait(task_id, {"TASK_RUNNING"})
        assert update.state == "TASK_RUNNING", update
        return str(update.data["containerId"])

    def wait_end(self, task_id: str) -> End:
        update = self.tasks.wait(task_id, set())
        data = update.data
        assert data, f"terminal update without the executor's data: {update}"
        seen = [_MESOS_SEEN.get(u.state, "Finished") for u in self.tasks.updates[task_id]]
        return End(
            data["reasonCode"],
            data["reasonMessage"],
            data.get("exitCode"),
            data.get("containerId"),
            seen,
            update.state,
        )

    def kill(self, task_id: str) -> None:
        self.tasks.kill(task_id)

    def restart(self, spec: TaskSpec) -> None:
        self.double.kill_executor(spec.taskId)
        ended = self.tasks.wait(spec.taskId, set())
        assert ended.reason == "REASON_EXECUTOR_TERMINATED", ended
        # the master forgets a task once its terminal update is acknowledged: only then
        # may the same task id be launched again
        key = (self.tasks.sub.framework_id, spec.taskId)
        self.double.wait_for(lambda: key not in self.double.tasks, timeout=WAIT)
        self.tasks.launch(spec, self.agent_id)

    def output(self, task_id: str, stream: str = "stdout") -> bytes:
        return self.logs.read(task_id, stream)

    def close(self) -> None:
        self.tasks.close()


@pytest.fixture(params=["agent", "mesos"])
def host(
    request: pytest.FixtureRequest, docker_engine: docker.DockerClient, tmp_path: Path
) -> Iterator[Host]:
    made: Host
    if request.param == "agent":
        made = DaemonHost(docker_engine, tmp_path)
    else:
        made = ExecutorHost(request.getfixturevalue("mesos_master"), tmp_path)
    try:
        yield made
    finally:
        made.close()
        remove_agent_containers(docker_engine, made.agent_id)


def expect_mesos(end: End, state: str) -> None:
    """On the executor host, the terminal Mesos state the task's outcome maps to."""
    if end.mesos_state is not None:
        assert end.mesos_state == state, end


def no_container_left(engine: docker.DockerClient, task_id: str) -> None:
    # teardown removes the container before the end is reported
    assert task_containers(engine, task_id) == []


def test_normal_exit(host: Host, docker_engine: docker.DockerClient) -> None:
    spec = task_spec("echo hello; exit 0")
    host.launch(spec)
    end = host.wait_end(spec.taskId)
    assert (end.reason, end.exit_code) == (Reason.NORMAL, 0)
    assert "Started" in end.seen
    assert host.output(spec.taskId) == b"hello\n"
    expect_mesos(end, "TASK_FINISHED")
    no_container_left(docker_engine, spec.taskId)


def test_non_zero_exit(host: Host, docker_engine: docker.DockerClient) -> None:
    spec = task_spec("echo oops >&2; exit 3")
    host.launch(spec)
    end = host.wait_end(spec.taskId)
    assert (end.reason, end.exit_code) == (Reason.FAILED, 3)
    assert "exited with code 3" in end.message
    assert host.output(spec.taskId, "stderr") == b"oops\n"
    expect_mesos(end, "TASK_FAILED")
    no_container_left(docker_engine, spec.taskId)


def test_a_command_not_in_the_image_says_so(host: Host, docker_engine: docker.DockerClient) -> None:
    spec = task_spec("")
    spec.container.entryPoint = ["no-such-command", "--flag"]
    spec.container.command = []
    host.launch(spec)
    end = host.wait_end(spec.taskId)
    assert (end.reason, end.exit_code) == (Reason.FAILED, 127)
    assert end.message == "its command was not found in the image: no-such-command"
    expect_mesos(end, "TASK_FAILED")
    no_container_left(docker_engine, spec.taskId)


def test_memory_kill(host: Host) -> None:
    spec = task_spec("dd if=/dev/zero of=/dev/null bs=96M count=1", memory_mb=32)
    host.launch(spec)
    end = host.wait_end(spec.taskId)
    assert end.reason == Reason.FAILED
    assert "memory limit of 32 MB" in end.message
    expect_mesos(end, "TASK_FAILED")


def test_runtime_limit(host: Host, docker_engine: docker.DockerClient) -> None:
    spec = task_spec("sleep 300", runtime_limit_sec=1)
    host.launch(spec)
    end = host.wait_end(spec.taskId)
    assert end.reason == Reason.RUNTIME_LIMIT_EXCEEDED
    assert "runtime limit of 1 s" in end.message
    expect_mesos(end, "TASK_KILLED")
    no_container_left(docker_engine, spec.taskId)


def test_measured_disk_quota(host: Host, docker_engine: docker.DockerClient) -> None:
    hog = task_spec("dd if=/dev/zero of=/tmp/fill bs=1M count=30; sleep 300", disk_mb=10)
    neighbour = task_spec("dd if=/dev/zero of=/tmp/data bs=1M count=2; sleep 300", disk_mb=10)
    host.launch(neighbour)
    neighbour_id = host.wait_running(neighbour.taskId)
    host.launch(hog)
    end = host.wait_end(hog.taskId)
    assert end.reason == Reason.FAILED
    assert "disk quota of 10 MB" in end.message
    assert "cannot enforce quotas" in end.message
    expect_mesos(end, "TASK_KILLED")
    no_container_left(docker_engine, hog.taskId)
    assert docker_engine.containers.get(neighbour_id).status == "running"


def test_kill_during_start(host: Host, docker_engine: docker.DockerClient) -> None:
    spec = task_spec("sleep 300")
    host.launch(spec)
    host.wait_starting(spec.taskId)
    host.kill(spec.taskId)
    end = host.wait_end(spec.taskId)
    assert end.reason == Reason.KILLED
    expect_mesos(end, "TASK_KILLED")
    no_container_left(docker_engine, spec.taskId)


def test_a_container_created_but_never_started_is_not_live(
    host: Host, docker_engine: docker.DockerClient
) -> None:
    """A container of the task that exists but never ran (an earlier launch stopped
    between create and start) is not taken for a running task: the task ends at once,
    saying so, and the container goes."""
    spec = task_spec("sleep 300")
    docker_engine.containers.create(
        BUSYBOX,
        ["sleep", "300"],
        name=DockerRuntime.container_name(spec.taskId),
        labels={LABEL_TASK: spec.taskId, LABEL_AGENT: host.agent_id},
    )
    host.launch(spec)
    end = host.wait_end(spec.taskId)
    assert end.reason == Reason.TRANSIENT_SYSTEM_ERROR
    assert "created but never started" in end.message
    assert "Started" not in end.seen
    expect_mesos(end, "TASK_FAILED")
    no_container_left(docker_engine, spec.taskId)


def test_restart_adopts_the_running_container(
    host: Host, docker_engine: docker.DockerClient
) -> None:
    spec = task_spec("echo before; sleep 300")
    host.launch(spec)
    container_id = host.wait_running(spec.taskId)
    wait_until("the output copied", lambda: host.output(spec.taskId) == b"before\n")
    started_at = docker_engine.containers.get(container_id).attrs["State"]["StartedAt"]

    host.restart(spec)
    assert host.wait_running(spec.taskId) == container_id
    container = docker_engine.containers.get(container_id)
    assert container.status == "running"
    assert container.attrs["State"]["StartedAt"] == started_at  # not restarted
    assert len(task_containers(docker_engine, spec.taskId)) == 1

    host.kill(spec.taskId)
    end = host.wait_end(spec.taskId)
    assert end.reason == Reason.KILLED
    assert end.container_id == container_id
    assert host.output(spec.taskId) == b"before\n"  # resumed, not copied again
    expect_mesos(end, "TASK_KILLED")
    no_container_left(docker_engine, spec.taskId)


def test_runtime_limit_counts_from_the_container_start_across_a_restart(
    host: Host, docker_engine: docker.DockerClient
) -> None:
    """The limit is the container's, not the process's that watches it: a task whose
    limit passed while its host's controller was away is killed for it once adopted."""
    spec = task_spec("sleep 300", runtime_limit_sec=3)
    host.launch(spec)
    container_id = host.wait_running(spec.taskId)
    host.restart(spec)
    end = host.wait_end(spec.taskId)
    assert end.reason == Reason.RUNTIME_LIMIT_EXCEEDED
    assert end.container_id == container_id
    expect_mesos(end, "TASK_KILLED")
    no_container_left(docker_engine, spec.taskId)
