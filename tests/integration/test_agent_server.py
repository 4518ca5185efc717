"""The agent's HTTP API as the master and task owners use it: a real uvicorn on a loopback
port in front of a real agent on the real Docker engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.support.docker_engine import (
    WAIT_SEC,
    AgentFactory,
    follow_reports,
    task_spec,
)
from titus.agent.daemon import AgentDaemon
from titus.agent.server import bound_port, run_agent_server
from titus.model.launch import TaskReport, TaskReportPage
from titus.model.states import Reason, TaskState

pytestmark = pytest.mark.docker


@pytest.fixture
def agent(agent_factory: AgentFactory) -> AgentDaemon:
    return agent_factory()


@pytest.fixture
def http(agent: AgentDaemon) -> Iterator[httpx.Client]:
    server = run_agent_server(agent, "127.0.0.1", 0, background=True)
    try:
        base_url = f"http://127.0.0.1:{bound_port(server)}"
        with httpx.Client(base_url=base_url, timeout=WAIT_SEC) as client:
            yield client
    finally:
        server.should_exit = True


def poll_until(http: httpx.Client, task_id: str, state: TaskState) -> TaskReport:
    """Long-poll GET /v1/tasks the way the master does, until the task reaches `state`."""

    def poll(since: int, wait: float) -> TaskReportPage:
        resp = http.get("/v1/tasks", params={"since": since, "wait": wait})
        assert resp.status_code == 200
        return TaskReportPage.model_validate(resp.json())

    return follow_reports(poll, task_id, state)


def test_health(http: httpx.Client, agent: AgentDaemon) -> None:
    resp = http.get("/v1/health")
    assert resp.status_code == 200
    assert resp.json()["agentId"] == agent.agent_id


def test_launch_run_and_read_output_over_http(http: httpx.Client) -> None:
    spec = task_spec("echo one; echo two; echo bad >&2; exit 4")
    resp = http.post("/v1/tasks", json=spec.to_json())
    assert resp.status_code == 202

    report = poll_until(http, spec.taskId, TaskState.FINISHED)
    assert report.reasonCode == Reason.FAILED
    assert report.exitCode == 4

    out = http.get(f"/v1/tasks/{spec.taskId}/logs")
    assert out.status_code == 200
    assert out.headers["content-type"].startswith("text/plain")
    assert out.text == "one\ntwo\n"
    part = http.get(f"/v1/tasks/{spec.taskId}/logs", params={"offset": 4, "length": 3})
    assert part.text == "two"
    err = http.get(f"/v1/tasks/{spec.taskId}/logs", params={"stream": "stderr"})
    assert err.text == "bad\n"


def test_follow_streams_output_until_the_task_ends(http: httpx.Client) -> None:
    spec = task_spec("for i in 1 2 3; do echo line$i; sleep 0.3; done")
    assert http.post("/v1/tasks", json=spec.to_json()).status_code == 202
    poll_until(http, spec.taskId, TaskState.STARTED)

    with http.stream("GET", f"/v1/tasks/{spec.taskId}/logs", params={"follow": "true"}) as resp:
        assert resp.status_code == 200
        body = b"".join(resp.iter_bytes())
    assert body == b"line1\nline2\nline3\n"


def test_kill_and_ack_over_http(http: httpx.Client, agent: AgentDaemon) -> None:
    spec = task_spec("sleep 300")
    assert http.post("/v1/tasks", json=spec.to_json()).status_code == 202
    poll_until(http, spec.taskId, TaskState.STARTED)

    resp = http.delete(f"/v1/tasks/{spec.taskId}", params={"reason": "scaledDown"})
    assert resp.status_code == 202
    report = poll_until(http, spec.taskId, TaskState.FINISHED)
    assert report.reasonCode == Reason.SCALED_DOWN

    assert http.post(f"/v1/tasks/{spec.taskId}/ack").json()["acknowledged"] is True
    page = http.get("/v1/tasks", params={"since": 0}).json()
    assert spec.taskId not in {t["taskId"] for t in page["tasks"]}


def test_requests_for_unknown_tasks_and_bad_input(http: httpx.Client) -> None:
    assert http.delete("/v1/tasks/no-such-task").status_code == 404
    assert http.get("/v1/tasks/no-such-task/logs").status_code == 404
    assert http.post("/v1/tasks", json={"taskId": "x"}).status_code == 422
    bad_id = task_spec("true", task_id="../etc").to_json()
    assert http.post("/v1/tasks", json=bad_id).status_code == 400

    spec = task_spec("true")
    assert http.post("/v1/tasks", json=spec.to_json()).status_code == 202
    poll_until(http, spec.taskId, TaskState.FINISHED)
    resp = http.get(f"/v1/tasks/{spec.taskId}/logs", params={"stream": "stdin"})
    assert resp.status_code == 400


def test_long_poll_wakes_up_when_a_report_arrives(http: httpx.Client) -> None:
    seq = http.get("/v1/tasks", params={"since": 0}).json()["seq"]
    pages: list[TaskReportPage] = []

    def poll() -> None:
        with httpx.Client(base_url=http.base_url, timeout=WAIT_SEC) as poller:
            resp = poller.get("/v1/tasks", params={"since": seq, "wait": 60})
            pages.append(TaskReportPage.model_validate(resp.json()))

    waiter = threading.Thread(target=poll)
    waiter.start()
    spec = task_spec("true")
    assert http.post("/v1/tasks", json=spec.to_json()).status_code == 202
    waiter.join(WAIT_SEC)

    assert pages, "the long poll did not return"
    assert pages[0].seq > seq
    assert spec.taskId in {r.taskId for r in pages[0].tasks}
