"""Who may call an agent: with the platform's secret set, a real agent on the real engine
obeys only signed calls from the leader of now. A container (or anything else on the host's
network) that reaches the agent's port cannot launch, kill, claim away or acknowledge away
a task, nor read task output; a deposed leader's orders are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.docker_engine import WAIT_SEC, AgentFactory, task_spec
from tests.support.poll import wait_until
from titus.agent.daemon import AgentDaemon
from titus.agent.server import bound_port, run_agent_server
from titus.coord.agent_calls import AGENT_HEADER, SignedCalls, for_agent
from titus.coord.base import Leadership
from titus.master.cluster import Placement
from titus.master.direct import DirectDriver
from titus.model.identity import AgentCredentials
from titus.model.signing import HEADER, RequestSigner
from titus.model.states import TaskState
from titus.settings import Settings
from titus.store.base import ActiveIndex

pytestmark = pytest.mark.docker

SECRET = "the-platform-shared-secret-0123"


@pytest.fixture
def agent(agent_factory: AgentFactory) -> Iterator[tuple[AgentDaemon, str]]:
    daemon = agent_factory(cluster_secret=SECRET)
    server = run_agent_server(daemon, "127.0.0.1", 0, background=True)
    url = f"http://127.0.0.1:{bound_port(server)}"
    daemon.info.address = url
    daemon.coord.register_agent(daemon.info)
    try:
        yield daemon, url
    finally:
        server.should_exit = True


def _client(url: str, secret: str = SECRET, epoch: int = 1, agent: str = "") -> httpx.Client:
    """A caller signing for the agent at `url` (its id read from its health answer unless
    `agent` names another) under the cluster secret `secret`."""
    agent = agent or httpx.get(f"{url}/v1/health", timeout=WAIT_SEC).json()["agentId"]
    return httpx.Client(
        base_url=url,
        timeout=WAIT_SEC,
        auth=SignedCalls(secret.encode(), lambda: epoch),
        headers=for_agent(agent),
    )


def test_unsigned_or_forged_calls_are_refused_and_change_nothing(
    agent: tuple[AgentDaemon, str],
) -> None:
    daemon, url = agent
    spec = task_spec("sleep 30")
    with httpx.Client(base_url=url, timeout=WAIT_SEC) as anyone:
        assert anyone.get("/v1/health").status_code == 200  # health stays open
        calls = [
            anyone.post("/v1/tasks", json=spec.to_json()),
            anyone.put("/v1/tasks/claims", json={"taskIds": []}),
            anyone.delete(f"/v1/tasks/{spec.taskId}"),
            anyone.post(f"/v1/tasks/{spec.taskId}/ack"),
            anyone.get("/v1/tasks"),
            anyone.get(f"/v1/tasks/{spec.taskId}/logs"),
        ]
    for r in calls:
        assert r.status_code == 401, (r.request.url, r.text)
        assert "unsigned request" in r.json()["detail"]
    with _client(url, secret="another-secret-of-enough-length") as forger:
        r = forger.post("/v1/tasks", json=spec.to_json())
        assert r.status_code == 401 and "bad signature" in r.json()["detail"]
    assert not daemon.known(spec.taskId)


def test_a_replayed_call_is_refused(agent: tuple[AgentDaemon, str]) -> None:
    _, url = agent
    with _client(url) as master:
        first = master.get("/v1/tasks", params={"since": 0})
        assert first.status_code == 200
    header = first.request.headers[HEADER]
    with httpx.Client(base_url=url, timeout=WAIT_SEC) as replayer:
        again = replayer.get(
            "/v1/tasks",
            params={"since": 0},
            headers={HEADER: header, AGENT_HEADER: first.request.headers[AGENT_HEADER]},
        )
    assert again.status_code == 401 and "replayed" in again.json()["detail"]


def test_orders_from_an_older_leader_are_refused(agent: tuple[AgentDaemon, str]) -> None:
    daemon, url = agent
    with _client(url, epoch=5) as leader:
        assert leader.get("/v1/tasks").status_code == 200
    spec = task_spec("sleep 30")
    with _client(url, epoch=4) as deposed:
        r = deposed.post("/v1/tasks", json=spec.to_json())
        assert r.status_code == 409
        assert "epoch 4 refused: this agent follows epoch 5" in r.json()["detail"]
        r = deposed.put("/v1/tasks/claims", json={"taskIds": []})
        assert r.status_code == 409
    assert not daemon.known(spec.taskId)


def test_the_master_drives_a_task_through_signed_calls(agent: tuple[AgentDaemon, str]) -> None:
    daemon, url = agent
    driver = DirectDriver(daemon.coord, poll_wait=0.5, secret=SECRET.encode())
    driver.start(Leadership(7), ActiveIndex([], []))
    try:
        wait_until("the host listed", driver.hosts, 20)
        spec = task_spec("echo signed")
        driver.launch([Placement(spec, daemon.agent_id)])

        def finished() -> bool:
            return any(
                r.report.taskId == spec.taskId and r.report.state == TaskState.FINISHED
                for r in driver.take_reports(0.2)
            )

        wait_until("the task finished", finished, WAIT_SEC)
        with _client(url, epoch=0) as api:  # the API reads output with no epoch
            out = api.get(f"/v1/tasks/{spec.taskId}/logs")
        assert out.status_code == 200 and out.text == "signed\n"
        with _client(url, epoch=6) as older:
            assert older.get("/v1/tasks").status_code == 409
    finally:
        driver.stop()


def test_a_log_offset_past_any_file_is_refused_not_a_crash(
    agent: tuple[AgentDaemon, str],
) -> None:
    _, url = agent
    with _client(url) as api:
        r = api.get("/v1/tasks/some-task/logs", params={"offset": 10**30})
    assert r.status_code == 422, r.text


def test_a_call_signed_for_another_host_is_refused(
    agent: tuple[AgentDaemon, str], agent_factory: AgentFactory, tmp_path: Path
) -> None:
    """Each host takes only calls signed for it: one host's credentials (what a host that
    was taken over holds) cannot order another host about, nor can a call meant for another
    host be sent to this one."""
    daemon, url = agent
    spec = task_spec("sleep 30")
    neighbour = AgentCredentials.derive(SECRET.encode(), "neighbour")
    body = json.dumps(spec.to_json()).encode()
    signed = RequestSigner(neighbour.secret).header("POST", "/v1/tasks", body, epoch=1)
    with httpx.Client(base_url=url, timeout=WAIT_SEC) as taken_over:
        r = taken_over.post(
            "/v1/tasks",
            content=body,
            headers={**signed, **for_agent(daemon.agent_id), "content-type": "application/json"},
        )
        assert r.status_code == 401 and "bad signature" in r.json()["detail"]
    with _client(url, agent="neighbour") as misaddressed:
        r = misaddressed.post("/v1/tasks", json=spec.to_json())
        assert r.status_code == 401
        assert "meant for agent 'neighbour'" in r.json()["detail"]
        assert daemon.agent_id in r.json()["detail"]
    assert not daemon.known(spec.taskId)

    # a host holding only its own credentials file (not the cluster secret) obeys the master
    credentials = tmp_path / "credentials.json"
    own_id = f"creds-{daemon.agent_id}"
    credentials.write_text(AgentCredentials.derive(SECRET.encode(), own_id).to_text())
    host = agent_factory(agent_id=own_id, agent_credentials_file=str(credentials))
    server = run_agent_server(host, "127.0.0.1", 0, background=True)
    try:
        host_url = f"http://127.0.0.1:{bound_port(server)}"
        with _client(host_url) as master:
            assert master.get("/v1/tasks").status_code == 200
        with httpx.Client(base_url=host_url, timeout=WAIT_SEC) as anyone:
            assert anyone.get("/v1/tasks").status_code == 401
    finally:
        server.should_exit = True


def test_credentials_written_for_another_agent_are_refused_by_name(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(AgentCredentials.derive(SECRET.encode(), "host-a").to_text())
    settings = Settings(agent_credentials_file=str(credentials))
    with pytest.raises(ValueError, match="is for agent 'host-a', not this agent 'host-b'"):
        settings.agent_credentials("host-b")
    credentials.write_text('{"agentId": "host-b", "secret": "short", "roleSecret": "x"}')
    with pytest.raises(ValueError, match="secret must be at least 32"):
        settings.agent_credentials("host-b")
