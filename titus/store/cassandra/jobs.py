"""Jobs: the active and archived documents, the bucketed index of active ids, and the
uniqueness of job group names.

`active_job_ids` is spread over a fixed number of buckets (chosen when the keyspace is
created and kept in `meta`), so no partition grows without bound. A job and its index rows
change together in one logged batch, which concurrent creates share (groups.py). Job
group names are unique among active jobs through a lightweight transaction (`INSERT ... IF
NOT EXISTS`) on `job_group_names`, made before a create joins a group: two racing creates
never both win, and the one refused is refused alone.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterable
from typing import Any

from titus.model.job import Job, Task
from titus.store.cassandra.part import Part
from titus.store.cassandra.schema import task_columns
from titus.store.cassandra.session import CassandraRefused, Item
from titus.store.codec import dump_document
from titus.store.errors import Conflict, GroupNameTaken, StoreNotWritten, StoreUnavailable
from titus.store.quarantine import decode_job, decode_jobs

log = logging.getLogger("titus.store.cassandra")

# A group name held by a job that never got written (its creator died between the name's
# lightweight transaction and the job's batch) is taken over after this long.
ABANDONED_NAME_SECONDS = 60.0
# Remaining tasks archived together with their job in one batch; more go in batches of this
# many first (task documents are ~1 KB; Cassandra refuses batches over 50 KB by default).
ARCHIVE_TASKS_PER_BATCH = 20


class JobsPart(Part):
    """The job half of the Jobs role (titus/store/roles.py); tasks are in tasks.py."""

    _buckets: int

    def _bucket(self, job_id: str) -> int:
        return zlib.crc32(job_id.encode()) % self._buckets

    def create_job(self, job: Job, tasks: Iterable[Task] = (), *, mark_dirty: bool = False) -> Job:
        db = self._db
        job = job.model_copy(update={"version": 1})
        first = [t.model_copy(update={"version": 1}) for t in tasks]
        if db.execute("job_get", (job.id,), f"check job {job.id}") or db.execute(
            "job_get_archived", (job.id,), f"check job {job.id}"
        ):
            raise Conflict(f"job {job.id} exists")
        name = job.jobDescriptor.job_group_name
        if name is not None:
            self._claim_name(name, job.id)
        items: list[Item] = [
            ("job_insert", (job.id, 1, dump_document(job), 0)),
            ("job_id_insert", (self._bucket(job.id), job.id)),
            ("change", ("job", job.id, job.id)),
        ]
        for t in first:
            items.append(("task_insert", (t.id, 1, dump_document(t), *task_columns(t), 0)))
            items.append(("task_id_insert", (t.jobId, t.id)))
            items.append(("change", ("task", t.id, t.jobId)))
        if mark_dirty:
            items.append(("dirty", (job.id,)))
        try:
            self._groups.write(f"create job {job.id} with {len(first)} tasks", items)
        except CassandraRefused:
            # Nothing of a refused batch was written (e.g. too many first tasks for
            # batch_size_fail_threshold_in_kb); the name goes back.
            if name is not None:
                self._release_name(name, job.id)
            raise
        except StoreUnavailable as e:
            # A logged batch is all or nothing. If Cassandra did take it the job is whole;
            # otherwise nothing of it exists and its group name must be freed again.
            try:
                exists = bool(db.execute("job_get", (job.id,), f"check job {job.id}"))
            except StoreUnavailable:
                raise StoreUnavailable(
                    f"job {job.id} may not have been created (Cassandra did not confirm, and "
                    f"could not be asked): {e}"
                ) from e
            if exists:
                return job
            if name is not None:
                self._release_name(name, job.id)
            raise StoreNotWritten(f"job {job.id} was not created: {e}") from e
        return job

    def _claim_name(self, name: str, job_id: str) -> None:
        now_ms = int(time.time() * 1000)
        applied, row = self._db.lwt("name_claim", (name, job_id, now_ms), f"reserve group {name}")
        if applied or row.job_id == job_id:  # our own earlier attempt is not a conflict
            return
        holder = str(row.job_id)
        if self._holder_gone(holder, row.claimed_at):
            applied, row = self._db.lwt(
                "name_take_over", (job_id, now_ms, name, holder), f"reserve group {name}"
            )
            if applied or row.job_id == job_id:
                return
            holder = str(row.job_id)
        raise GroupNameTaken(name, holder)

    def _holder_gone(self, holder: str, claimed_at: Any) -> bool:
        """True when the job holding a name is archived, or was never written at all."""
        if self._db.execute("job_get", (holder,), f"check job {holder}"):
            return False
        if self._db.execute("job_get_archived", (holder,), f"check job {holder}"):
            return True
        if claimed_at is None:
            return True
        claimed = claimed_at.timestamp() if hasattr(claimed_at, "timestamp") else 0.0
        return time.time() - claimed > ABANDONED_NAME_SECONDS

    def _release_name(self, name: str, job_id: str) -> None:
        try:
            self._db.lwt("name_release", (name, job_id), f"release group {name}")
        except StoreUnavailable:
            log.warning("cassandra: group name %s stays with job %s until reclaimed", name, job_id)

    def get_job(self, job_id: str) -> Job | None:
        rows = self._db.execute("job_get", (job_id,), f"read job {job_id}")
        if not rows:
            rows = self._db.execute("job_get_archived", (job_id,), f"read job {job_id}")
        return decode_job(rows[0].value, job_id) if rows else None

    def update_job(self, job: Job, *, epoch: int | None = None) -> Job:
        self._fence.check_known(epoch)
        new = job.model_copy(update={"version": job.version + 1})
        value = dump_document(new)
        self._db.update_versioned(
            "job", job.id, job.id, job.version, value, (new.version, value, job.id), epoch=epoch
        )
        return new

    def _active_job_ids(self) -> list[str]:
        buckets = [(b,) for b in range(self._buckets)]
        rows = self._db.concurrent("job_ids_bucket", buckets, "list the active jobs")
        return [r.job_id for r in rows]

    def list_active_jobs(self) -> list[Job]:
        ids = self._active_job_ids()
        values = self._db.values("job_get", ids, "read the active jobs")
        return decode_jobs(values)

    def count_active_jobs(self) -> int:
        buckets = [(b,) for b in range(self._buckets)]
        rows = self._db.concurrent("job_count_bucket", buckets, "count the active jobs")
        return sum(int(r.count) for r in rows)

    def archive_job(self, job: Job, *, epoch: int | None = None) -> None:
        self._fence.check(epoch)
        self._move_job_to_archive(job.id, dump_document(job))
        name = job.jobDescriptor.job_group_name
        if name is not None:
            self._release_name(name, job.id)

    def _move_job_to_archive(self, job_id: str, value: str) -> list[str]:
        """Archive a job with `value` as its document and all its active tasks as they are
        stored; return the task ids moved."""
        db = self._db
        task_ids = [r.task_id for r in db.execute("task_ids", (job_id,), f"list tasks {job_id}")]
        rows = db.concurrent(
            "task_get_keyed", [(i,) for i in task_ids], f"read the tasks of job {job_id}"
        )
        # Tasks still active go first, a few per batch: Cassandra refuses a batch above
        # batch_size_fail_threshold_in_kb (50 KB by default), and a job with hundreds of
        # tasks left would never be archived in one. A crash part-way leaves the job active
        # with fewer tasks; archiving it again moves the rest. The documents move as they
        # are, unparsed: one that cannot be read is archived (and quarantined when read
        # there) rather than holding the whole job active.
        task_items: list[Item] = []
        archived: list[str] = []
        for row in rows:
            if row.job_id is not None and row.job_id != job_id:
                continue  # moved to another job, its index row not yet moved (moves.py)
            archived.append(row.task_id)
            task_items += [
                ("task_archive", (row.task_id, row.value)),
                ("task_id_archive", (job_id, row.task_id)),
                ("task_delete", (row.task_id,)),
                ("task_id_delete", (job_id, row.task_id)),
                ("change", ("task", row.task_id, job_id, "archive")),
            ]
        if len(rows) > ARCHIVE_TASKS_PER_BATCH:
            step = 5 * ARCHIVE_TASKS_PER_BATCH
            for i in range(0, len(task_items), step):
                db.batch(f"archive the tasks of job {job_id}", task_items[i : i + step])
            task_items = []
        items: list[Item] = [
            ("job_archive", (job_id, value)),
            ("job_delete", (job_id,)),
            ("job_id_delete", (self._bucket(job_id), job_id)),
            *task_items,
            ("task_ids_delete_job", (job_id,)),
            ("kills_delete_job", (job_id,)),
            ("moves_delete_job", (job_id,)),
            ("change", ("job", job_id, job_id, "archive")),
        ]
        db.batch(f"archive job {job_id}", items)
        return archived

    # ---- the Repair role (titus/store/roles.py) ------------------------------------------
    def raw_record(self, kind: str, record_id: str) -> str | None:
        statement = {"job": "job_get", "task": "task_get"}.get(kind)
        if statement is None:
            raise ValueError(f"record kind must be job or task, not {kind!r}")
        rows = self._db.execute(statement, (record_id,), f"read {kind} {record_id}")
        return str(rows[0].value) if rows else None

    def set_aside(self, kind: str, record_id: str) -> list[str]:
        db = self._db
        if kind == "job":
            rows = db.execute("job_get", (record_id,), f"read job {record_id}")
            if not rows:
                return []
            return [record_id, *self._move_job_to_archive(record_id, str(rows[0].value))]
        if kind != "task":
            raise ValueError(f"record kind must be job or task, not {kind!r}")
        rows = db.execute("task_get_job", (record_id,), f"read task {record_id}")
        if not rows:
            return []
        job_id, value = str(rows[0].job_id), str(rows[0].value)
        db.batch(
            f"set task {record_id} aside",
            [
                ("task_archive", (record_id, value)),
                ("task_id_archive", (job_id, record_id)),
                ("task_delete", (record_id,)),
                ("task_id_delete", (job_id, record_id)),
                ("change", ("task", record_id, job_id, "archive")),
                ("dirty", (job_id,)),
            ],
        )
        return [record_id]
