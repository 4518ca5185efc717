"""ZooKeeper digest ACLs for the platform's nodes: who may read and write them.

With credentials `user:password` shared by every process of the platform, every node the
platform makes grants all rights to that identity and none to anyone else, so a client of
the ensemble without them can neither read the registry nor forge a leader, an epoch or an
agent. Nodes an earlier run made open are closed when a process with credentials starts.

Agent hosts get less (titus/model/identity.py): the registry grants the agents' role only
listing, adding and reading, and each agent's node grants writes to that agent alone.
Deleting a node takes the DELETE right on its parent, which no agent has, so no host can
remove another's registration.
"""

from __future__ import annotations

from collections.abc import Iterable

from kazoo.client import KazooClient
from kazoo.security import ACL, make_acl, make_digest_acl, make_digest_acl_credential

from titus.model.identity import AGENTS_ROLE_USER, AgentCredentials, agents_role_secret


def digest_acl(auth: str) -> list[ACL]:
    """The ACL of every node made with credentials `user:password`: all rights to that
    identity, none to anyone else. No credentials: no ACL (ZooKeeper's open default)."""
    if not auth:
        return []
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise ValueError("coordination credentials must be 'user:password' (coord_auth)")
    return [make_digest_acl(user, password, all=True)]


def close_open_nodes(client: KazooClient, paths: Iterable[str], acl: list[ACL]) -> list[str]:
    """Give `acl` to those of `paths` whose ACL differs (left open by a run without
    credentials); return them. The root's ancestors are not passed here: other tenants of
    the ensemble may share them."""
    changed = []
    for path in paths:
        current, _ = client.retry(client.get_acls, path)
        if list(current) != list(acl):
            client.retry(client.set_acls, path, acl)
            changed.append(path)
    return changed


def role_auth(cluster_secret: bytes) -> str:
    """kazoo digest credentials of the agents' role, derived from the cluster secret."""
    return f"{AGENTS_ROLE_USER}:{agents_role_secret(cluster_secret).decode()}"


def _role_id(role_secret: bytes) -> str:
    return make_digest_acl_credential(AGENTS_ROLE_USER, role_secret.decode())


def agents_parent_acl(platform_acl: list[ACL], cluster_secret: bytes | None) -> list[ACL]:
    """The registry node's ACL: the platform's, plus listing and adding (never deleting)
    for the agents' role when agents have identities of their own."""
    if not platform_acl or not cluster_secret:
        return platform_acl
    role = make_acl("digest", _role_id(agents_role_secret(cluster_secret)), read=True, create=True)
    return [*platform_acl, role]


def agent_node_acl(credentials: AgentCredentials) -> list[ACL]:
    """One agent's registration: everything to that agent, reading to the agents' role
    (masters read as the role too; hosts read each other's health)."""
    own = make_digest_acl(credentials.zk_user, credentials.secret.decode(), all=True)
    readers = make_acl("digest", _role_id(credentials.role_secret), read=True)
    return [own, readers]
