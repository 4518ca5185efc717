"""`SqliteJobStore`: the role parts composed over one SQLite file."""

from __future__ import annotations

from titus.store.sqlite.attributes import AttributesPart
from titus.store.sqlite.cluster import ClusterConfigPart
from titus.store.sqlite.feed import ChangeFeedPart
from titus.store.sqlite.idempotency import IdempotencyPart
from titus.store.sqlite.jobs import JobsPart
from titus.store.sqlite.leadership import LeadershipPart
from titus.store.sqlite.policies import ScalingPoliciesPart
from titus.store.sqlite.requests import RequestsPart
from titus.store.sqlite.results import SchedulerResultsPart
from titus.store.sqlite.tasks import TasksPart


class SqliteJobStore(
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
    """JobStore in one SQLite file in WAL mode (see the package docstring)."""
