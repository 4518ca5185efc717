"""`CassandraJobStore`: the role parts composed over one connection, and how it is opened
(arguments or a `cassandra://` URL)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from cassandra import ConsistencyLevel

from titus.store.cassandra.attributes import AttributesPart
from titus.store.cassandra.cluster import ClusterConfigPart
from titus.store.cassandra.feed import ChangeFeedPart
from titus.store.cassandra.fencing import Fence, LeadershipPart
from titus.store.cassandra.groups import GROUP_MAX_WRITES, BatchGroups
from titus.store.cassandra.idempotency import IdempotencyPart
from titus.store.cassandra.jobs import JobsPart
from titus.store.cassandra.policies import ScalingPoliciesPart
from titus.store.cassandra.requests import RequestsPart
from titus.store.cassandra.results import SchedulerResultsPart
from titus.store.cassandra.schema import DEFAULT_BUCKETS, migrate
from titus.store.cassandra.session import CassandraSession, connect
from titus.store.cassandra.statements import STATEMENTS
from titus.store.cassandra.tasks import TasksPart

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


class CassandraJobStore(
    JobsPart,
    TasksPart,
    RequestsPart,
    LeadershipPart,
    ClusterConfigPart,
    ChangeFeedPart,
    IdempotencyPart,
    AttributesPart,
    SchedulerResultsPart,
    ScalingPoliciesPart,
):
    """JobStore on Cassandra; see the package docstring for the consistency rules."""

    def __init__(
        self,
        contact_points: Sequence[str],
        *,
        port: int = 9042,
        keyspace: str = "titus",
        local_dc: str | None = None,
        replication: dict[str, Any] | None = None,
        username: str | None = None,
        password: str | None = None,
        consistency: int = ConsistencyLevel.LOCAL_QUORUM,
        request_timeout: float = 10.0,
        retries: int = 4,
        backoff_base: float = 0.05,
        backoff_max: float = 1.0,
        load_parallelism: int = 64,
        buckets: int = DEFAULT_BUCKETS,
        connect_timeout: float = 10.0,
        feed_window: float | None = None,
        create_group_max: int = GROUP_MAX_WRITES,
    ):
        if not _IDENT.fullmatch(keyspace):
            raise ValueError(f"invalid Cassandra keyspace name {keyspace!r}")
        self.keyspace = keyspace
        # A reader re-reads this much of the feed's tail for writes that landed late; no
        # write lands later than one request's timeout (see feed.py).
        window = feed_window if feed_window is not None else request_timeout + 2.0
        self._init_feed(window)
        self._init_dirty(window)  # the same holds for dirty marks
        self._cluster, session = connect(
            contact_points,
            port=port,
            local_dc=local_dc,
            username=username,
            password=password,
            consistency=consistency,
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
        )
        try:
            self._db = CassandraSession(
                session,
                retries=retries,
                backoff_base=backoff_base,
                backoff_max=backoff_max,
                load_parallelism=load_parallelism,
            )
            migrate(
                self._db,
                keyspace,
                replication or {"class": "NetworkTopologyStrategy", (local_dc or "datacenter1"): 3},
                buckets,
            )
            self._db.prepare(STATEMENTS)
            self._fence = Fence(self._db)
            # concurrent creates share one logged batch (groups.py); 1 sends each alone
            self._groups = BatchGroups(self._db, max_writes=max(1, create_group_max))
            self._buckets = int(self._fence.meta("job_id_buckets") or buckets)
        except BaseException:
            self._cluster.shutdown()
            raise

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> CassandraJobStore:
        """`cassandra://host1,host2:9042/keyspace?dc=us-east&replication=us-east:3,eu:3`.

        `replication` is `dc:rf` pairs for NetworkTopologyStrategy (the default: the local
        dc with 3 replicas), or a bare number for SimpleStrategy. Other query options:
        `consistency` (LOCAL_QUORUM), `timeout` (seconds per request), `parallelism` (bulk
        load). Credentials come from TITUS_CASSANDRA_USERNAME and TITUS_CASSANDRA_PASSWORD,
        never from the URL, so they stay out of process listings and logs.
        """
        parsed = urlparse(url)
        if parsed.scheme != "cassandra":
            raise ValueError(f"not a cassandra:// URL: {url!r}")
        netloc = parsed.netloc.rsplit("@", 1)[-1]
        hosts: list[str] = []
        port = 9042
        for part in netloc.split(","):
            if not part:
                continue
            host, sep, p = part.rpartition(":")
            if sep and p.isdigit():
                hosts.append(host)
                port = int(p)
            else:
                hosts.append(part)
        if not hosts:
            raise ValueError(f"no Cassandra hosts in {url!r}")
        keyspace = unquote(parsed.path.strip("/")) or "titus"
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        dc = query.get("dc")
        kwargs: dict[str, Any] = {"port": port, "keyspace": keyspace, "local_dc": dc}
        if "replication" in query:
            kwargs["replication"] = parse_replication(query["replication"])
        if "consistency" in query:
            kwargs["consistency"] = ConsistencyLevel.name_to_value[query["consistency"].upper()]
        if "timeout" in query:
            kwargs["request_timeout"] = float(query["timeout"])
        if "parallelism" in query:
            kwargs["load_parallelism"] = int(query["parallelism"])
        kwargs["username"] = os.environ.get("TITUS_CASSANDRA_USERNAME") or None
        kwargs["password"] = os.environ.get("TITUS_CASSANDRA_PASSWORD") or None
        kwargs.update(overrides)
        return cls(hosts, **kwargs)

    def close(self) -> None:
        self._cluster.shutdown()


def parse_replication(text: str) -> dict[str, Any]:
    """`dc1:3,dc2:3` (NetworkTopologyStrategy) or `3` (SimpleStrategy, for one-dc labs)."""
    text = text.strip()
    if text.isdigit():
        return {"class": "SimpleStrategy", "replication_factor": int(text)}
    out: dict[str, Any] = {"class": "NetworkTopologyStrategy"}
    for part in text.split(","):
        dc, sep, rf = part.partition(":")
        if not sep or not rf.strip().isdigit() or not dc.strip():
            raise ValueError(f"replication must look like dc1:3,dc2:3, not {text!r}")
        out[dc.strip()] = int(rf)
    return out
