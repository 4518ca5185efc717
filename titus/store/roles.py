"""The store's roles: each a small protocol of what one kind of caller needs.

A backend provides all of them (`JobStore` in titus/store/base.py is their composition);
a caller that needs only one part, say the API's cluster configuration, asks for that
role, so what it can touch is visible in its signature and a test double stays small.

Epoch fencing: a method with an `epoch` keyword is one the leader calls. A write that
carries an epoch older than the newest claimed one (`Leadership.claim_epoch`) is refused
with `StaleEpoch`, so a deposed leader never overwrites its successor's decisions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from concurrent.futures import Future
from typing import Protocol, runtime_checkable

from titus.model.autoscaling import PolicyRecord
from titus.model.job import Job, Task
from titus.store.records import (
    ActiveFacts,
    ActiveIndex,
    ActiveState,
    ChangeBatch,
    Created,
    IdempotencyRecord,
    KillRequest,
    MoveRequest,
)


class Jobs(Protocol):
    """Jobs and tasks: active ones by id and by job, the archive, the leader's bulk read."""

    def create_job(self, job: Job, tasks: Iterable[Task] = (), *, mark_dirty: bool = False) -> Job:
        """Store a new active job (and optionally its first tasks) atomically.

        With `mark_dirty`, the job's dirty mark (see `Requests.mark_dirty`) is written in
        the same transaction (Cassandra: the same logged batch): the API's create is one
        durable write instead of two, and a job is never stored without the mark that
        makes the master look at it.

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

    def create_task(self, task: Task, *, epoch: int | None = None) -> Task: ...

    def update_task(self, task: Task, *, epoch: int | None = None) -> Task: ...

    def update_tasks(self, tasks: list[Task], *, epoch: int | None = None) -> list[Task | None]:
        """Write many tasks at once, each as `update_task` would (its version checked and
        moved on); the new task, or None for one that changed since it was read (left as
        it is). Durable together: SQLite commits them in one transaction. A stale epoch
        refuses them all."""
        ...

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

    def load_active_index(self) -> ActiveIndex:
        """`load_active` with each task as a TaskRow (documents not parsed): one bulk read
        per table, that does not grow with parsing every task."""
        ...

    def load_active_facts(self) -> ActiveFacts:
        """Every active job, and every active task's plain columns without its document
        (`TaskFacts`): a leader's start-up reads neither more than its indexes need nor a
        document per task. Jobs and tasks agree with each other as `load_active`'s do."""
        ...

    def active_task_documents(self, task_ids: Collection[str]) -> dict[str, str]:
        """The stored documents (unparsed) of those of `task_ids` that are active, by task
        id; an id that is not active is left out. A leader reads the documents of the
        tasks it has to look at, a few at a time, after `load_active_facts`."""
        ...


class Requests(Protocol):
    """What the API asks of the master: dirty marks, kill requests, task moves.

    The API records a wish and marks the job dirty; the leader takes the marks, carries
    the wishes out and deletes them (fenced by its epoch).
    """

    def mark_dirty(self, job_id: str) -> None: ...

    def take_dirty(self) -> list[str]:
        """Job ids changed by users since the last call (each returned once)."""
        ...

    def add_kill_request(self, request: KillRequest) -> None: ...

    def list_kill_requests(self, job_id: str) -> list[KillRequest]: ...

    def delete_kill_request(self, request: KillRequest, *, epoch: int | None = None) -> None: ...

    def list_all_kill_requests(self) -> list[KillRequest]:
        """Every queued kill request (a small table: kills are carried out at once).

        A new leader carries out the kills its predecessor took the dirty marks of but did
        not finish.
        """
        ...

    def add_move_request(self, request: MoveRequest) -> None:
        """Queue a move (partition by source job id) and mark both jobs dirty."""
        ...

    def list_move_requests(self, job_id: str) -> list[MoveRequest]:
        """Moves out of job `job_id`."""
        ...

    def delete_move_request(self, request: MoveRequest, *, epoch: int | None = None) -> None: ...

    def list_all_move_requests(self) -> list[MoveRequest]:
        """Every queued move request (one small table: moves are few and short-lived).

        A new leader carries out the moves its predecessor left behind; the dirty marks
        that announced them may have been taken by that predecessor already.
        """
        ...

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


class Leadership(Protocol):
    """Leadership fencing (the epoch) and the small settings the platform keeps (framework
    id, the last election's record, pending counts per capacity group)."""

    def claim_epoch(self, epoch: int) -> None:
        """Record that a leader of `epoch` now writes; raises StaleEpoch if a newer one did."""
        ...

    def current_epoch(self) -> int: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str, *, epoch: int | None = None) -> None: ...


class ClusterConfig(Protocol):
    """What operators configure: capacity groups and instance group lifecycles."""

    def create_capacity_group(self, name: str, value: str) -> None:
        """Insert a group; raises Conflict if the name exists (Cassandra: INSERT IF NOT
        EXISTS)."""
        ...

    def put_capacity_group(self, name: str, value: str) -> None:
        """Insert or replace a group."""
        ...

    def get_capacity_group(self, name: str) -> str | None: ...

    def list_capacity_groups(self) -> dict[str, str]:
        """Every group by name (few hundred at most: one small partition); values are the
        API's JSON documents."""
        ...

    def delete_capacity_group(self, name: str) -> bool:
        """Remove a group; False if it did not exist."""
        ...

    def list_instance_groups(self) -> dict[str, str]:
        """Instance group name -> lifecycle state (`active`, `phasedOut`, `removable`), the
        operator-set lifecycle for partitioned cluster upgrades.

        Groups never set are `active`. One small partition: there are few groups.
        """
        ...

    def set_instance_group(self, name: str, state: str) -> None: ...


class ChangeFeed(Protocol):
    """What was written, in order: the API's job and task view and the observe stream.

    Every write of a job or task (create, update, archive), by any writer, appends a
    Change in the same transaction/batch. Sequence numbers only grow; a reader that has
    seen seq N gets every later change by asking for changes after N. Entries are kept
    for a bounded number of changes (SQLite: the newest 100,000); Cassandra: partition by
    time bucket (e.g. one minute) clustered by a timeuuid, with a TTL, read bucket by
    bucket from the reader's last position.
    """

    def changes_since(self, seq: int, limit: int = 1000) -> ChangeBatch:
        """Up to `limit` changes with sequence > `seq`, oldest first."""
        ...

    def last_change_seq(self) -> int:
        """The newest change's sequence number (0 when none)."""
        ...


class Idempotency(Protocol):
    """Idempotency keys: a retried create gets the job the first attempt made."""

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


class TaskAttributes(Protocol):
    """Task attributes: owned by the API, merged into tasks on read.

    The master writes task records with its leadership epoch and optimistic versions;
    attributes that users set live beside them, one row per (task, key), so a user's
    change never races the master's writes and two users' keys never overwrite each
    other. Writing them appends a "task" Change so watchers see the new attributes.
    """

    def update_task_attributes(
        self, task_id: str, job_id: str, upsert: dict[str, str], delete: Iterable[str] = ()
    ) -> None: ...

    def get_task_attributes(self, task_id: str) -> dict[str, str]: ...

    def list_task_attributes(self, job_id: str) -> dict[str, dict[str, str]]:
        """Attributes of the tasks of one job, by task id (partition by job id)."""
        ...


class SchedulerResults(Protocol):
    """Why a task is pending: the scheduler's last word on each task it could not place.

    Written by the leader (fenced by epoch) only when a task's summary changes; read by
    the API by task id. One row per task, keyed by task id (Cassandra: a table keyed by
    task_id with a TTL of a day, so rows of tasks that went away expire on their own).
    """

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


class Repair(Protocol):
    """What an operator needs to clear a stored job or task that nobody can read
    (titus/store/quarantine.py), which otherwise keeps its job out of the leader's hands."""

    def raw_record(self, kind: str, record_id: str) -> str | None:
        """The stored text of active job or task `record_id` (`kind` "job" or "task"),
        unread; None when no such record is active."""
        ...

    def set_aside(self, kind: str, record_id: str) -> list[str]:
        """Move an active job (with its active tasks) or task to the archive as it is
        stored, unread, and mark its job for the leader; the ids moved ([] when it was not
        active). Nothing is lost: the archive keeps the text for its retention."""
        ...


class ScalingPolicies(Protocol):
    """Scaling policies on service jobs (titus.model.autoscaling): written by the API,
    carried out by the leader, which moves each through its states (fenced by epoch).

    One record per policy, by id, with a version: every update names the version it
    read and is refused with Conflict otherwise, so the leader marking a policy Applied
    never overwrites a user's newer change of it. Listed by job (Cassandra: an index
    partition per job) or all at once (the leader's pass; a whole-table read, as at a
    leader's start-up: policies are a few per service job at most).
    """

    def create_scaling_policy(self, record: PolicyRecord) -> PolicyRecord:
        """Store a new policy (version 1); Conflict if its id is taken."""
        ...

    def update_scaling_policy(
        self, record: PolicyRecord, *, epoch: int | None = None
    ) -> PolicyRecord:
        """Write a changed policy whose `version` is the one read; returns it with the new
        one. Conflict when it changed (or went) since."""
        ...

    def get_scaling_policy(self, policy_id: str) -> PolicyRecord | None: ...

    def list_scaling_policies(self, job_id: str | None = None) -> list[PolicyRecord]:
        """The policies of one job, or every policy (job_id None), by id."""
        ...

    def delete_scaling_policy(self, policy_id: str, *, epoch: int | None = None) -> None:
        """Forget a policy (gone for good: Deleted long enough, or its job is gone)."""
        ...


@runtime_checkable
class SubmitsCreates(Protocol):
    """Optional: a backend whose job creates can be handed over without a thread waiting
    for each (SQLite's group commit). Callers on an event loop use it when it is there and
    `Jobs.create_job` in a worker thread otherwise."""

    def submit_create_job(self, job: Job, *, mark_dirty: bool = False) -> Future[Created]:
        """`create_job` (without first tasks) as a future: resolved once the job is
        durable, or failed with what `create_job` would raise."""
        ...
