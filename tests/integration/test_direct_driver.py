"""The direct cluster driver against a real agent over HTTP: a host that stops answering
takes no launches until it answers again."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.docker_engine import AgentFactory
from tests.support.poll import wait_until
from titus.agent.daemon import AgentDaemon
from titus.agent.server import bound_port, run_agent_server
from titus.coord.base import Leadership
from titus.master.cluster import HostView
from titus.master.direct import DirectDriver
from titus.store.base import ActiveIndex

pytestmark = pytest.mark.docker


def _serve(agent: AgentDaemon) -> object:
    """The agent's API on a fresh port, published in the agent's registration."""
    server = run_agent_server(agent, "127.0.0.1", 0, background=True)
    agent.info.address = f"http://127.0.0.1:{bound_port(server)}"
    agent.coord.register_agent(agent.info)
    return server


def _host(driver: DirectDriver, check: Callable[[HostView], bool], what: str) -> HostView:
    def found() -> HostView | None:
        hosts = driver.hosts()
        return hosts[0] if hosts and check(hosts[0]) else None

    return wait_until(f"the host {what}", found, 20)


def test_a_host_that_stops_answering_is_unschedulable_until_it_answers(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory()
    server = _serve(agent)
    driver = DirectDriver(agent.coord, poll_wait=0.5, lost_after=60)
    driver.start(Leadership(1), ActiveIndex([], []))
    try:
        _host(driver, lambda h: h.healthy, "healthy")
        server.should_exit = True  # type: ignore[attr-defined]
        down = _host(driver, lambda h: not h.healthy, "shown unhealthy")
        assert any("not answering the master" in r for r in down.health_reasons)
        assert driver.lost_hosts() == set()  # not lost yet: its tasks are not given up
        server = _serve(agent)
        back = _host(driver, lambda h: h.healthy, "healthy again")
        assert not any("not answering" in r for r in back.health_reasons)
    finally:
        driver.stop()
        server.should_exit = True  # type: ignore[attr-defined]
