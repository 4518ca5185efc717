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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from titus.model.job import Job, Task


class StoreError(Exception):
    """Base of the store's errors."""


class Conflict(StoreError):
    """The record changed since it was read (version mismatch) or already exists."""


class NotFound(StoreError):
    pass


class StaleEpoch(StoreError):
    """A master write carries an epoch older than the newest leader's."""


class StoreUnavailable(StoreError):
    """The backend cannot serve now; the caller may retry later."""


class StoreRefused(StoreError):
    """The backend refused a write as invalid: retrying the same request cannot help."""


class GroupNameTaken(Conflict):
    def __init__(self, name: str, job_id: str):
        super().__init__(f"job with group sequence {name} exists: {job_id}")
        self.name = name
        self.job_id = job_id


@dataclass(frozen=True)
class KillRequest:
    """A user's wish to kill one task, queued for the master."""

    job_id: str
    task_id: str
    shrink: bool = False
    reason: str = "killed"
    message: str = ""


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
    """An active task as the leader's start-up reads it: the few fields its indexes need, and
    the stored document, parsed only when the leader has to look at the task itself.

    Parsing and validating 100,000 task documents dominates a leader's start-up; the
    fields here come out of the store cheaply (both backends write them as plain columns
    next to the document), so a new leader can act within a second and parse a running
    task only when a report, a kill or a reconciliation touches it.
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


@dataclass(frozen=True)
class ActiveIndex:
    """`load_active` with tasks left unparsed (see TaskRow)."""

    jobs: list[Job]
    tasks: list[TaskRow]

    def parsed(self) -> ActiveState:
        """The same jobs and tasks with every task document parsed (`load_active`)."""
        return ActiveState(self.jobs, [Task.model_validate_json(t.raw) for t in self.tasks])


#: `get_meta` key under which the leader keeps the pending (Accepted, not yet placed) task
#: count per capacity group as a JSON object {"<group>": <count>}, rewritten when a count
#: changes. The API reads it to refuse work for a group whose pending queue is full (429).
PENDING_BY_GROUP_META = "scheduler.pendingByGroup"
#: `get_meta` key of the last election's record, JSON {"epoch", "masterId", "electedAt",
#: "loadedAt", "firstLaunchAt"} (wall-clock seconds): failover time as operators see it.
LEADER_RECORD_META = "leader.lastElection"


class JobStore(Protocol):
    # ---- jobs -------------------------------------------------------------------------
    def create_job(self, job: Job, tasks: Iterable[Task] = (), *, mark_dirty: bool = False) -> Job:
        """Store a new active job (and optionally its first tasks) atomically.

        With `mark_dirty`, the job's dirty mark (see `mark_dirty`) is written in the same
        transaction (Cassandra: the same logged batch): the API's create is one durable
        write instead of two, and a job is never stored without the mark that makes the
        master look at it.

        Raises GroupNameTaken when an active job holds the same job group name.
        """
        ...

    def get_job(self, job_id: str) -> Job | None:
        """An active or archived job."""
        ...

    def update_job(self, job: Job, *, epoch: int | None = None) -> Job:
        """Write a changed job whose `version` is the one read; returns it with the new one."""
        ...

    def list_active_jobs(self) -> list[Job]: ...

    def count_active_jobs(self) -> int: ...

    def archive_job(self, job: Job, *, epoch: int | None = None) -> None:
        """Move a finished job and all its remaining active tasks to the archive."""
        ...

    # ---- tasks ------------------------------------------------------------------------
    def create_task(self, task: Task, *, epoch: int | None = None) -> Task: ...

    def update_task(self, task: Task, *, epoch: int | None = None) -> Task: ...

    def archive_task(self, task: Task, *, epoch: int | None = None) -> None:
        """Move a finished task of a still active job to the archive."""
        ...

    def get_task(self, task_id: str) -> Task | None:
        """An active or archived task."""
        ...

    def list_tasks(self, job_id: str, *, include_archived: bool = False) -> list[Task]: ...

    def list_active_tasks(self) -> list[Task]: ...

    def load_active(self) -> ActiveState:
        """All active jobs and tasks in a few bulk reads: the new leader's start-up."""
        ...

    # ---- the API's requests to the master ---------------------------------------------
    def mark_dirty(self, job_id: str) -> None: ...

    def take_dirty(self) -> list[str]:
        """Job ids changed by users since the last call (each returned once)."""
        ...

    def add_kill_request(self, request: KillRequest) -> None: ...

    def list_kill_requests(self, job_id: str) -> list[KillRequest]: ...

    def delete_kill_request(self, request: KillRequest, *, epoch: int | None = None) -> None: ...

    # ---- leadership -------------------------------------------------------------------
    def claim_epoch(self, epoch: int) -> None:
        """Record that a leader of `epoch` now writes; raises StaleEpoch if a newer one did."""
        ...

    def current_epoch(self) -> int: ...

    # ---- instance groups: operator-set lifecycle for partitioned cluster upgrades -----
    def list_instance_groups(self) -> dict[str, str]:
        """Instance group name -> lifecycle state (`active`, `phasedOut`, `removable`).

        Groups never set are `active`. One small partition: there are few groups.
        """
        ...

    def set_instance_group(self, name: str, state: str) -> None: ...

    # ---- small settings the platform keeps (framework id, ...) ------------------------
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str, *, epoch: int | None = None) -> None: ...

    # ---- change feed (API job/task view, observe stream) --------------------------------
    # Every write of a job or task (create, update, archive), by any writer, appends a
    # Change in the same transaction/batch. Sequence numbers only grow; a reader that has
    # seen seq N gets every later change by asking for changes after N. Entries are kept
    # for a bounded number of changes (SQLite: the newest 100,000); Cassandra: partition by
    # time bucket (e.g. one minute) clustered by a timeuuid, with a TTL, read bucket by
    # bucket from the reader's last position.
    def changes_since(self, seq: int, limit: int = 1000) -> ChangeBatch:
        """Up to `limit` changes with sequence > `seq`, oldest first."""
        ...

    def last_change_seq(self) -> int:
        """The newest change's sequence number (0 when none)."""
        ...

    # ---- capacity groups (by name; values are the API's JSON documents) ---------------
    def create_capacity_group(self, name: str, value: str) -> None:
        """Insert a group; raises Conflict if the name exists (Cassandra: INSERT IF NOT
        EXISTS)."""
        ...

    def put_capacity_group(self, name: str, value: str) -> None:
        """Insert or replace a group."""
        ...

    def get_capacity_group(self, name: str) -> str | None: ...

    def list_capacity_groups(self) -> dict[str, str]:
        """Every group by name (few hundred at most: one small partition)."""
        ...

    def delete_capacity_group(self, name: str) -> bool:
        """Remove a group; False if it did not exist."""
        ...

    # ---- idempotency keys -------------------------------------------------------------
    def claim_idempotency_key(
        self, key: str, fingerprint: str, job_id: str, ttl_sec: float
    ) -> IdempotencyRecord:
        """Record `key` -> (fingerprint, job_id) unless a live record holds the key, and
        return the record that holds it now: the new one when the claim won, the earlier
        one otherwise (Cassandra: INSERT IF NOT EXISTS USING TTL, reading the applied row).
        An expired record counts as absent."""
        ...

    def release_idempotency_key(self, key: str, job_id: str) -> None:
        """Forget `key` if it still names `job_id` (the create it guarded failed)."""
        ...

    # ---- task attributes (owned by the API, merged into tasks on read) ----------------
    # The master writes task records with its leadership epoch and optimistic versions;
    # attributes that users set live beside them, one row per (task, key), so a user's
    # change never races the master's writes and two users' keys never overwrite each
    # other. Writing them appends a "task" Change so watchers see the new attributes.
    def update_task_attributes(
        self, task_id: str, job_id: str, upsert: dict[str, str], delete: Iterable[str] = ()
    ) -> None: ...

    def get_task_attributes(self, task_id: str) -> dict[str, str]: ...

    def list_task_attributes(self, job_id: str) -> dict[str, dict[str, str]]:
        """Attributes of the tasks of one job, by task id (partition by job id)."""
        ...

    # ---- task moves (recorded by the API, carried out by the master) ------------------
    def add_move_request(self, request: MoveRequest) -> None:
        """Queue a move (partition by source job id) and mark both jobs dirty."""
        ...

    def list_move_requests(self, job_id: str) -> list[MoveRequest]:
        """Moves out of job `job_id`."""
        ...

    def delete_move_request(self, request: MoveRequest, *, epoch: int | None = None) -> None: ...

    def move_task(
        self, task: Task, source: Job, target: Job, *, epoch: int | None = None
    ) -> tuple[Task, Job, Job]:
        """Carry out a task move as one write (the leader's, fenced by `epoch`).

        `task` is the moved task as it is to be stored: its `jobId` already `target.id`
        (its index, context and history updated by the caller), its `version` the one read
        while it belonged to `source`. `source` and `target` are the two jobs with their new
        descriptors (desired sizes changed by the caller), each with the `version` read.
        The write, all or nothing:
        - the task's row leaves the source job's index partition for the target's (and its
          document is replaced), if it still has the version read and belongs to `source`;
        - both jobs are replaced, if each still has the version read;
        - the move request (`source.id`, `task.id`) is deleted if one is queued;
        - the task's attributes (update_task_attributes) follow it: listed under the target;
        - one "put" Change per written task and job (the task's under the target job id).
        Raises Conflict (and writes nothing) when any version differs or the task is not
        an active task of `source`. Returns (task, source, target) with their new versions.

        Backends that cannot check versions across partitions in one batch (Cassandra:
        conditional updates only within one partition) check them first and write
        everything in one logged batch; the epoch fence keeps any other master out, and a
        reader between the batch's mutations may see the task in both partitions or in
        neither for a moment (readers key on the task's `jobId` in its document). A leader
        that finds a queued request whose task already belongs to the target job knows
        the move was done, and only deletes the request.
        """
        ...

    def load_active_index(self) -> ActiveIndex:
        """`load_active` with each task as a TaskRow (documents not parsed): one bulk read
        per table, for a leader start-up that does not grow with parsing every task."""
        ...

    def list_all_kill_requests(self) -> list[KillRequest]:
        """Every queued kill request (a small table: kills are carried out at once).

        A new leader carries out the kills its predecessor took the dirty marks of but did
        not finish.
        """
        ...

    def list_all_move_requests(self) -> list[MoveRequest]:
        """Every queued move request (one small table: moves are few and short-lived).

        A new leader carries out the moves its predecessor left behind; the dirty marks
        that announced them may have been taken by that predecessor already.
        """
        ...

    # ---- "why is my task pending": the scheduler's last word on each unplaced task ------
    # Written by the leader (fenced by epoch) only when a task's summary changes; read by
    # the API by task id. One row per task, keyed by task id (Cassandra: a table keyed by
    # task_id with a TTL of a day, so rows of tasks that went away expire on their own).
    def put_scheduler_result(
        self, task_id: str, job_id: str, value: str, *, epoch: int | None = None
    ) -> None:
        """Insert or replace the JSON summary of the last placement attempt of a task."""
        ...

    def get_scheduler_result(self, task_id: str) -> str | None:
        """The JSON summary of the task's last failed placement attempt, if any."""
        ...

    def delete_scheduler_result(self, task_id: str, *, epoch: int | None = None) -> None:
        """Forget a task's summary (it was placed, or it ended)."""
        ...

    def close(self) -> None: ...
