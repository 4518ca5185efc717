"""Coordination on a real ZooKeeper: election and failover, session loss, fencing of a
deposed leader's writes, the agent registry and wake-ups."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooState
from kazoo.protocol.serialization import Create

from tests.support.poll import wait_until
from tests.support.zookeeper import TEST_SESSION_TIMEOUT, WAIT_SEC, ZkProxy, expire_session
from titus.coord.base import AgentInfo, Leadership
from titus.coord.zookeeper import ZooKeeperCoordinator
from titus.store.base import StaleEpoch
from titus.store.sqlite import SqliteJobStore

pytestmark = [pytest.mark.zookeeper, pytest.mark.timeout(60)]

Factory = Callable[..., ZooKeeperCoordinator]


class Campaign:
    """A candidate campaigning in its own thread, as a master process does."""

    def __init__(self, coordinator: ZooKeeperCoordinator, candidate_id: str, address: str):
        self.coordinator = coordinator
        self.stop = threading.Event()
        self.done = threading.Event()
        self.leadership: Leadership | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.leadership = coordinator.campaign(candidate_id, address, self.stop)
            except BaseException as exc:  # surfaced by result()
                self.error = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True, name=f"campaign-{candidate_id}")
        self.thread.start()

    def result(self, timeout: float = 15.0) -> Leadership | None:
        assert self.done.wait(timeout), "campaign did not end"
        if self.error is not None:
            raise self.error
        return self.leadership

    def cancel(self) -> Leadership | None:
        self.stop.set()
        return self.result()


def lead(coordinator: ZooKeeperCoordinator, candidate_id: str, address: str) -> Leadership:
    leadership = Campaign(coordinator, candidate_id, address).result()
    assert leadership is not None
    assert leadership.can_act()
    return leadership


def agent(agent_id: str, **attributes: str) -> AgentInfo:
    return AgentInfo(
        id=agent_id,
        address=f"http://127.0.0.1:7{len(agent_id)}00",
        resources={"cpu": 4.0, "memoryMB": 8192.0},
        attributes=dict(attributes),
    )


# ---- election ---------------------------------------------------------------------------


def test_one_leads_and_the_other_takes_over_when_it_resigns(zk_coordinator: Factory) -> None:
    a, b = zk_coordinator(), zk_coordinator()
    first = lead(a, "master-a", "http://a:7001")
    waiting = Campaign(b, "master-b", "http://b:7001")
    assert not waiting.done.wait(0.5), "a second leader was elected while the first leads"
    assert a.leader_address() == b.leader_address() == "http://a:7001"

    a.resign(first)
    second = waiting.result()
    assert second is not None and second.can_act()
    assert first.lost.is_set() and not first.can_act()
    assert second.epoch > first.epoch
    assert b.leader_address() == a.leader_address() == "http://b:7001"


def test_leader_that_closes_is_replaced_at_once(zk_coordinator: Factory) -> None:
    a, b = zk_coordinator(), zk_coordinator()
    first = lead(a, "master-a", "http://a:7001")
    waiting = Campaign(b, "master-b", "http://b:7001")
    a.close()
    second = waiting.result()
    assert second is not None
    assert second.epoch > first.epoch
    assert first.lost.is_set()
    assert b.leader_address() == "http://b:7001"


def test_expired_session_deposes_the_leader(zookeeper: str, zk_coordinator: Factory) -> None:
    a, b = zk_coordinator(), zk_coordinator()
    first = lead(a, "master-a", "http://a:7001")
    waiting = Campaign(b, "master-b", "http://b:7001")

    expire_session(zookeeper, a.client)
    wait_until("the deposed leader to see its session lost", first.lost.is_set, WAIT_SEC)
    assert not first.can_act()
    second = waiting.result()
    assert second is not None and second.epoch > first.epoch
    assert a.leader_address() == "http://b:7001"

    # with a new session the old leader campaigns again and leads after b, with a newer epoch
    again = Campaign(a, "master-a", "http://a:7001")
    assert not again.done.wait(0.3)
    b.resign(second)
    third = again.result()
    assert third is not None and third.epoch > second.epoch


def test_epochs_grow_over_many_elections(zk_coordinator: Factory) -> None:
    coordinators = [zk_coordinator() for _ in range(3)]
    epochs = []
    for round_ in range(6):
        coordinator = coordinators[round_ % 3]
        leadership = lead(coordinator, f"master-{round_}", f"http://m{round_}:7001")
        epochs.append(leadership.epoch)
        coordinator.resign(leadership)
    assert epochs == sorted(set(epochs))
    assert coordinators[0].leader_epoch() == epochs[-1]


def test_stopped_campaign_leaves_the_queue(zk_coordinator: Factory) -> None:
    a, b, c = zk_coordinator(), zk_coordinator(), zk_coordinator()
    first = lead(a, "master-a", "http://a:7001")
    waiting = Campaign(b, "master-b", "http://b:7001")
    assert not waiting.done.wait(0.3)
    assert waiting.cancel() is None

    # b left the queue: when a resigns, c (queued after b) is elected, not held up by b
    later = Campaign(c, "master-c", "http://c:7001")
    a.resign(first)
    third = later.result()
    assert third is not None and third.epoch > first.epoch
    assert b.leader_address() == "http://c:7001"


# ---- session handling -------------------------------------------------------------------


def test_suspended_leader_stops_acting_and_resumes_on_reconnect(
    zk_coordinator: Factory, zk_proxy: ZkProxy
) -> None:
    a = zk_coordinator(zk_proxy.hosts, session_timeout=4.0)
    b = zk_coordinator()
    leadership = lead(a, "master-a", "http://a:7001")
    waiting = Campaign(b, "master-b", "http://b:7001")

    zk_proxy.cut()
    wait_until("the leader to be suspended", lambda: not leadership.active.is_set(), WAIT_SEC)
    assert not leadership.can_act()
    assert not leadership.lost.is_set()

    zk_proxy.restore()  # well within the session timeout: the session lives on
    wait_until("the leader to act again after reconnecting", leadership.active.is_set, WAIT_SEC)
    assert leadership.can_act()
    assert not waiting.done.is_set(), "b was elected although a's session survived"
    assert b.leader_address() == "http://a:7001"
    waiting.cancel()


def test_leader_cut_off_for_a_session_timeout_steps_down(
    zk_coordinator: Factory, zk_proxy: ZkProxy
) -> None:
    a = zk_coordinator(zk_proxy.hosts)
    b = zk_coordinator()
    first = lead(a, "master-a", "http://a:7001")
    waiting = Campaign(b, "master-b", "http://b:7001")

    zk_proxy.cut()
    # the server expires a's session and elects b; a, still cut off, gives itself up
    second = waiting.result(timeout=TEST_SESSION_TIMEOUT * 5)
    assert second is not None and second.epoch > first.epoch
    wait_until("the cut-off leader to step down", first.lost.is_set, WAIT_SEC)
    assert not first.can_act()

    zk_proxy.restore()
    again = Campaign(a, "master-a", "http://a:7001")
    assert not again.done.wait(0.3), "the old leader took over from a live leader"
    b.resign(second)
    third = again.result()
    assert third is not None and third.epoch > second.epoch


def test_leader_resigning_while_cut_off_frees_its_place_on_reconnect(
    zk_coordinator: Factory, zk_proxy: ZkProxy
) -> None:
    a = zk_coordinator(zk_proxy.hosts, session_timeout=6.0)
    b = zk_coordinator()
    first = lead(a, "master-a", "http://a:7001")
    session = a.client.client_id
    waiting = Campaign(b, "master-b", "http://b:7001")

    zk_proxy.cut()
    wait_until("the leader to be suspended", lambda: not first.active.is_set(), WAIT_SEC)
    a.resign(first)  # returns without a server to talk to
    assert first.lost.is_set()

    zk_proxy.restore()
    second = waiting.result()
    assert second is not None and second.epoch > first.epoch
    # b was elected because a deleted its node on reconnecting, not because its session died
    assert a.client.client_id == session


def test_a_candidate_cut_off_briefly_keeps_its_place_and_leads_when_its_turn_comes(
    zk_coordinator: Factory, zk_proxy: ZkProxy
) -> None:
    """A waiting candidate whose connection drops (within the session timeout: its session,
    and so its place in the queue, lives on) must not queue again behind its own node: that
    node, of a live session nobody watches, would stand ahead of everyone for good."""
    a = zk_coordinator()
    b = zk_coordinator(zk_proxy.hosts, session_timeout=6.0)
    first = lead(a, "master-a", "http://a:7001")
    waiting = Campaign(b, "master-b", "http://b:7001")
    session = b.client.client_id
    wait_until("b to queue", lambda: len(a.client.get_children(_election(a))) == 2, WAIT_SEC)

    zk_proxy.cut()
    wait_until("b to be disconnected", lambda: not b.client.connected, WAIT_SEC)
    zk_proxy.restore()
    wait_until("b to reconnect", lambda: b.client.connected, WAIT_SEC)
    assert b.client.client_id == session  # the same session: its node is still there

    a.close()
    second = waiting.result()
    assert second is not None and second.epoch > first.epoch
    assert len(b.client.get_children(_election(b))) == 1  # its one node, no stray one


def test_a_deposed_leader_whose_session_expired_queues_again_once_and_leads_in_turn(
    zookeeper: str, zk_coordinator: Factory, zk_proxy: ZkProxy
) -> None:
    """A master cut off from ZooKeeper campaigns again (it stepped down); its session
    expires, and its next one is slow to come (here: cut off at once). It asks for its
    place while it has no session; the node is made in the next one. That node is its
    place: taken for another session's, it would stay, of a live session nobody watches,
    ahead of everyone for good, and no one would ever lead again."""
    a = zk_coordinator()
    b = zk_coordinator(zk_proxy.hosts, session_timeout=6.0)
    first = lead(a, "master-a", "http://a:7001")
    session = b.client.client_id
    zk_proxy.cut()
    wait_until("b to be disconnected", lambda: not b.client.connected, WAIT_SEC)
    waiting = Campaign(b, "master-b", "http://b:7001")  # its node asked for while cut off
    expire_session(zookeeper, b.client, session)

    def cut_when_lost(state: KazooState) -> None:
        if state == KazooState.LOST:
            zk_proxy.cut()

    b.client.add_listener(cut_when_lost)
    zk_proxy.restore()  # b hears its session expired, and is cut off again at once
    wait_until(
        "b to ask for its place without a session",
        lambda: (
            b.client.state == KazooState.LOST
            and any(isinstance(request, Create) for request, _ in list(b.client._queue))
        ),
        WAIT_SEC,
    )
    b.client.remove_listener(cut_when_lost)
    zk_proxy.restore()
    wait_until("b to connect in a new session", lambda: b.client.connected, WAIT_SEC)

    a.close()
    second = waiting.result()
    assert second is not None and second.epoch > first.epoch
    assert len(b.client.get_children(_election(b))) == 1  # its one node, no stray one


def _election(c: ZooKeeperCoordinator) -> str:
    return f"{c.root}/leader/election"


# ---- fencing ------------------------------------------------------------------------------


def test_deposed_leader_cannot_write_after_the_new_one_claimed(
    zookeeper: str, zk_coordinator: Factory, tmp_path: Path
) -> None:
    store_a = SqliteJobStore(tmp_path / "titus.db")
    store_b = SqliteJobStore(tmp_path / "titus.db")
    a, b = zk_coordinator(), zk_coordinator()
    old = lead(a, "master-a", "http://a:7001")
    store_a.claim_epoch(old.epoch)
    store_a.set_meta("owner", "a", epoch=old.epoch)
    waiting = Campaign(b, "master-b", "http://b:7001")

    expire_session(zookeeper, a.client)
    new = waiting.result()
    assert new is not None
    store_b.claim_epoch(new.epoch)
    store_b.set_meta("owner", "b", epoch=new.epoch)

    # a has not necessarily noticed yet; the store refuses it either way
    with pytest.raises(StaleEpoch):
        store_a.set_meta("owner", "a", epoch=old.epoch)
    with pytest.raises(StaleEpoch):
        store_a.claim_epoch(old.epoch)
    assert store_a.get_meta("owner") == "b"
    assert store_a.current_epoch() == new.epoch
    store_a.close()
    store_b.close()


# ---- agent registry ---------------------------------------------------------------------


def test_agents_appear_update_and_vanish_with_their_session(zk_coordinator: Factory) -> None:
    master, host1, host2 = zk_coordinator(), zk_coordinator(), zk_coordinator()
    assert master.agents() == []
    host1.register_agent(agent("agent-1", zone="us-east-1a"))
    host2.register_agent(agent("agent-2", zone="us-east-1b"))
    wait_until(
        "agents", lambda: [a.id for a in master.agents()] == ["agent-1", "agent-2"], WAIT_SEC
    )
    assert master.agents()[0].attributes == {"zone": "us-east-1a"}

    unhealthy = agent("agent-1", zone="us-east-1a")
    unhealthy.healthy = False
    unhealthy.health_reasons = ["docker not answering"]
    host1.register_agent(unhealthy)
    wait_until("the health update", lambda: not master.agents()[0].healthy, WAIT_SEC)
    assert master.agents()[0].health_reasons == ["docker not answering"]

    host2.close()  # the agent's process ends: its node goes with its session
    wait_until(
        "agent-2 to vanish", lambda: [a.id for a in master.agents()] == ["agent-1"], WAIT_SEC
    )

    host1.unregister_agent("agent-1")
    wait_until("agent-1 to be unregistered", lambda: master.agents() == [], WAIT_SEC)


def test_agent_is_republished_after_its_session_expires(
    zookeeper: str, zk_coordinator: Factory
) -> None:
    master, host = zk_coordinator(), zk_coordinator()
    host.register_agent(agent("agent-1"))
    wait_until("agent-1", lambda: [a.id for a in master.agents()] == ["agent-1"], WAIT_SEC)
    old_session = host.client.client_id[0]

    expire_session(zookeeper, host.client)

    def session() -> int | None:
        client_id = host.client.client_id  # None while it connects
        return client_id[0] if client_id else None

    wait_until("a new session", lambda: session() not in (None, old_session), WAIT_SEC)

    def republished() -> bool:
        stat = host.client.exists(f"{host.root}/agents/agent-1")
        return stat is not None and stat.ephemeralOwner == session()

    wait_until("agent-1 to be published again under the new session", republished, WAIT_SEC)
    wait_until("agent-1 back", lambda: [a.id for a in master.agents()] == ["agent-1"], WAIT_SEC)


def test_a_restarted_agent_replaces_its_predecessor(zk_coordinator: Factory) -> None:
    master, old, new = zk_coordinator(), zk_coordinator(), zk_coordinator()
    old.register_agent(agent("agent-1", generation="1"))
    new.register_agent(agent("agent-1", generation="2"))
    wait_until(
        "the new process's agent info",
        lambda: [a.attributes.get("generation") for a in master.agents()] == ["2"],
        WAIT_SEC,
    )
    old.close()  # the old process's end does not remove the new one's node
    assert new.client.exists(f"{new.root}/agents/agent-1") is not None
    wait_until("agent-1 to stay", lambda: len(master.agents()) == 1, WAIT_SEC)


def test_a_restarted_agent_registers_when_its_predecessors_node_goes_meanwhile(
    zk_coordinator: Factory,
) -> None:
    """The old process's session ends between the new process seeing its node and
    removing it (a kill -9 whose session expires just then): the new process must
    register all the same, not die at start with the node gone."""
    master, old, new = zk_coordinator(), zk_coordinator(), zk_coordinator()
    old.register_agent(agent("agent-1", generation="1"))
    real_delete = new.client.delete

    def delete_after_the_old_session_ended(path: str, version: int = -1) -> Any:
        if old.client.connected:
            old.close()  # its ephemeral node goes now, before this delete
        return real_delete(path, version=version)

    new.client.delete = delete_after_the_old_session_ended  # type: ignore[method-assign]
    new.register_agent(agent("agent-1", generation="2"))
    wait_until(
        "the new process's agent info",
        lambda: [a.attributes.get("generation") for a in master.agents()] == ["2"],
        WAIT_SEC,
    )


def test_an_agent_restarting_over_and_over_is_listed_as_it_last_registered(
    zk_coordinator: Factory,
) -> None:
    """Each restart deletes the old process's node and makes a new one at once; however
    the registry's watches see that pair of changes, the agent must not drop out of the
    master's view (its tasks would be declared lost and nothing placed on it again)."""
    master, first, second = zk_coordinator(), zk_coordinator(), zk_coordinator()
    first.register_agent(agent("agent-1", generation="0"))
    wait_until("agent-1", lambda: len(master.agents()) == 1, WAIT_SEC)
    processes = (first, second)
    for generation in range(1, 120):
        processes[generation % 2].register_agent(agent("agent-1", generation=str(generation)))
    wait_until(
        "the last registration",
        lambda: [a.attributes.get("generation") for a in master.agents()] == ["119"],
        WAIT_SEC,
    )
    second.unregister_agent("agent-1")
    wait_until("agent-1 to be gone", lambda: master.agents() == [], WAIT_SEC)


def test_an_agent_listed_just_before_its_node_went_is_seen_when_it_comes_back(
    zk_coordinator: Factory,
) -> None:
    """The children watch lists a node that is deleted before its data watch first reads
    it (a restarting agent replaces its node): when the node is made again, the agent is
    listed. The listing is replayed by hand; the race cannot be timed from outside."""
    master, host = zk_coordinator(), zk_coordinator()
    assert master.agents() == []
    master._on_agent_children(["agent-9"])  # listed, but no node by the time it is read
    host.register_agent(agent("agent-9"))
    wait_until("agent-9", lambda: [a.id for a in master.agents()] == ["agent-9"], WAIT_SEC)


# ---- wake-ups -----------------------------------------------------------------------------


def test_wake_from_the_api_reaches_the_master(zk_coordinator: Factory) -> None:
    api, master = zk_coordinator(), zk_coordinator()
    assert master.wait_wake(0.05) is False
    api.wake()
    assert master.wait_wake(10.0) is True
    api.wake()
    api.wake()
    assert master.wait_wake(10.0) is True


# ---- construction -------------------------------------------------------------------------


def test_from_url(zookeeper: str, zk_root: str) -> None:
    coordinator = ZooKeeperCoordinator.from_url(f"zk://{zookeeper}{zk_root}?session_timeout=3")
    try:
        assert coordinator.root == zk_root
        assert coordinator.hosts == zookeeper
        assert coordinator.session_timeout == 3.0
        assert coordinator.leader_address() is None
    finally:
        coordinator.close()
    with pytest.raises(ValueError, match="zk://"):
        ZooKeeperCoordinator.from_url(f"http://{zookeeper}/titus")
