"""The agent on the real Docker engine: what a task's owner sees of its container's life
(exit codes, output, kills, runtime limits) and what the operator sees of the host (no
leftovers after a failed launch, no task lost or doubled by an agent restart). Memory and
disk limits are in test_agent_isolation.py."""

from __future__ import annotations

import threading
import uuid

import docker
import pytest

from tests.support.docker_engine import (
    AgentFactory,
    run_task,
    task_containers,
    task_spec,
    wait_for_report,
)
from titus.agent.hooks import KillRequest, TaskContext, TaskHook
from titus.agent.logs import LogFollowHook, LogsHook
from titus.agent.runtime import LABEL_AGENT, LABEL_TASK, ContainerHook, DockerRuntime
from titus.model.states import Reason, TaskState

pytestmark = pytest.mark.docker


def test_exit_codes_become_finished_reasons(agent_factory: AgentFactory) -> None:
    agent = agent_factory()
    ok, bad = task_spec("exit 0"), task_spec("exit 3")
    agent.launch(ok)
    agent.launch(bad)

    done = wait_for_report(agent, ok.taskId, TaskState.FINISHED)
    assert (done.reasonCode, done.exitCode) == (Reason.NORMAL, 0)

    failed = wait_for_report(agent, bad.taskId, TaskState.FINISHED)
    assert failed.reasonCode == Reason.FAILED
    assert failed.exitCode == 3
    assert "exited with code 3" in failed.reasonMessage


def test_task_reports_started_with_host_context(agent_factory: AgentFactory) -> None:
    agent = agent_factory(agent_zone="zone-b", agent_region="eu-test")
    spec = task_spec("sleep 30")
    started = run_task(agent, spec, TaskState.STARTED)
    assert started.state == TaskState.STARTED
    assert started.containerId
    assert started.context["task.containerId"] == started.containerId
    assert started.context["agent.zone"] == "zone-b"
    assert started.context["agent.region"] == "eu-test"
    assert started.context["agent.id"] == agent.agent_id
    for key in ("agent.host", "agent.instanceId", "agent.itype"):
        assert started.context[key]
    assert agent.coord.agents()[0].id == agent.agent_id


def test_command_and_env_reach_the_container_and_output_is_kept(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory()
    spec = task_spec(
        'echo "greeting=$GREETING task=$TITUS_TASK_ID"; echo oops >&2; exit 0',
        env={"GREETING": "hello world"},
    )
    run_task(agent, spec)

    stdout = agent.log_files.read(spec.taskId, "stdout").decode()
    stderr = agent.log_files.read(spec.taskId, "stderr").decode()
    assert stdout == f"greeting=hello world task={spec.taskId}\n"
    assert stderr == "oops\n"
    assert agent.log_files.read(spec.taskId, "stdout", offset=9, length=5) == b"hello"


def test_kill_stops_a_running_task_and_removes_its_container(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory()
    spec = task_spec("sleep 300")
    run_task(agent, spec, TaskState.STARTED)

    assert agent.kill(spec.taskId)
    report = wait_for_report(agent, spec.taskId, TaskState.FINISHED)
    assert report.reasonCode == Reason.KILLED
    assert task_containers(docker_engine, spec.taskId) == []
    assert not agent.kill("no-such-task")


def test_missing_image_is_an_invalid_request_and_leaves_nothing(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory()
    spec = task_spec("true", image="titus/no-such-image:1.0")
    report = run_task(agent, spec)
    assert report.reasonCode == Reason.INVALID_REQUEST
    assert "titus/no-such-image:1.0" in report.reasonMessage
    assert task_containers(docker_engine, spec.taskId) == []
    assert agent.log_files.exists(spec.taskId)  # the (empty) log files stay


def test_missing_executable_fails_the_task_and_leaves_no_container(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory()
    spec = task_spec("true")
    spec.container.entryPoint = ["/bin/no-such-program"]
    spec.container.command = []
    report = run_task(agent, spec)
    assert report.reasonCode == Reason.FAILED
    assert report.exitCode == 127
    assert "no-such-program" in agent.log_files.read(spec.taskId, "stderr").decode()
    assert task_containers(docker_engine, spec.taskId) == []


class FailingHook(TaskHook):
    """A concern that cannot be set up (say, no IP left on the host): it needs only the
    setup phase."""

    name = "no-ip"

    def setup(self, ctx: TaskContext) -> None:
        raise RuntimeError("no IP address left on this host")


def test_a_failing_hook_tears_down_the_container_already_started(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory(start=False)
    hooks: list[TaskHook] = [
        LogsHook(),
        ContainerHook(agent.runtime),
        LogFollowHook(agent.client),
        FailingHook(),
    ]
    agent.hooks.hooks = hooks
    agent.start()
    spec = task_spec("sleep 300")
    report = run_task(agent, spec)
    assert report.reasonCode == Reason.CRASHED
    assert "no IP address left" in report.reasonMessage
    assert task_containers(docker_engine, spec.taskId) == []


class StartedWatcher(TaskHook):
    """A watcher needing only the running phase, reading the container hook's typed
    result: it stops any task whose container the engine says has started."""

    name = "started-watcher"

    def check(self, ctx: TaskContext) -> KillRequest | None:
        if ctx.container is None or ctx.container.started_at is None:
            return None
        return KillRequest(Reason.FAILED, f"watched: started at {ctx.container.started_at:.0f}")


def test_a_watcher_hook_kills_with_its_own_reason(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory(start=False)
    agent.hooks.hooks.append(StartedWatcher())
    agent.start()
    spec = task_spec("sleep 300")
    report = run_task(agent, spec)
    assert report.reasonCode == Reason.FAILED
    assert report.reasonMessage.startswith("watched: started at ")
    assert task_containers(docker_engine, spec.taskId) == []


def test_launch_is_idempotent(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory()
    spec = task_spec("sleep 300")
    agent.launch(spec)
    run_task(agent, spec, TaskState.STARTED)
    agent.launch(spec)

    assert len(task_containers(docker_engine, spec.taskId)) == 1


def test_batch_task_over_its_runtime_limit_is_killed(agent_factory: AgentFactory) -> None:
    agent = agent_factory()
    spec = task_spec("sleep 300", runtime_limit_sec=1)
    report = run_task(agent, spec)
    assert report.reasonCode == Reason.RUNTIME_LIMIT_EXCEEDED


def test_agent_restart_adopts_running_containers(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    first = agent_factory()
    spec = task_spec("echo before; sleep 300")
    started = run_task(first, spec, TaskState.STARTED)
    container = docker_engine.containers.get(started.containerId)
    started_at = container.attrs["State"]["StartedAt"]
    first.stop()

    second = agent_factory()
    adopted = wait_for_report(second, spec.taskId, TaskState.STARTED)
    assert adopted.state == TaskState.STARTED
    assert adopted.containerId == started.containerId
    container.reload()
    assert container.status == "running"
    assert container.attrs["State"]["StartedAt"] == started_at  # not restarted
    assert len(task_containers(docker_engine, spec.taskId)) == 1

    # launching it again on the new agent (a master retrying) neither duplicates it
    second.launch(spec)
    assert len(task_containers(docker_engine, spec.taskId)) == 1

    # the new agent owns it: it can kill it, and the output was not copied twice
    assert second.kill(spec.taskId)
    finished = wait_for_report(second, spec.taskId, TaskState.FINISHED)
    assert finished.reasonCode == Reason.KILLED
    assert second.log_files.read(spec.taskId, "stdout") == b"before\n"


def test_restarted_agent_reports_a_task_that_ended_while_it_was_down(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    first = agent_factory()
    spec = task_spec("sleep 2; exit 5")
    started = run_task(first, spec, TaskState.STARTED)
    first.stop()
    docker_engine.containers.get(started.containerId).wait(timeout=30)

    second = agent_factory()
    report = wait_for_report(second, spec.taskId, TaskState.FINISHED)
    assert report.reasonCode == Reason.FAILED
    assert report.exitCode == 5
    assert task_containers(docker_engine, spec.taskId) == []


def test_acked_reports_are_forgotten(agent_factory: AgentFactory) -> None:
    agent = agent_factory()
    spec = task_spec("true")
    run_task(agent, spec)

    assert agent.ack(spec.taskId)
    assert spec.taskId not in {r.taskId for r in agent.reports(0).tasks}
    assert not agent.ack(spec.taskId)


def test_agents_sharing_an_engine_leave_each_others_containers_alone(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    first = agent_factory()
    spec = task_spec("sleep 300")
    started = run_task(first, spec, TaskState.STARTED)

    other = agent_factory(agent_id=f"{first.agent_id}-other")
    assert spec.taskId not in {r.taskId for r in other.reports(0).tasks}
    assert not other.kill(spec.taskId)
    other.stop()
    assert docker_engine.containers.get(started.containerId).status == "running"


def test_listing_meets_containers_removed_under_it_without_failing(
    docker_engine: docker.DockerClient,
) -> None:
    """The sweep lists the agent's containers while others end and are removed: one gone
    between the engine's listing and its inspection is left out, never an error."""
    agent_id = f"racer-{uuid.uuid4().hex[:8]}"
    runtime = DockerRuntime(docker_engine)
    made = [
        docker_engine.containers.create(
            "titus/busybox:latest",
            ["true"],
            labels={LABEL_TASK: f"t{i}", LABEL_AGENT: agent_id},
        )
        for i in range(30)
    ]
    remover = threading.Thread(target=lambda: [c.remove(force=True) for c in made])
    remover.start()
    seen = []
    try:
        while remover.is_alive():
            seen.append(len(runtime.task_containers(agent_id)))
    finally:
        remover.join()
    assert runtime.task_containers(agent_id) == []
    assert seen and max(seen) <= 30
