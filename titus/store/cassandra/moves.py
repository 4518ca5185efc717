"""What a decided task move leaves to write, and writing it.

A move is decided by one fenced compare-and-set of the moved task's row, which carries the
move's remainder beside the task (requests.py `move_task`): both jobs' new documents, the
task's attributes and the move's write timestamp. Everything else is written from the
remainder, at that timestamp, by whoever finds it: the mover right away, a successor
while loading (tasks.py), the leader when it deletes the move's request. The same writes
at the same timestamp, so any number of them, in any order, leave one result, and all lose
to later writes in Cassandra's last-write-wins order.
"""

from __future__ import annotations

import json
import logging

from titus.model.job import Job
from titus.store.cassandra.session import CassandraSession, Item
from titus.store.cassandra.statements import stamped
from titus.store.codec import dump_document

log = logging.getLogger("titus.store.cassandra")


def move_remainder(
    stamp: int, fence: int, source: Job, target: Job, attributes: dict[str, str]
) -> str:
    """The remainder of moving a task from `source` to `target` (their new documents)."""
    jobs = [[job.id, job.version, dump_document(job)] for job in (source, target)]
    return json.dumps({"stamp": stamp, "fence": fence, "jobs": jobs, "attributes": attributes})


def finish_move(db: CassandraSession, task_id: str, remainder: str) -> tuple[str, ...]:
    """Write what the move of `task_id` left to write, in one logged batch, then clear
    the remainder (only if it is still this one); return the two jobs' ids.

    A remainder that cannot be read (edited by hand, or by a bug) is logged and left as
    it is, nothing written: it must not stop every leader's start-up."""
    try:
        done = json.loads(remainder)
        stamp = int(done["stamp"])
        (source_id, *source), (target_id, *target) = done["jobs"]
        attributes = dict(done["attributes"])
    except (ValueError, TypeError, KeyError) as e:
        log.error(
            "the move of task %s cannot be finished: its remainder is unreadable (%s)", task_id, e
        )
        return ()
    writes: list[Item] = [
        ("job_insert", (source_id, *source, done["fence"])),
        ("job_insert", (target_id, *target, done["fence"])),
        ("task_id_delete", (source_id, task_id)),
        ("task_id_insert", (target_id, task_id)),
        ("move_delete", (source_id, task_id)),
    ]
    for k, v in attributes.items():
        writes += [
            ("attr_put", (task_id, k, target_id, v)),
            ("attr_delete_by_job", (source_id, task_id, k)),
            ("attr_put_by_job", (target_id, task_id, k, v)),
        ]
    items = [stamped(name, tuple(args), stamp) for name, args in writes]
    items += [
        ("change", ("job", source_id, source_id)),
        ("change", ("job", target_id, target_id)),
        ("change", ("task", task_id, target_id)),
    ]
    db.batch(f"move task {task_id} to job {target_id}", items)
    db.lwt("task_move_done", (task_id, remainder), f"finish the move of task {task_id}")
    return source_id, target_id


def finish_pending_move(db: CassandraSession, task_id: str) -> None:
    """Finish the move of `task_id` if one was decided and not finished."""
    rows = db.execute("task_move_pending", (task_id,), f"read task {task_id}")
    if rows and rows[0].move is not None:
        finish_move(db, task_id, str(rows[0].move))
