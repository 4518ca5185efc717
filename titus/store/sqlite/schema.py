"""The SQLite file's tables, how a file made by an earlier version is brought up to date,
and how set-up waits for another process that holds the file.

Tables mirror the Cassandra layout (one JSON document per entity, small index tables) so
both backends answer the same access patterns.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

SCHEMA = """
CREATE TABLE IF NOT EXISTS active_jobs (job_id TEXT PRIMARY KEY, version INTEGER NOT NULL,
    value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS active_tasks (task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL,
    version INTEGER NOT NULL, value TEXT NOT NULL, state TEXT, agent_id TEXT, ts INTEGER);
CREATE TABLE IF NOT EXISTS archived_jobs (job_id TEXT PRIMARY KEY, value TEXT NOT NULL,
    archived_at INTEGER);
CREATE TABLE IF NOT EXISTS archived_tasks (task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL,
    value TEXT NOT NULL, archived_at INTEGER);
CREATE INDEX IF NOT EXISTS archived_tasks_by_job ON archived_tasks (job_id);
CREATE TABLE IF NOT EXISTS job_group_names (name TEXT PRIMARY KEY, job_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dirty_jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kill_requests (job_id TEXT NOT NULL, task_id TEXT NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (job_id, task_id));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    entity_id TEXT NOT NULL, job_id TEXT NOT NULL, op TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS capacity_groups (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency_keys (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
    job_id TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS task_attributes (task_id TEXT NOT NULL, key TEXT NOT NULL,
    job_id TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (task_id, key));
CREATE INDEX IF NOT EXISTS task_attributes_by_job ON task_attributes (job_id);
CREATE TABLE IF NOT EXISTS move_requests (source_job_id TEXT NOT NULL, task_id TEXT NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (source_job_id, task_id));
CREATE TABLE IF NOT EXISTS instance_groups (name TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scheduler_results (task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL,
    value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scaling_policies (policy_id TEXT PRIMARY KEY, job_id TEXT NOT NULL,
    version INTEGER NOT NULL, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS scaling_policies_by_job ON scaling_policies (job_id);
"""

# Change feed entries kept; older ones are trimmed every TRIM_EVERY writes.
CHANGES_KEPT = 100_000
TRIM_EVERY = 1_000
# Archived jobs and tasks are kept this long (as Cassandra's archive TTL), then pruned:
# on a process's first archive write, then every PRUNE_EVERY.
ARCHIVE_TTL_SEC = 30 * 24 * 3600
PRUNE_EVERY = 100


#: Columns written next to each active task's document, so a new leader's start-up reads
#: its indexes' facts (TaskFacts) without taking them out of a million JSON documents.
TASK_INSERT = (
    "INSERT INTO active_tasks (task_id, job_id, version, value, state, agent_id, ts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


#: The plain task columns in job order, beside the documents that make up most of the
#: table: a new leader reads them job by job out of this index alone (a tenth of the table's
#: pages), and a job's tasks are found by it as by the job-id index it replaced.
TASK_FACTS_INDEX = "active_tasks_facts"


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a store file made by an earlier version up to the current schema."""
    _add_task_columns(conn)
    _add_archive_times(conn)
    _add_task_facts_index(conn)


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}


def _add_archive_times(conn: sqlite3.Connection) -> None:
    """When each record was archived, indexed for pruning; records archived before the
    column existed count as archived now (they are kept a whole TTL more)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        now_ms = int(time.time() * 1000)
        for table in ("archived_jobs", "archived_tasks"):
            if "archived_at" not in _columns(conn, table):
                conn.execute(f"ALTER TABLE {table} ADD COLUMN archived_at INTEGER")
                conn.execute(f"UPDATE {table} SET archived_at=?", (now_ms,))
            conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_by_time ON {table} (archived_at)")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _add_task_facts_index(conn: sqlite3.Connection) -> None:
    """The index of the task columns (see TASK_FACTS_INDEX), made once (in one
    transaction, which takes a few seconds for a million tasks), instead of the job-id one."""
    indexes = {str(r[1]) for r in conn.execute("PRAGMA index_list(active_tasks)")}
    if TASK_FACTS_INDEX in indexes and "active_tasks_by_job" not in indexes:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {TASK_FACTS_INDEX} "
            "ON active_tasks (job_id, task_id, state, agent_id, ts)"
        )
        conn.execute("DROP INDEX IF EXISTS active_tasks_by_job")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _add_task_columns(conn: sqlite3.Connection) -> None:
    """The plain task columns, filled from the documents (once, in one transaction)."""
    columns = _columns(conn, "active_tasks")
    missing = [c for c in ("state", "agent_id", "ts") if c not in columns]
    if not missing:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = _columns(conn, "active_tasks")
        for column, kind in (("state", "TEXT"), ("agent_id", "TEXT"), ("ts", "INTEGER")):
            if column not in columns:
                conn.execute(f"ALTER TABLE active_tasks ADD COLUMN {column} {kind}")
        conn.execute(
            "UPDATE active_tasks SET state=json_extract(value, '$.status.state'), "
            "agent_id=json_extract(value, '$.taskContext.\"agent.id\"'), "
            "ts=json_extract(value, '$.status.timestamp')"
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def while_locked(step: Callable[[], object], patience_sec: float = 30.0) -> None:
    """Run a set-up step, waiting while another process holds the file.

    Several processes (api, masters) may open a new store file at once; switching it to
    WAL, or creating its tables, can then answer "database is locked" at once instead of
    waiting on the busy timeout. It is retried with backoff until `patience_sec` passes.
    """
    deadline = time.monotonic() + patience_sec
    delay = 0.01
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
