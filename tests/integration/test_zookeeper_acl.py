"""Coordination with credentials on a real ZooKeeper: the platform's nodes are closed to
every client of the ensemble that does not hold them, and the platform works as before."""

from __future__ import annotations

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
from titus.coord.zookeeper import ZooKeeperCoordinator

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
