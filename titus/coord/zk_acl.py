"""ZooKeeper digest ACLs for the platform's nodes: who may read and write them.

With credentials `user:password` shared by every process of the platform, every node the
platform makes grants all rights to that identity and none to anyone else, so a client of
the ensemble without them can neither read the registry nor forge a leader, an epoch or an
agent. Nodes an earlier run made open are closed when a process with credentials starts.
"""

from __future__ import annotations

from collections.abc import Iterable

from kazoo.client import KazooClient
from kazoo.security import ACL, make_digest_acl


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
