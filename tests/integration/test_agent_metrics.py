"""The agent's /metrics, scraped over HTTP from a real agent on the real Docker engine:
tasks by state, launch and hook durations and adopted containers move as tasks start,
end and are taken over by a restarted agent; container health checks are counted by
outcome, the log upload backlog follows S3, and a failing host says it is unhealthy."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.test_agent_logs import PRINT, log_agent, make_bucket
from tests.support.docker_engine import AgentFactory, run_task, task_spec, wait_for_report
from tests.support.metrics import Samples, samples_of, value
from tests.support.poll import wait_until
from titus.agent.daemon import AgentDaemon
from titus.agent.server import bound_port, run_agent_server
from titus.model.launch import TaskSpec
from titus.model.states import TaskState

pytestmark = pytest.mark.docker


def scrape(agent: AgentDaemon) -> Samples:
    """The agent's /metrics over HTTP, unsigned (as Prometheus scrapes it)."""
    server = run_agent_server(agent, "127.0.0.1", 0, background=True)
    try:
        r = httpx.get(f"http://127.0.0.1:{bound_port(server)}/metrics", timeout=10)
    finally:
        server.should_exit = True
    return samples_of(r)


def test_tasks_by_state_and_launch_durations_move(agent_factory: AgentFactory) -> None:
    agent = agent_factory()
    before = scrape(agent)
    assert value(before, "titus_agent_healthy") == 1
    assert value(before, "titus_agent_tasks", state="Started") == 0
    running = run_task(agent, task_spec("sleep 300"), TaskState.STARTED)
    run_task(agent, task_spec("exit 0"))
    during = scrape(agent)
    assert value(during, "titus_agent_tasks", state="Started") == 1
    assert value(during, "titus_agent_tasks", state="Finished") == 1
    launches = "titus_agent_launch_duration_seconds_count"
    assert value(during, launches, result="ok") - value(before, launches, result="ok") == 2
    hooks = {
        dict(labels)["hook"]
        for (name, labels), v in during.items()
        if name == "titus_agent_hook_setup_duration_seconds_count" and v > 0
    }
    assert len(hooks) >= 2  # each hook is timed on its own
    assert agent.kill(running.taskId)
    wait_for_report(agent, running.taskId, TaskState.FINISHED)
    assert value(scrape(agent), "titus_agent_tasks", state="Started") == 0


def test_a_restarted_agent_counts_the_containers_it_adopts(agent_factory: AgentFactory) -> None:
    first = agent_factory()
    task = run_task(first, task_spec("sleep 300"), TaskState.STARTED)
    adopted = value(scrape(first), "titus_agent_containers_adopted_total")
    first.stop()
    second = agent_factory()
    wait_for_report(second, task.taskId, TaskState.STARTED)
    after = scrape(second)
    assert value(after, "titus_agent_containers_adopted_total") - adopted == 1
    assert value(after, "titus_agent_tasks", state="Started") == 1


CHECK = "titusParameter.agent.healthcheck."
RESULTS = ("passed", "failed", "timeout")


def with_health_check(spec: TaskSpec, command: str) -> TaskSpec:
    attributes = {CHECK + "command": command, CHECK + "intervalSec": "1"}
    container = spec.container.model_copy(update={"attributes": attributes})
    return spec.model_copy(update={"container": container})


def test_container_health_checks_are_counted_by_outcome(agent_factory: AgentFactory) -> None:
    agent = agent_factory()
    checks = "titus_agent_health_checks_total"
    before = scrape(agent)
    run_task(agent, with_health_check(task_spec("sleep 300"), "true"), TaskState.STARTED)
    run_task(agent, with_health_check(task_spec("sleep 300"), "exit 1"), TaskState.STARTED)

    def moved() -> Samples | None:
        now = scrape(agent)
        ran = {r: value(now, checks, result=r) - value(before, checks, result=r) for r in RESULTS}
        return now if ran["passed"] >= 2 and ran["failed"] >= 2 else None

    after = wait_until("both tasks' checks to be counted", moved, timeout=60)
    assert value(after, checks, result="timeout") == value(before, checks, result="timeout")


def test_a_host_that_fails_its_health_checks_reports_unhealthy(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory(agent_health_min_free_disk_mb=1 << 40)  # no disk has that free
    assert not agent.check_health().healthy
    samples = scrape(agent)
    assert samples[("titus_agent_healthy", frozenset())] == 0  # exported, and 0


def test_the_log_upload_backlog_grows_while_s3_refuses_and_drains_once_it_takes_them(
    agent_factory: AgentFactory, aws_env: str
) -> None:
    agent = log_agent(agent_factory)
    backlog = "titus_agent_log_upload_backlog_files"
    assert value(scrape(agent), backlog) == 0
    run_task(agent, task_spec(PRINT))  # 4 rotated stdout files, the last stdout, stderr
    # no bucket yet: every upload fails, and each file waits
    wait_until("the backlog to hold the task's files", lambda: value(scrape(agent), backlog) == 6)
    make_bucket()
    wait_until("the backlog to drain", lambda: value(scrape(agent), backlog) == 0, timeout=60)
