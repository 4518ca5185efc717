"""Coordination with credentials on a real ZooKeeper: the platform's nodes are closed to
every client of the ensemble that does not hold them, and the platform works as before."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from tests.support.poll import wait_until
from titus.coord.base import AgentInfo
from titus.coord.zk_acl import digest_acl
from titus.coord.zookeeper import REGISTRATIONS_REFUSED, ZooKeeperCoordinator
from titus.model.identity import AgentCredentials

pytestmark = [pytest.mark.zookeeper, pytest.mark.timeout(60)]

AUTH = "titus:s3cret"


def _client(hosts: str, auth: str = "") -> KazooClient:
    client = KazooClient(hosts=hosts, timeout=5.0, auth_data=[("digest", auth)] if auth else None)
    client.start(timeout=10)
    return client


@pytest.fixture
def root(zookeeper: str) -> Iterator[str]:
    """A root of its own, removed with the credentials that closed it."""
    path = f"/titus-acl-test/{uuid.uuid4().hex[:8]}"
    yield path
    client = _client(zookeeper, AUTH)
    try:
        client.delete(path, recursive=True)
    except Exception:  # ephemeral nodes of a session still closing go on their own
        pass
    finally:
        client.stop()
        client.close()


@pytest.fixture
def outsider(zookeeper: str) -> Iterator[KazooClient]:
    client = _client(zookeeper)
    yield client
    client.stop()
    client.close()


def test_without_credentials_nothing_of_the_platform_can_be_read_or_forged(
    zookeeper: str, root: str, outsider: KazooClient
) -> None:
    coordinator = ZooKeeperCoordinator(zookeeper, root, session_timeout=4.0, auth=AUTH)
    try:
        coordinator.register_agent(
            AgentInfo(id="agent-1", address="http://127.0.0.1:1", resources={"cpu": 1.0})
        )
        leadership = coordinator.campaign("m1", "http://127.0.0.1:2", threading.Event())
        assert leadership is not None and leadership.epoch == 1
        attempts = {
            "read an agent": lambda: outsider.get(f"{root}/agents/agent-1"),
            "read the leader": lambda: outsider.get(f"{root}/leader/address"),
            "list the agents": lambda: outsider.get_children(f"{root}/agents"),
            "raise the epoch": lambda: outsider.set(f"{root}/leader/epoch", b"99"),
            "forge an agent": lambda: outsider.create(f"{root}/agents/evil", b"{}"),
            "remove an agent": lambda: outsider.delete(f"{root}/agents/agent-1"),
            "join the election": lambda: outsider.create(
                f"{root}/leader/election/x-n_", b"", ephemeral=True, sequence=True
            ),
            "wake the masters": lambda: outsider.set(f"{root}/wake", b"x"),
            "open the root": lambda: outsider.set_acls(root, OPEN_ACL_UNSAFE),
        }
        for what, attempt in attempts.items():
            with pytest.raises(NoAuthError):
                attempt()
                pytest.fail(f"a client without credentials could {what}")
        # the platform itself goes on: a second process with the credentials sees it all
        peer = ZooKeeperCoordinator(zookeeper, root, session_timeout=4.0, auth=AUTH)
        try:
            assert peer.leader_epoch() == 1
            assert [a.id for a in wait_until("the peer's agent view", peer.agents, 10)] == [
                "agent-1"
            ]
        finally:
            peer.close()
    finally:
        coordinator.close()


def test_wrong_credentials_are_refused_like_none(
    zookeeper: str, root: str, outsider: KazooClient
) -> None:
    ZooKeeperCoordinator(zookeeper, root, session_timeout=4.0, auth=AUTH).close()
    with pytest.raises(PermissionError, match="not open to these credentials"):
        ZooKeeperCoordinator(zookeeper, root, session_timeout=4.0, auth="titus:guess")
    with pytest.raises(NoAuthError):
        outsider.get(f"{root}/leader/epoch")


def test_nodes_an_open_run_left_are_closed_when_credentials_are_set(
    zookeeper: str, root: str, outsider: KazooClient
) -> None:
    ZooKeeperCoordinator(zookeeper, root, session_timeout=4.0).close()
    assert outsider.get(f"{root}/leader/epoch")[0] == b"0"  # open: no credentials yet
    ZooKeeperCoordinator(zookeeper, root, session_timeout=4.0, auth=AUTH).close()
    for path in (root, f"{root}/leader/epoch", f"{root}/agents", f"{root}/wake"):
        with pytest.raises(NoAuthError):
            outsider.get(path)
    # the root's parent is the ensemble's, not the platform's: other tenants still use it
    neighbour = outsider.create(f"{root.rpartition('/')[0]}/neighbour-", sequence=True)
    outsider.delete(neighbour)
    admin = _client(zookeeper, AUTH)
    try:
        acl, _ = admin.get_acls(f"{root}/leader/epoch")
        assert list(acl) == digest_acl(AUTH)
    finally:
        admin.stop()
        admin.close()


@pytest.mark.parametrize("bad", ["titus", ":pw", "titus:"])
def test_malformed_credentials_are_refused_naming_the_setting(bad: str) -> None:
    with pytest.raises(ValueError, match="coord_auth"):
        digest_acl(bad)


CLUSTER_SECRET = b"the-cluster-secret-0123456789"


def _host(zookeeper: str, root: str, agent_id: str) -> ZooKeeperCoordinator:
    """An agent host holding only its own credentials, as `titus agent-credentials` gives."""
    credentials = AgentCredentials.derive(CLUSTER_SECRET, agent_id)
    return ZooKeeperCoordinator(zookeeper, root, session_timeout=4.0, agent_credentials=credentials)


def _info(agent_id: str, port: int = 1) -> AgentInfo:
    return AgentInfo(id=agent_id, address=f"http://127.0.0.1:{port}", resources={"cpu": 1.0})


def _refused() -> float:
    return sum(
        sample.value
        for metric in REGISTRATIONS_REFUSED.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def test_an_agent_host_may_change_its_own_registration_and_nothing_else(
    zookeeper: str, root: str
) -> None:
    platform = ZooKeeperCoordinator(
        zookeeper, root, session_timeout=4.0, auth=AUTH, cluster_secret=CLUSTER_SECRET
    )
    host_a, host_b = _host(zookeeper, root, "host-a"), _host(zookeeper, root, "host-b")
    try:
        host_a.register_agent(_info("host-a"))
        host_b.register_agent(_info("host-b"))

        def registered() -> list[str]:
            return [a.id for a in platform.agents()]

        wait_until("both hosts registered", lambda: registered() == ["host-a", "host-b"], 10)
        taken_over = host_b.client  # what a host that was taken over can do with its session
        forged = json.dumps(_info("host-a", 666).to_json()).encode()
        attempts = {
            "remove another host's registration": lambda: taken_over.delete(
                f"{root}/agents/host-a"
            ),
            "rewrite another host's address": lambda: taken_over.set(
                f"{root}/agents/host-a", forged
            ),
            "open another host's registration": lambda: taken_over.set_acls(
                f"{root}/agents/host-a", OPEN_ACL_UNSAFE
            ),
            "read the epoch": lambda: taken_over.get(f"{root}/leader/epoch"),
            "raise the epoch": lambda: taken_over.set(f"{root}/leader/epoch", b"99"),
            "join the election": lambda: taken_over.create(
                f"{root}/leader/election/x-n_", b"", ephemeral=True, sequence=True
            ),
            "wake the masters": lambda: taken_over.set(f"{root}/wake", b"x"),
        }
        for what, attempt in attempts.items():
            with pytest.raises(NoAuthError):
                attempt()
                pytest.fail(f"an agent host could {what}")

        # a node made under a free name, or naming another agent, is not believed
        before = _refused()
        taken_over.create(f"{root}/agents/host-c", json.dumps(_info("host-c").to_json()).encode())
        taken_over.create(f"{root}/agents/host-d", forged)
        wait_until("both forgeries refused", lambda: _refused() >= before + 2, 10)
        assert registered() == ["host-a", "host-b"]
        assert [a.address for a in platform.agents()][0] == "http://127.0.0.1:1"
        # hosts read each other's health (the fleet-wide termination limit needs it)
        wait_until("host-a seen by host-b", lambda: "host-a" in [a.id for a in host_b.agents()], 10)
    finally:
        for c in (host_a, host_b, platform):
            c.close()


def test_a_restarted_host_takes_its_registration_back(zookeeper: str, root: str) -> None:
    platform = ZooKeeperCoordinator(
        zookeeper, root, session_timeout=4.0, auth=AUTH, cluster_secret=CLUSTER_SECRET
    )
    old = _host(zookeeper, root, "host-a")
    new: ZooKeeperCoordinator | None = None
    try:
        old.register_agent(_info("host-a", 1))

        def address() -> str | None:
            return next((a.address for a in platform.agents() if a.id == "host-a"), None)

        wait_until("the first process registered", lambda: address() == "http://127.0.0.1:1", 10)
        # the new process may not remove the old one's node: it writes itself into it ...
        new = _host(zookeeper, root, "host-a")
        new.register_agent(_info("host-a", 2))
        wait_until("the new address published", lambda: address() == "http://127.0.0.1:2", 10)
        # ... and makes it its own once the old session ends
        old.close()
        wait_until(
            "the registration owned by the new session",
            lambda: (
                new is not None
                and (stat := new.client.exists(f"{root}/agents/host-a")) is not None
                and stat.ephemeralOwner == new.client.client_id[0]
            ),
            10,
        )
        # the masters see it gone for a moment, then made anew by the live process
        wait_until("the new process registered", lambda: address() == "http://127.0.0.1:2", 10)
    finally:
        for c in (old, new, platform):
            if c is not None:
                c.close()


def test_an_agent_host_waits_for_the_platform_and_does_not_make_its_nodes(
    zookeeper: str, root: str
) -> None:
    credentials = AgentCredentials.derive(CLUSTER_SECRET, "host-a")
    with pytest.raises(PermissionError, match="no agent registry"):
        ZooKeeperCoordinator(
            zookeeper, root, session_timeout=4.0, connect_timeout=1.0, agent_credentials=credentials
        )
    # a host started with the platform joins once the platform has made the registry
    joined: list[ZooKeeperCoordinator] = []
    booting = threading.Thread(target=lambda: joined.append(_host(zookeeper, root, "host-a")))
    booting.start()
    platform = ZooKeeperCoordinator(
        zookeeper, root, session_timeout=4.0, auth=AUTH, cluster_secret=CLUSTER_SECRET
    )
    try:
        booting.join(20)
        assert joined, "the host did not join once the registry was made"
        joined[0].register_agent(_info("host-a"))
        wait_until("the host registered", lambda: [a.id for a in platform.agents()], 10)
    finally:
        for c in (*joined, platform):
            c.close()
