"""The JobStore protocol: what every backend (SQLite embedded, Cassandra) provides.

Access is shaped so a wide-column store fits: reads and writes by job id, task id and
small index partitions (tasks of a job); no joins; a write touches one entity and its index
rows together, as a Cassandra logged batch would.

Two kinds of writers share the store:
- the API writes what users want (new jobs, job changes, kill requests) and marks the job
  "dirty" so the master looks at it again;
- the leader master writes what it decided and what it learned (tasks and their states).
  Its writes carry its leadership epoch; a write from an older epoch is refused, so a
  deposed leader can never overwrite its successor's decisions.

Optimistic concurrency: every job and task carries a `version`. An update names the version
it read; if the stored one differs the update is refused with `Conflict` and the writer
reads again.

`JobStore` is the composition of the role protocols in titus/store/roles.py; a caller that
needs one part asks for that role. The errors and records live in titus/store/errors.py and
titus/store/records.py and are importable from here, where callers have always found them.
"""

from __future__ import annotations

from typing import Protocol

from titus.store.errors import (
    Conflict,
    GroupNameTaken,
    NotFound,
    StaleEpoch,
    StoreError,
    StoreNotWritten,
    StoreRefused,
    StoreUnavailable,
)
from titus.store.records import (
    LEADER_RECORD_META,
    PENDING_BY_GROUP_META,
    ActiveFacts,
    ActiveIndex,
    ActiveState,
    Change,
    ChangeBatch,
    IdempotencyRecord,
    JobTaskFacts,
    KillRequest,
    MoveRequest,
    TaskFacts,
    TaskRow,
)
from titus.store.roles import (
    ChangeFeed,
    ClusterConfig,
    Idempotency,
    Jobs,
    Leadership,
    Repair,
    Requests,
    ScalingPolicies,
    SchedulerResults,
    TaskAttributes,
)


class JobStore(
    Jobs,
    Requests,
    Leadership,
    ClusterConfig,
    ChangeFeed,
    Idempotency,
    TaskAttributes,
    SchedulerResults,
    Repair,
    ScalingPolicies,
    Protocol,
):
    """Every role, as one backend provides them."""

    def close(self) -> None: ...


__all__ = [
    "LEADER_RECORD_META",
    "PENDING_BY_GROUP_META",
    "ActiveFacts",
    "ActiveIndex",
    "ActiveState",
    "Change",
    "ChangeBatch",
    "ChangeFeed",
    "ClusterConfig",
    "Conflict",
    "GroupNameTaken",
    "IdempotencyRecord",
    "Idempotency",
    "JobStore",
    "JobTaskFacts",
    "Jobs",
    "KillRequest",
    "Leadership",
    "MoveRequest",
    "NotFound",
    "Repair",
    "Requests",
    "ScalingPolicies",
    "SchedulerResults",
    "StaleEpoch",
    "StoreError",
    "StoreNotWritten",
    "StoreRefused",
    "StoreUnavailable",
    "TaskAttributes",
    "TaskFacts",
    "TaskRow",
]
