"""The Cassandra keyspace: its tables, their lifetimes, and the migrations that make them.

Versioned schema: each migration runs once per keyspace, in order, and is recorded in
`schema_migrations`. Statements are idempotent so two processes starting together agree.
"""

from __future__ import annotations

import logging
from typing import Any

from cassandra.query import SimpleStatement

from titus.model.job import Task
from titus.store.cassandra.sequence import FEED_TTL_SECONDS
from titus.store.cassandra.session import CassandraRefused, CassandraSession
from titus.store.codec import task_facts

log = logging.getLogger("titus.store.cassandra")

ARCHIVE_TTL_SECONDS = 30 * 24 * 3600
DEFAULT_BUCKETS = 64
# Scheduler results of tasks that went away expire on their own.
SCHEDULER_RESULT_TTL_SECONDS = 24 * 3600

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "jobs, tasks, their indexes and archive; group names; dirty marks; kills; meta",
        [
            "CREATE TABLE IF NOT EXISTS active_job_ids (bucket int, job_id text, "
            "PRIMARY KEY ((bucket), job_id))",
            "CREATE TABLE IF NOT EXISTS active_jobs (job_id text PRIMARY KEY, version bigint, "
            "value text)",
            "CREATE TABLE IF NOT EXISTS active_tasks (task_id text PRIMARY KEY, version bigint, "
            "value text)",
            "CREATE TABLE IF NOT EXISTS active_task_ids (job_id text, task_id text, "
            "PRIMARY KEY ((job_id), task_id))",
            "CREATE TABLE IF NOT EXISTS archived_jobs (job_id text PRIMARY KEY, value text) "
            f"WITH default_time_to_live = {ARCHIVE_TTL_SECONDS}",
            "CREATE TABLE IF NOT EXISTS archived_tasks (task_id text PRIMARY KEY, value text) "
            f"WITH default_time_to_live = {ARCHIVE_TTL_SECONDS}",
            "CREATE TABLE IF NOT EXISTS archived_task_ids (job_id text, task_id text, "
            f"PRIMARY KEY ((job_id), task_id)) WITH default_time_to_live = {ARCHIVE_TTL_SECONDS}",
            "CREATE TABLE IF NOT EXISTS job_group_names (name text PRIMARY KEY, job_id text, "
            "claimed_at timestamp)",
            "CREATE TABLE IF NOT EXISTS dirty_jobs (shard int, mark timeuuid, job_id text, "
            "PRIMARY KEY ((shard), mark))",
            "CREATE TABLE IF NOT EXISTS kill_requests (job_id text, task_id text, value text, "
            "PRIMARY KEY ((job_id), task_id))",
            "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text)",
        ],
    ),
    (
        2,
        "change feed, task index columns, capacity groups, idempotency keys, task attributes, "
        "move requests, instance groups, scheduler results",
        [
            # Plain columns beside the task document, so a leader's start-up reads its index
            # without parsing 100,000 documents (see TaskRow).
            "ALTER TABLE active_tasks ADD (job_id text, state text, agent_id text, "
            "status_ts bigint)",
            "CREATE TABLE IF NOT EXISTS changes (bucket bigint, seq bigint, kind text, "
            "entity_id text, op text, job_id text, PRIMARY KEY ((bucket), seq, kind, entity_id, "
            f"op)) WITH default_time_to_live = {FEED_TTL_SECONDS}",
            "CREATE TABLE IF NOT EXISTS capacity_groups (part int, name text, value text, "
            "PRIMARY KEY ((part), name))",
            "CREATE TABLE IF NOT EXISTS idempotency_keys (key text PRIMARY KEY, "
            "fingerprint text, job_id text, expires_at bigint)",
            "CREATE TABLE IF NOT EXISTS task_attributes (task_id text, key text, job_id text, "
            "value text, PRIMARY KEY ((task_id), key))",
            "CREATE TABLE IF NOT EXISTS task_attributes_by_job (job_id text, task_id text, "
            "key text, value text, PRIMARY KEY ((job_id), task_id, key))",
            "CREATE TABLE IF NOT EXISTS move_requests (source_job_id text, task_id text, "
            "value text, PRIMARY KEY ((source_job_id), task_id))",
            "CREATE TABLE IF NOT EXISTS instance_groups (part int, name text, state text, "
            "PRIMARY KEY ((part), name))",
            "CREATE TABLE IF NOT EXISTS scheduler_results (task_id text PRIMARY KEY, "
            f"job_id text, value text) WITH default_time_to_live = {SCHEDULER_RESULT_TTL_SECONDS}",
        ],
    ),
    (
        3,
        "dirty marks by minute with a TTL (dirty_jobs, one partition with a tombstone per "
        "mark taken, is no longer read; a new leader loads every job anyway)",
        [
            "CREATE TABLE IF NOT EXISTS dirty_marks (bucket bigint, seq bigint, job_id text, "
            f"PRIMARY KEY ((bucket), seq, job_id)) WITH default_time_to_live = {FEED_TTL_SECONDS}",
        ],
    ),
    (
        4,
        "scaling policies, by id with a version, and their index by job",
        [
            "CREATE TABLE IF NOT EXISTS scaling_policies (policy_id text PRIMARY KEY, "
            "job_id text, version bigint, value text)",
            "CREATE TABLE IF NOT EXISTS scaling_policy_ids (job_id text, policy_id text, "
            "PRIMARY KEY ((job_id), policy_id))",
        ],
    ),
    (
        5,
        "fences: the epoch of the leader that last wrote each job, task and meta row, the "
        "condition of the leader's compare-and-set writes (fencing.py)",
        [
            "ALTER TABLE active_jobs ADD fence bigint",
            "ALTER TABLE active_tasks ADD fence bigint",
            "ALTER TABLE meta ADD fence bigint",
        ],
    ),
    (
        6,
        "a task move's remainder beside the moved task, written with the move's decision "
        "and cleared once the rest of the move is written (requests.py move_task)",
        ["ALTER TABLE active_tasks ADD move text"],
    ),
]


def task_columns(task: Task) -> tuple[str, str, str | None, int]:
    """The plain columns written beside a task's document (job_id, state, agent, status ms)."""
    return (task.jobId, *task_facts(task))


def migrate(db: CassandraSession, keyspace: str, replication: dict[str, Any], buckets: int) -> None:
    """Create the keyspace if needed, switch to it and apply the migrations not yet recorded.

    `buckets` (the spread of the active job index) is recorded by the first migration and
    fixed for the life of the keyspace: a job's bucket is derived from it.
    """
    repl = ", ".join(f"'{k}': '{v}'" for k, v in replication.items())
    session = db.session

    def ddl(cql: str) -> None:
        try:
            db.retrying("apply the schema", lambda: session.execute(SimpleStatement(cql)))
        except CassandraRefused as e:
            # ALTER TABLE ... ADD has no IF NOT EXISTS before Cassandra 5: a process that
            # starts alongside may have added the column first.
            if "conflicts with an existing column" not in str(e):
                raise

    ddl(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{{repl}}}")
    session.set_keyspace(keyspace)
    ddl(
        "CREATE TABLE IF NOT EXISTS schema_migrations (scope text, version int, "
        "description text, applied_at timestamp, PRIMARY KEY ((scope), version))"
    )
    rows = db.retrying(
        "read the schema version",
        lambda: list(
            session.execute("SELECT version FROM schema_migrations WHERE scope = 'titus'")
        ),
        "read",
    )
    applied = {r.version for r in rows}
    for version, description, statements in MIGRATIONS:
        if version in applied:
            continue
        log.info("cassandra: applying schema migration %d: %s", version, description)
        for cql in statements:
            ddl(cql)
        if version == 1:
            db.retrying(
                "record the bucket count",
                lambda: session.execute(
                    "INSERT INTO meta (key, value) VALUES ('job_id_buckets', %s) IF NOT EXISTS",
                    (str(buckets),),
                ),
            )
        db.retrying(
            "record the schema version",
            lambda v=version, d=description: session.execute(  # type: ignore[misc]
                "INSERT INTO schema_migrations (scope, version, description, applied_at) "
                "VALUES ('titus', %s, %s, toTimestamp(now()))",
                (v, d),
            ),
        )
