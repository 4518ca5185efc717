"""The records the store keeps beside jobs and tasks, and what its bulk reads return.

Plain frozen values: the API creates requests, the leader reads them back, and both
backends write them as text (titus/store/codec.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from typing import NamedTuple

from titus.model.job import Job, Task
from titus.store.quarantine import decode_tasks


@dataclass(frozen=True)
class KillRequest:
    """A user's wish to kill one task, queued for the master."""

    job_id: str
    task_id: str
    shrink: bool = False
    reason: str = "killed"
    message: str = ""
    #: An eviction: the leader carries it out only while the job's budget still allows.
    eviction: bool = False


@dataclass(frozen=True)
class MoveRequest:
    """A user's wish to move a running task from one service job to another compatible
    one; recorded by the API, carried out by the master."""

    source_job_id: str
    target_job_id: str
    task_id: str
    caller: str = ""


@dataclass(frozen=True)
class Change:
    """One entry of the change feed: job or task `entity_id` (of job `job_id`) was written
    (`op` "put") or moved to the archive (`op` "archive"). Readers fetch the entity itself;
    the feed says only what to look at, so it stays small."""

    seq: int
    kind: str  # "job" | "task"
    entity_id: str
    job_id: str
    op: str = "put"


@dataclass(frozen=True)
class ChangeBatch:
    """Changes after a sequence number. `first_seq` is the oldest entry still kept: a reader
    whose last seen seq is below `first_seq - 1` missed entries and must reload in full."""

    changes: list[Change]
    first_seq: int
    last_seq: int


@dataclass(frozen=True)
class IdempotencyRecord:
    """What an Idempotency-Key stands for: the request's fingerprint and the job it made."""

    fingerprint: str
    job_id: str
    expires_at: float


@dataclass(frozen=True)
class ActiveState:
    """Everything the leader needs at start, read in bulk."""

    jobs: list[Job]
    tasks: list[Task]


class TaskRow(NamedTuple):
    """An active task's plain columns (as `TaskFacts`, with its version) and its stored
    document, unparsed: `load_active_index`, for a reader that wants every document but
    not every document parsed. (A leader's start-up reads less: `TaskFacts`.)
    A named tuple, so building 100,000 of them from database rows costs next to nothing.
    """

    id: str
    job_id: str
    version: int
    state: str
    agent_id: str | None
    #: The current status's timestamp (epoch ms).
    timestamp: int
    #: The stored JSON document (what `Task.model_validate_json` reads).
    raw: str


class TaskFacts(NamedTuple):
    """An active task's plain columns, without its document: what a leader's indexes
    (and a driver's book of what runs where) need of every task at start-up.

    A leader holding a million tasks cannot hold (or even read) a million documents of
    about 800 characters each when it starts: it reads these columns in bulk
    (`Jobs.load_active_facts`) and a task's document only once it has to look at the task
    itself (`Jobs.active_task_documents`).
    """

    id: str
    job_id: str
    state: str
    agent_id: str | None
    #: The current status's timestamp (epoch ms).
    timestamp: int


@dataclass(frozen=True)
class JobTaskFacts:
    """The plain columns of one job's active tasks (as `TaskFacts`), a list per column in
    one order: a million tasks come out of a store as a few thousand such groups, and a
    leader builds its indexes from whole columns rather than row by row."""

    ids: list[str]
    states: list[str]
    agent_ids: list[str | None]
    timestamps: list[int]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ActiveFacts:
    """Every active job, and every active task's plain columns grouped by job id."""

    jobs: list[Job]
    tasks_by_job: dict[str, JobTaskFacts]

    @cached_property
    def tasks(self) -> list[TaskFacts]:
        """The same tasks one row each (a driver's book of what runs where reads these)."""
        return [
            TaskFacts(*row)
            for job_id, group in self.tasks_by_job.items()
            for row in zip(
                group.ids,
                repeat(job_id),
                group.states,
                group.agent_ids,
                group.timestamps,
                strict=False,
            )
        ]


@dataclass(frozen=True)
class ActiveIndex:
    """`load_active` with tasks left unparsed (see TaskRow)."""

    jobs: list[Job]
    tasks: list[TaskRow]

    def parsed(self) -> ActiveState:
        """The same jobs and tasks with every task document parsed (`load_active`)."""
        return ActiveState(self.jobs, decode_tasks([t.raw for t in self.tasks]))


@dataclass(frozen=True)
class Created:
    """A job the store has taken (durably) and the change feed's sequence number of the
    entry its creation wrote (0 when the backend does not say), so the writer's view can
    take the job as it is instead of reading it back."""

    job: Job
    seq: int = 0


#: `get_meta` key under which the leader keeps the pending (Accepted, not yet placed) task
#: count per capacity group as a JSON object {"<group>": <count>}, rewritten when a count
#: changes. The API reads it to refuse work for a group whose pending queue is full (429).
PENDING_BY_GROUP_META = "scheduler.pendingByGroup"
#: `get_meta` key of the last election's record, JSON {"epoch", "masterId", "electedAt",
#: "loadedAt", "firstLaunchAt"} (wall-clock seconds): failover time as operators see it.
LEADER_RECORD_META = "leader.lastElection"
