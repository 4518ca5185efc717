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
from typing import Protocol

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
class ActiveState:
    """Everything the leader needs at start, read in bulk."""

    jobs: list[Job]
    tasks: list[Task]


class JobStore(Protocol):
    # ---- jobs -------------------------------------------------------------------------
    def create_job(self, job: Job, tasks: Iterable[Task] = ()) -> Job:
        """Store a new active job (and optionally its first tasks) atomically.

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

    def close(self) -> None: ...
