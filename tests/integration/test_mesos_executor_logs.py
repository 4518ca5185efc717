"""The Mesos executor's log endpoint, served over HTTP on loopback as the executor serves it:
with the platform's secret set it answers only calls signed for its Mesos agent, signed the
way the API's log proxy signs them; and it publishes the agent's advertised address, not
the one it listens on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from titus.agent.logs import LogFiles
from titus.agent.mesos_executor import serve_logs
from titus.agent.server import bound_port
from titus.coord.agent_calls import SignedCalls, agent_auth, for_agent
from titus.settings import Settings

SECRET = "the-platform-shared-secret-0123"
AGENT = "mesos-agent-S7"
TASK = "task-0123456789ab"
OUTPUT = b"hello from the task\n"


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(where the endpoint listens, the address it publishes) for a task with output."""
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        cluster_secret=SECRET,
        agent_host="127.0.0.1",
        agent_advertise_host="10.1.2.3",
    )
    logs = LogFiles(tmp_path / "logs")
    logs.task_dir(TASK).mkdir(parents=True)
    logs.path(TASK, "stdout").write_bytes(OUTPUT)
    server, published = serve_logs(settings, AGENT, logs, lambda task_id: False)
    try:
        yield f"http://127.0.0.1:{bound_port(server)}", published
    finally:
        server.should_exit = True


def test_the_published_address_is_the_advertised_one_on_the_port_it_listens_on(
    endpoint: tuple[str, str], tmp_path: Path
) -> None:
    listening, published = endpoint
    assert published == f"http://10.1.2.3:{listening.rsplit(':', 1)[1]}"
    # without an advertised address, the bind address is the published one
    plain = Settings(data_dir=str(tmp_path / "d2"), cluster_secret=SECRET)
    server, address = serve_logs(plain, AGENT, LogFiles(tmp_path / "l2"), lambda t: False)
    try:
        assert address == f"http://{plain.agent_host}:{bound_port(server)}"
    finally:
        server.should_exit = True


def test_unsigned_and_forged_calls_are_refused_and_the_apis_signed_call_is_served(
    endpoint: tuple[str, str],
) -> None:
    url, _ = endpoint
    path = f"/v1/tasks/{TASK}/logs"
    unsigned = httpx.get(url + path, timeout=10)
    assert unsigned.status_code == 401 and "unsigned request" in unsigned.json()["detail"]
    assert OUTPUT.decode() not in unsigned.text

    forged = httpx.get(
        url + path,
        headers=for_agent(AGENT),
        auth=SignedCalls(b"another-secret-of-enough-length"),
        timeout=10,
    )
    assert forged.status_code == 401 and "bad signature" in forged.json()["detail"]

    elsewhere = httpx.get(
        url + path, headers=for_agent("mesos-agent-S8"), auth=SignedCalls(SECRET.encode())
    )
    assert elsewhere.status_code == 401 and "meant for agent" in elsewhere.json()["detail"]

    # as the API's log proxy calls it: its agent authentication, the agent named
    api_auth = agent_auth(Settings(cluster_secret=SECRET).shared_secret())
    assert api_auth is not None
    served = httpx.get(url + path, headers=for_agent(AGENT), auth=api_auth, timeout=10)
    assert served.status_code == 200, served.text
    assert served.content == OUTPUT
    followed = httpx.get(
        url + path, params={"follow": "true"}, headers=for_agent(AGENT), auth=api_auth
    )
    assert followed.status_code == 200 and followed.content == OUTPUT
