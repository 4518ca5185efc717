"""Every CQL statement the store runs, by name; each is prepared once per session.

Writes of fixed values only (no counters, no `now()`), so any of them is safe to repeat
when a timeout leaves its outcome unknown; the compare-and-set ones (`IF ...`) are told
apart from a refusal by the caller (see session.py).
"""

from __future__ import annotations

from typing import Any

STATEMENTS: dict[str, str] = {
    # jobs
    "job_get": "SELECT value FROM active_jobs WHERE job_id = ?",
    "job_get_archived": "SELECT value FROM archived_jobs WHERE job_id = ?",
    "job_insert": "INSERT INTO active_jobs (job_id, version, value, fence) VALUES (?, ?, ?, ?)",
    "job_id_insert": "INSERT INTO active_job_ids (bucket, job_id) VALUES (?, ?)",
    "job_update": "UPDATE active_jobs SET version = ?, value = ? WHERE job_id = ? IF version = ?",
    # the leader's: the epoch check is the condition of the write itself (fencing.py)
    "job_update_fenced": "UPDATE active_jobs SET version = ?, value = ?, fence = ? "
    "WHERE job_id = ? IF version = ? AND fence <= ?",
    "job_update_fenced_first": "UPDATE active_jobs SET version = ?, value = ?, fence = ? "
    "WHERE job_id = ? IF version = ? AND fence = null",
    "job_delete": "DELETE FROM active_jobs WHERE job_id = ?",
    "job_id_delete": "DELETE FROM active_job_ids WHERE bucket = ? AND job_id = ?",
    "job_archive": "INSERT INTO archived_jobs (job_id, value) VALUES (?, ?)",
    "job_ids_bucket": "SELECT job_id FROM active_job_ids WHERE bucket = ?",
    "job_count_bucket": "SELECT count(*) FROM active_job_ids WHERE bucket = ?",
    # group names
    "name_claim": "INSERT INTO job_group_names (name, job_id, claimed_at) VALUES (?, ?, ?) "
    "IF NOT EXISTS",
    "name_take_over": "UPDATE job_group_names SET job_id = ?, claimed_at = ? WHERE name = ? "
    "IF job_id = ?",
    "name_release": "DELETE FROM job_group_names WHERE name = ? IF job_id = ?",
    # tasks
    "task_get": "SELECT value FROM active_tasks WHERE task_id = ?",
    "task_get_keyed": "SELECT task_id, job_id, value FROM active_tasks WHERE task_id = ?",
    "task_get_job": "SELECT job_id, value FROM active_tasks WHERE task_id = ?",
    "task_get_archived": "SELECT value FROM archived_tasks WHERE task_id = ?",
    "task_insert": "INSERT INTO active_tasks (task_id, version, value, job_id, state, agent_id, "
    "status_ts, fence) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "task_create": "INSERT INTO active_tasks (task_id, version, value, job_id, state, agent_id, "
    "status_ts, fence) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
    "task_id_insert": "INSERT INTO active_task_ids (job_id, task_id) VALUES (?, ?)",
    "task_update": "UPDATE active_tasks SET version = ?, value = ?, job_id = ?, state = ?, "
    "agent_id = ?, status_ts = ? WHERE task_id = ? IF version = ?",
    "task_update_fenced": "UPDATE active_tasks SET version = ?, value = ?, job_id = ?, "
    "state = ?, agent_id = ?, status_ts = ?, fence = ? WHERE task_id = ? IF version = ? "
    "AND fence <= ?",
    "task_update_fenced_first": "UPDATE active_tasks SET version = ?, value = ?, job_id = ?, "
    "state = ?, agent_id = ?, status_ts = ?, fence = ? WHERE task_id = ? IF version = ? "
    "AND fence = null",
    # a task move's decision: the moved task and what is left to write (requests.py)
    "task_move_update": "UPDATE active_tasks SET version = ?, value = ?, job_id = ?, "
    "state = ?, agent_id = ?, status_ts = ?, move = ? WHERE task_id = ? IF version = ?",
    "task_move_update_fenced": "UPDATE active_tasks SET version = ?, value = ?, job_id = ?, "
    "state = ?, agent_id = ?, status_ts = ?, move = ?, fence = ? WHERE task_id = ? "
    "IF version = ? AND fence <= ?",
    "task_move_update_fenced_first": "UPDATE active_tasks SET version = ?, value = ?, "
    "job_id = ?, state = ?, agent_id = ?, status_ts = ?, move = ?, fence = ? "
    "WHERE task_id = ? IF version = ? AND fence = null",
    "task_move_pending": "SELECT move FROM active_tasks WHERE task_id = ?",
    "task_move_done": "UPDATE active_tasks SET move = null WHERE task_id = ? IF move = ?",
    "task_delete": "DELETE FROM active_tasks WHERE task_id = ?",
    "task_id_delete": "DELETE FROM active_task_ids WHERE job_id = ? AND task_id = ?",
    "task_ids_delete_job": "DELETE FROM active_task_ids WHERE job_id = ?",
    "task_archive": "INSERT INTO archived_tasks (task_id, value) VALUES (?, ?)",
    "task_id_archive": "INSERT INTO archived_task_ids (job_id, task_id) VALUES (?, ?)",
    "task_ids": "SELECT task_id FROM active_task_ids WHERE job_id = ?",
    "task_ids_archived": "SELECT task_id FROM archived_task_ids WHERE job_id = ?",
    # the API's requests to the master
    "dirty_mark": "INSERT INTO dirty_marks (bucket, seq, job_id) VALUES (?, ?, ?)",
    "dirty_after": "SELECT seq, job_id FROM dirty_marks WHERE bucket = ? AND seq > ?",
    "kill_insert": "INSERT INTO kill_requests (job_id, task_id, value) VALUES (?, ?, ?)",
    "kill_list": "SELECT value FROM kill_requests WHERE job_id = ?",
    "kill_delete": "DELETE FROM kill_requests WHERE job_id = ? AND task_id = ?",
    "kills_delete_job": "DELETE FROM kill_requests WHERE job_id = ?",
    # meta and leadership
    "meta_get": "SELECT value FROM meta WHERE key = ?",
    "meta_set": "INSERT INTO meta (key, value) VALUES (?, ?)",
    "meta_insert_new": "INSERT INTO meta (key, value) VALUES (?, ?) IF NOT EXISTS",
    "meta_cas": "UPDATE meta SET value = ? WHERE key = ? IF value = ?",
    "meta_set_fenced": "UPDATE meta SET value = ?, fence = ? WHERE key = ? IF fence <= ?",
    "meta_set_fenced_first": "UPDATE meta SET value = ?, fence = ? WHERE key = ? IF fence = null",
    # the leader's start-up: whole tables, paged (Cassandra serves a full-table SELECT)
    "jobs_scan": "SELECT value FROM active_jobs",
    # TaskRow's columns, in its order, then a move's remainder (requests.py)
    "tasks_scan": "SELECT task_id, job_id, version, state, agent_id, status_ts, value, move "
    "FROM active_tasks",
    # TaskFacts' columns, in its order: no document crosses the wire
    "tasks_scan_facts": "SELECT task_id, job_id, state, agent_id, status_ts, move "
    "FROM active_tasks",
    # change feed
    "change_insert": "INSERT INTO changes (bucket, seq, kind, entity_id, op, job_id) "
    "VALUES (?, ?, ?, ?, ?, ?)",
    "changes_after": "SELECT seq, kind, entity_id, job_id, op FROM changes "
    "WHERE bucket = ? AND seq > ?",
    "change_head": "SELECT seq FROM changes WHERE bucket = ? ORDER BY seq DESC LIMIT 1",
    # capacity groups (one small partition)
    "cg_create": "INSERT INTO capacity_groups (part, name, value) VALUES (0, ?, ?) IF NOT EXISTS",
    "cg_put": "INSERT INTO capacity_groups (part, name, value) VALUES (0, ?, ?)",
    "cg_get": "SELECT value FROM capacity_groups WHERE part = 0 AND name = ?",
    "cg_list": "SELECT name, value FROM capacity_groups WHERE part = 0",
    "cg_delete": "DELETE FROM capacity_groups WHERE part = 0 AND name = ? IF EXISTS",
    # idempotency keys
    "idem_claim": "INSERT INTO idempotency_keys (key, fingerprint, job_id, expires_at) "
    "VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?",
    "idem_release": "DELETE FROM idempotency_keys WHERE key = ? IF job_id = ?",
    # task attributes, by task and by job
    "attr_put": "INSERT INTO task_attributes (task_id, key, job_id, value) VALUES (?, ?, ?, ?)",
    "attr_put_by_job": "INSERT INTO task_attributes_by_job (job_id, task_id, key, value) "
    "VALUES (?, ?, ?, ?)",
    "attr_delete": "DELETE FROM task_attributes WHERE task_id = ? AND key = ?",
    "attr_delete_by_job": "DELETE FROM task_attributes_by_job WHERE job_id = ? AND task_id = ? "
    "AND key = ?",
    "attr_get": "SELECT key, value FROM task_attributes WHERE task_id = ?",
    "attr_list": "SELECT task_id, key, value FROM task_attributes_by_job WHERE job_id = ?",
    # task moves
    "move_insert": "INSERT INTO move_requests (source_job_id, task_id, value) VALUES (?, ?, ?)",
    "move_list": "SELECT value FROM move_requests WHERE source_job_id = ?",
    "move_delete": "DELETE FROM move_requests WHERE source_job_id = ? AND task_id = ?",
    "moves_delete_job": "DELETE FROM move_requests WHERE source_job_id = ?",
    "moves_scan": "SELECT value FROM move_requests",
    "kills_scan": "SELECT value FROM kill_requests",
    # a move's checks: the versions, and when they were written (its batch goes after)
    "job_version": "SELECT version, WRITETIME(version) AS written FROM active_jobs "
    "WHERE job_id = ?",
    "task_version": "SELECT version, job_id, value, WRITETIME(version) AS written "
    "FROM active_tasks WHERE task_id = ?",
    # instance groups (one small partition)
    "ig_list": "SELECT name, state FROM instance_groups WHERE part = 0",
    "ig_set": "INSERT INTO instance_groups (part, name, state) VALUES (0, ?, ?)",
    # scheduler results
    "sr_put": "INSERT INTO scheduler_results (task_id, job_id, value) VALUES (?, ?, ?)",
    "sr_get": "SELECT value FROM scheduler_results WHERE task_id = ?",
    "sr_delete": "DELETE FROM scheduler_results WHERE task_id = ?",
    # scaling policies: by id with a version, an index partition per job
    "sp_insert": "INSERT INTO scaling_policies (policy_id, job_id, version, value) "
    "VALUES (?, ?, ?, ?) IF NOT EXISTS",
    "sp_id_insert": "INSERT INTO scaling_policy_ids (job_id, policy_id) VALUES (?, ?)",
    "sp_update": "UPDATE scaling_policies SET version = ?, value = ? WHERE policy_id = ? "
    "IF version = ?",
    "sp_get": "SELECT policy_id, job_id, version, value FROM scaling_policies WHERE policy_id = ?",
    "sp_scan": "SELECT policy_id, job_id, version, value FROM scaling_policies",
    "sp_ids": "SELECT policy_id FROM scaling_policy_ids WHERE job_id = ?",
    "sp_delete": "DELETE FROM scaling_policies WHERE policy_id = ?",
    "sp_id_delete": "DELETE FROM scaling_policy_ids WHERE job_id = ? AND policy_id = ?",
}

#: The writes that complete a task move, at the move's own timestamp (requests.py).
STAMPED = (
    "task_id_delete",
    "task_id_insert",
    "job_insert",
    "move_delete",
    "attr_put",
    "attr_delete_by_job",
    "attr_put_by_job",
)


def _at_timestamp(cql: str) -> str:
    if cql.startswith("INSERT"):
        return f"{cql} USING TIMESTAMP ?"
    return cql.replace(" WHERE ", " USING TIMESTAMP ? WHERE ", 1)


STATEMENTS.update({f"{name}@ts": _at_timestamp(STATEMENTS[name]) for name in STAMPED})


def stamped(name: str, args: tuple[Any, ...], timestamp: int) -> tuple[str, tuple[Any, ...]]:
    """The item of statement `name` written at `timestamp` (microseconds) instead of the
    client's clock at sending: an INSERT binds it last, a DELETE first."""
    if name not in STAMPED:
        raise KeyError(f"{name} has no variant at a timestamp")
    if STATEMENTS[name].startswith("INSERT"):
        return f"{name}@ts", (*args, timestamp)
    return f"{name}@ts", (timestamp, *args)
