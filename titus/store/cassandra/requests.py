"""What the API asks of the master: dirty marks, kill requests, move requests, and the
move itself when the leader carries it out.

Each dirty mark is its own row in a minute partition (numbered like the change feed, with
the same TTL), so taking marks never loses a new one and never deletes: a leader reads the
partitions since its last take (re-reading a short window for marks that landed late) and
remembers what it returned within the window. No partition it reads fills up with
tombstones, as one partition with a delete per mark taken did once 100,000 marks were
taken within gc_grace. Marks older than the TTL expire unread only when no leader took
them for an hour, and a new leader loads every job and queued request anyway.
A request and the dirty mark that announces it go in one logged batch.
"""

from __future__ import annotations

import threading

from titus.model.job import Job, Task
from titus.store.cassandra.attributes import read_task_attributes
from titus.store.cassandra.moves import finish_move, finish_pending_move, move_remainder
from titus.store.cassandra.part import Part
from titus.store.cassandra.schema import task_columns
from titus.store.cassandra.sequence import SEQ_PER_MS, feed_bucket, now_seq
from titus.store.codec import dump_document, dump_request, load_kill_request, load_move_request
from titus.store.errors import Conflict
from titus.store.records import KillRequest, MoveRequest


class RequestsPart(Part):
    """The Requests role (titus/store/roles.py)."""

    _dirty_lock: threading.Lock
    _dirty_window: int  # seq units
    _dirty_from: int
    _dirty_seen: dict[tuple[int, str], None]

    def _init_dirty(self, window: float) -> None:
        """Marks are taken from this handle's creation on (minus the window)."""
        self._dirty_lock = threading.Lock()
        self._dirty_window = int(window * 1000) * SEQ_PER_MS
        self._dirty_from = now_seq() - self._dirty_window
        self._dirty_seen = {}

    def mark_dirty(self, job_id: str) -> None:
        self._db.mark_dirty(job_id)

    def take_dirty(self) -> list[str]:
        """The jobs marked since the last take (each once), oldest first."""
        now = now_seq()
        with self._dirty_lock:
            lower, seen = self._dirty_from, self._dirty_seen
            rows = self._db.rows_after(
                "dirty_after", lower, feed_bucket(now + self._dirty_window), "read dirty marks"
            )
            fresh = [(int(r.seq), str(r.job_id)) for r in rows]
            taken = [key for key in fresh if key not in seen]
            horizon = now - self._dirty_window
            self._dirty_from = max(lower, horizon)
            self._dirty_seen = {key: None for key in (*seen, *taken) if key[0] > self._dirty_from}
        return list(dict.fromkeys(job_id for _, job_id in sorted(taken)))

    # ---- kills ----------------------------------------------------------------------------
    def add_kill_request(self, request: KillRequest) -> None:
        value = dump_request(request)
        self._db.batch(
            f"request a kill of task {request.task_id}",
            [
                ("kill_insert", (request.job_id, request.task_id, value)),
                ("dirty", (request.job_id,)),
            ],
        )

    def list_kill_requests(self, job_id: str) -> list[KillRequest]:
        rows = self._db.execute("kill_list", (job_id,), f"read kill requests of {job_id}")
        return [load_kill_request(r.value) for r in rows]

    def delete_kill_request(self, request: KillRequest, *, epoch: int | None = None) -> None:
        self._fence.check(epoch)
        self._db.execute("kill_delete", (request.job_id, request.task_id), "delete a kill request")

    def list_all_kill_requests(self) -> list[KillRequest]:
        """A paged scan of the kill requests table: kills are carried out at once, so it
        stays small (archiving a job drops its partition)."""
        return [load_kill_request(r.value) for r in self._db.scan("kills_scan", "kills")]

    # ---- moves ----------------------------------------------------------------------------
    def add_move_request(self, request: MoveRequest) -> None:
        value = dump_request(request)
        self._db.batch(
            f"request a move of task {request.task_id}",
            [
                ("move_insert", (request.source_job_id, request.task_id, value)),
                ("dirty", (request.source_job_id,)),
                ("dirty", (request.target_job_id,)),
            ],
        )

    def list_move_requests(self, job_id: str) -> list[MoveRequest]:
        rows = self._db.execute("move_list", (job_id,), f"read move requests of {job_id}")
        return [load_move_request(r.value) for r in rows]

    def delete_move_request(self, request: MoveRequest, *, epoch: int | None = None) -> None:
        """Also finishes the task's move, when the request is deleted because the task is
        in its target job already: a move whose remainder was never written (its batch
        failed) is completed here, the next time the leader looks at the request."""
        self._fence.check(epoch)
        finish_pending_move(self._db, request.task_id)
        self._db.execute(
            "move_delete", (request.source_job_id, request.task_id), "delete a move request"
        )

    def list_all_move_requests(self) -> list[MoveRequest]:
        """A paged scan of the move requests table: moves are few and short-lived."""
        return [load_move_request(r.value) for r in self._db.scan("moves_scan", "moves")]

    def move_task(
        self, task: Task, source: Job, target: Job, *, epoch: int | None = None
    ) -> tuple[Task, Job, Job]:
        """A move decided by one fenced write, then completed by writes anyone can repeat.

        A logged batch cannot carry a condition across partitions, so the move is decided
        by the moved task's own compare-and-set, fenced like every update of the leader's
        (`IF version = ? AND fence <= <epoch>`, fencing.py), after the epoch is read once
        more: it writes the task into its target job and, beside it, the move's remainder
        (both jobs' new documents, the index and attribute rows, the request's deletion)
        with one write timestamp. A leader deposed before that write lands moves nothing
        (refused by the read, or by the fence once its successor wrote the task). The
        remainder is then written in one logged batch at that timestamp, and cleared.

        A leader that dies between the two leaves the remainder on the task row, and its
        successor writes it while loading (tasks.py), the same writes at the same
        timestamp. So a late batch of the deposed leader (stalled, or replayed from the
        batch log) writes what is already there, and loses in Cassandra's
        last-write-wins order to whatever the successor wrote since. The timestamp is
        taken after the versions the move replaces were written (their write times are
        read with them), so the remainder replaces them whatever this client's clock
        says. A user's update of one of the jobs landing between the decision and the
        remainder wins over the remainder's change of that job (the API's writes to a
        job under a move are rare: a resize of one of the two).
        """
        if task.jobId != target.id:
            raise ValueError(f"task {task.id} must name its target job {target.id}")
        db = self._db
        self._fence.check_known(epoch)
        rows = db.serial_read("task_version", (task.id,), f"read task {task.id}")
        if not rows:
            raise Conflict(f"task {task.id} is not active")
        stored_job = rows[0].job_id
        if stored_job is None:  # written before the index columns existed
            stored_job = Task.model_validate_json(rows[0].value).jobId
        if int(rows[0].version) != task.version or stored_job != source.id:
            raise Conflict(
                f"task {task.id} changed since version {task.version} or left job {source.id}"
            )
        written = [int(rows[0].written or 0)]
        for job in (source, target):
            got = db.serial_read("job_version", (job.id,), f"read job {job.id}")
            if not got or int(got[0].version) != job.version:
                raise Conflict(f"job {job.id} changed since version {job.version}")
            written.append(int(got[0].written or 0))
        new_task = task.model_copy(update={"version": task.version + 1})
        new_source = source.model_copy(update={"version": source.version + 1})
        new_target = target.model_copy(update={"version": target.version + 1})
        remainder = move_remainder(
            max(db.write_timestamp(), max(written) + 1),
            epoch or 0,
            new_source,
            new_target,
            read_task_attributes(db, task.id),
        )
        value = dump_document(new_task)
        sets = (new_task.version, value, *task_columns(new_task), remainder, task.id)
        # Also refused, as the leader's other multi-row writes are, once a newer epoch is
        # claimed, although its successor has not written the task yet.
        self._fence.check(epoch)
        db.update_versioned(
            "task",
            task.id,
            target.id,
            task.version,
            value,
            sets,
            epoch=epoch,
            statement="task_move",
        )
        finish_move(db, task.id, remainder)
        return new_task, new_source, new_target
