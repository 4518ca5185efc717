"""The direct cluster driver against a real agent over HTTP: a host that stops answering
takes no launches until it answers again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.docker_engine import AgentFactory, task_spec, wait_for_report
from tests.support.poll import wait_until
from titus.agent.daemon import AgentDaemon
from titus.agent.server import bound_port, run_agent_server
from titus.coord.base import Leadership
from titus.master.cluster import HostView, Placement
from titus.master.direct import DirectDriver
from titus.model.launch import TaskReport
from titus.model.states import TaskState
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


@dataclass
class Driven:
    """A real agent behind its HTTP API, and a direct driver of leader epoch 1 watching it."""

    agent: AgentDaemon
    server: Any
    driver: DirectDriver


@pytest.fixture
def driven(agent_factory: AgentFactory) -> Iterator[Driven]:
    agent = agent_factory()
    d = Driven(agent, _serve(agent), DirectDriver(agent.coord, poll_wait=0.5, lost_after=60))
    d.driver.start(Leadership(1), ActiveIndex([], []))
    try:
        _host(d.driver, lambda h: h.healthy, "healthy")
        yield d
    finally:
        d.driver.stop()
        d.server.should_exit = True


def test_a_host_that_stops_answering_is_unschedulable_until_it_answers(driven: Driven) -> None:
    driver = driven.driver
    driven.server.should_exit = True
    down = _host(driver, lambda h: not h.healthy, "shown unhealthy")
    assert any("not answering the master" in r for r in down.health_reasons)
    assert driver.lost_hosts() == set()  # not lost yet: its tasks are not given up
    driven.server = _serve(driven.agent)
    back = _host(driver, lambda h: h.healthy, "healthy again")
    assert not any("not answering" in r for r in back.health_reasons)


def test_a_task_the_host_never_heard_of_ends_as_lost_when_claimed(driven: Driven) -> None:
    """The agent took a task, reported it StartInitiated and died before making its
    container; back at once, it knows nothing of it. The claims tell the leader so, and the
    task ends as lost (placed again) instead of waiting for the stuck-task timeout; a task
    the host runs is not touched."""
    agent, driver = driven.agent, driven.driver
    running = task_spec("sleep 30")
    driver.launch([Placement(running, agent.agent_id)])
    wait_for_report(agent, running.taskId, TaskState.STARTED)
    driver.claim(agent.agent_id, [running.taskId, "forgotten-task"])

    def lost() -> list[TaskReport]:
        got = [r.report for r in driver.take_reports(0.2)]
        return [r for r in got if r.state == TaskState.FINISHED]

    finished = wait_until("the forgotten task reported lost", lost, 20)
    assert [(r.taskId, r.reasonCode) for r in finished] == [("forgotten-task", "lost")]
    assert "no longer knows the task" in finished[0].reasonMessage
    assert agent.is_running(running.taskId)


def test_a_host_whose_watch_ended_is_watched_again(driven: Driven) -> None:
    """Whatever ends a host's watch (an answer nobody foresaw, a thread that could not
    start), the registry's follower starts another: the host must not drop out of
    placement for good while it stays registered and answers."""
    driver = driven.driver
    with driver._lock:
        (watch,) = driver._watches.values()
    watch.stop.set()  # its thread ends, as if it had died
    watch.thread.join(5)

    def watched_again() -> bool:
        with driver._lock:
            current = next(iter(driver._watches.values()), None)
        return current is not None and current is not watch and current.synced

    wait_until("a new watch of the host", watched_again, 20)
    assert _host(driver, lambda h: h.healthy, "placed on again").host_id == driven.agent.agent_id
    assert driver.lost_hosts() == set()
