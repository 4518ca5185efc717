"""A store file written before the leader's start-up columns existed is brought up to date
when opened: the plain task columns are added and filled from the documents, and the
leader's start-up reads the same facts as from a file made by the current version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from titus.model.job import Task, TaskStatus
from titus.model.states import TaskState
from titus.store.sqlite import SqliteJobStore


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
