"""A store file written before the leader's start-up columns existed is brought up to date
when opened: the plain task columns are added and filled from the documents, their index
made, and the leader's start-up reads the same facts as from a file made by the current
version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from titus.model.job import Task, TaskStatus
from titus.model.states import TaskState
from titus.store.sqlite import SqliteJobStore
from titus.store.sqlite.tasks import _FACTS_BY_JOB


def test_an_older_store_file_gets_the_task_columns_filled(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    task = Task(
        id="t1",
        jobId="j1",
        originalId="t1",
        status=TaskStatus(state=TaskState.STARTED, timestamp=1234),
        taskContext={"agent.id": "h1"},
        version=3,
    )
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE active_tasks (task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, value TEXT NOT NULL)"
    )
    old.execute(
        "INSERT INTO active_tasks VALUES (?, ?, ?, ?)",
        (task.id, task.jobId, 3, task.model_dump_json(exclude_none=True)),
    )
    old.commit()
    old.close()

    store = SqliteJobStore(path, synchronous="OFF")
    [row] = store.load_active_index().tasks
    assert (row.id, row.job_id, row.state, row.agent_id, row.timestamp) == (
        "t1",
        "j1",
        "Started",
        "h1",
        1234,
    )
    assert store.load_active_facts().tasks == [("t1", "j1", "Started", "h1", 1234)]
    check = sqlite3.connect(path)
    assert check.execute("SELECT state, agent_id, ts FROM active_tasks").fetchall() == [
        ("Started", "h1", 1234)
    ]
    # later writes keep the columns current
    stored = store.get_task("t1")
    assert stored is not None
    store.update_task(stored.with_status(TaskState.KILL_INITIATED))
    assert check.execute("SELECT state FROM active_tasks").fetchall() == [("KillInitiated",)]
    check.close()
    SqliteJobStore(path, synchronous="OFF").close()  # opening again changes nothing


def test_an_older_store_file_gets_the_index_the_start_up_reads(tmp_path: Path) -> None:
    """A file with the job-id index of earlier versions gets the index of the task columns
    instead, once; the leader's start-up then reads that index alone (not the documents)."""
    path = tmp_path / "old.db"
    SqliteJobStore(path, synchronous="OFF").close()
    old = sqlite3.connect(path)
    old.execute("DROP INDEX active_tasks_facts")
    old.execute("CREATE INDEX active_tasks_by_job ON active_tasks (job_id)")
    old.execute(
        "INSERT INTO active_tasks (task_id, job_id, version, value, state, agent_id, ts) "
        "VALUES ('t1', 'j1', 1, '{}', 'Started', 'h1', 1234)"
    )
    old.commit()
    old.close()

    store = SqliteJobStore(path, synchronous="OFF")
    check = sqlite3.connect(path)
    indexes = {r[1] for r in check.execute("PRAGMA index_list(active_tasks)")}
    assert "active_tasks_facts" in indexes and "active_tasks_by_job" not in indexes
    [plan] = check.execute(f"EXPLAIN QUERY PLAN {_FACTS_BY_JOB}").fetchall()
    assert "COVERING INDEX active_tasks_facts" in plan[-1]
    facts = store.load_active_facts()
    assert facts.tasks == [("t1", "j1", "Started", "h1", 1234)]
    check.close()
    store.close()


def test_task_ids_with_the_column_separator_still_load(tmp_path: Path) -> None:
    """The start-up read joins each job's values with a separator; a job with an id that
    holds it is read row by row instead, the same facts."""
    store = SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")
    odd = Task(
        id="t\x1fodd",
        jobId="j1",
        originalId="t\x1fodd",
        status=TaskStatus(state=TaskState.ACCEPTED, timestamp=5),
    )
    plain = odd.model_copy(update={"id": "t2", "originalId": "t2"})
    store.create_task(odd)
    store.create_task(plain)
    facts = store.load_active_facts()
    assert sorted(facts.tasks) == [
        ("t\x1fodd", "j1", "Accepted", None, 5),
        ("t2", "j1", "Accepted", None, 5),
    ]
    store.close()
