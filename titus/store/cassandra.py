"""The production JobStore: Cassandra through cassandra-driver, in the shape Titus used.

Each job and task is one JSON document in a `value text` column. Listing goes through small
index tables: `active_job_ids` spread over a fixed number of buckets (chosen when the
keyspace is created and kept in `meta`, so no partition grows without bound) and
`active_task_ids ((job_id), task_id)`. Finished jobs and tasks move to `archived_*` tables
that expire after 30 days (`default_time_to_live`).

Consistency rules, and why:
- A job and its index rows change together in one logged batch at LOCAL_QUORUM: Cassandra
  applies all of a logged batch or (if the batch log was never written) none of it.
- Job group names are unique among active jobs through a lightweight transaction
  (`INSERT ... IF NOT EXISTS`) on `job_group_names`; two racing creates never both win.
- Versions: updates are `UPDATE ... IF version = ?`, so a writer that read an old version is
  refused (`Conflict`) instead of overwriting a newer decision.
- Leadership fencing: `claim_epoch` moves the `epoch` row forward only, by compare-and-set.
  A write that carries an epoch first reads that row at LOCAL_SERIAL and is refused
  (`StaleEpoch`) when a newer leader has claimed. (The window between that read and the
  write is bounded by how fast a deposed leader notices it lost its coordination session.)
- The change feed (what the API's view follows) is a table partitioned by minute, clustered
  by a time-based sequence number, with a one-hour TTL. Entries join the logged batch of
  the write they describe; a compare-and-set update cannot share a batch, so its entry is
  written right after it. A reader re-reads a short trailing window, so an entry that
  lands after the reader passed its number is still delivered, once.
- A new leader reads `active_jobs` and `active_tasks` whole, as paged full-table scans: they
  hold only what is active, and a read per task made a 100,000-task start-up take minutes.
- Timeouts and unavailable replicas are retried with exponential backoff and jitter when the
  statement is safe to repeat (every batch here writes fixed values; every lightweight
  transaction checks, when refused, whether the refusal is its own earlier success). When
  retries run out the caller gets `StoreUnavailable` with what was being done.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

from cassandra import (
    ConsistencyLevel,
    CoordinationFailure,
    InvalidRequest,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.connection import ConnectionException
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    FallthroughRetryPolicy,
    TokenAwarePolicy,
)
from cassandra.query import BatchStatement, BatchType, PreparedStatement, SimpleStatement

from titus.model.job import Job, Task
from titus.store.base import (
    ActiveIndex,
    ActiveState,
    Change,
    ChangeBatch,
    Conflict,
    GroupNameTaken,
    IdempotencyRecord,
    KillRequest,
    MoveRequest,
    StaleEpoch,
    StoreError,
    StoreRefused,
    StoreUnavailable,
    TaskRow,
)
from titus.store.codec import (
    dump_document,
    dump_request,
    load_kill_request,
    load_move_request,
    task_facts,
)

log = logging.getLogger(__name__)

ARCHIVE_TTL_SECONDS = 30 * 24 * 3600
DEFAULT_BUCKETS = 64
# A group name held by a job that never got written (its creator died between the name's
# lightweight transaction and the job's batch) is taken over after this long.
ABANDONED_NAME_SECONDS = 60.0
# The change feed: entries live an hour (a reader further behind reloads in full), in one
# partition per minute, ordered by a time-based sequence number (ms * SEQ_PER_MS + n).
FEED_TTL_SECONDS = 3600
FEED_BUCKET_MS = 60_000
SEQ_PER_MS = 1024
# Scheduler results of tasks that went away expire on their own.
SCHEDULER_RESULT_TTL_SECONDS = 24 * 3600
# Remaining tasks archived together with their job in one batch; more go in batches of this
# many first (task documents are ~1 KB; Cassandra refuses batches over 50 KB by default).
ARCHIVE_TASKS_PER_BATCH = 20
# Rows per page of the leader's full-table scans.
SCAN_PAGE_SIZE = 5000

_TRANSIENT = (
    WriteTimeout,
    ReadTimeout,
    Unavailable,
    OperationTimedOut,
    NoHostAvailable,
    ConnectionException,
    CoordinationFailure,
)
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")

T = TypeVar("T")

# Versioned schema: each migration runs once per keyspace, in order, and is recorded in
# `schema_migrations`. Statements are idempotent so two processes starting together agree.
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
]

_STATEMENTS = {
    # jobs
    "job_get": "SELECT value FROM active_jobs WHERE job_id = ?",
    "job_get_archived": "SELECT value FROM archived_jobs WHERE job_id = ?",
    "job_insert": "INSERT INTO active_jobs (job_id, version, value) VALUES (?, ?, ?)",
    "job_id_insert": "INSERT INTO active_job_ids (bucket, job_id) VALUES (?, ?)",
    "job_update": "UPDATE active_jobs SET version = ?, value = ? WHERE job_id = ? IF version = ?",
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
    "task_get_archived": "SELECT value FROM archived_tasks WHERE task_id = ?",
    "task_insert": "INSERT INTO active_tasks (task_id, version, value, job_id, state, agent_id, "
    "status_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
    "task_id_insert": "INSERT INTO active_task_ids (job_id, task_id) VALUES (?, ?)",
    "task_update": "UPDATE active_tasks SET version = ?, value = ?, job_id = ?, state = ?, "
    "agent_id = ?, status_ts = ? WHERE task_id = ? IF version = ?",
    "task_delete": "DELETE FROM active_tasks WHERE task_id = ?",
    "task_id_delete": "DELETE FROM active_task_ids WHERE job_id = ? AND task_id = ?",
    "task_ids_delete_job": "DELETE FROM active_task_ids WHERE job_id = ?",
    "task_archive": "INSERT INTO archived_tasks (task_id, value) VALUES (?, ?)",
    "task_id_archive": "INSERT INTO archived_task_ids (job_id, task_id) VALUES (?, ?)",
    "task_ids": "SELECT task_id FROM active_task_ids WHERE job_id = ?",
    "task_ids_archived": "SELECT task_id FROM archived_task_ids WHERE job_id = ?",
    # the API's requests to the master
    "dirty_mark": "INSERT INTO dirty_jobs (shard, mark, job_id) VALUES (0, ?, ?)",
    "dirty_list": "SELECT mark, job_id FROM dirty_jobs WHERE shard = 0",
    "dirty_delete": "DELETE FROM dirty_jobs WHERE shard = 0 AND mark = ?",
    "kill_insert": "INSERT INTO kill_requests (job_id, task_id, value) VALUES (?, ?, ?)",
    "kill_list": "SELECT value FROM kill_requests WHERE job_id = ?",
    "kill_delete": "DELETE FROM kill_requests WHERE job_id = ? AND task_id = ?",
    "kills_delete_job": "DELETE FROM kill_requests WHERE job_id = ?",
    # meta and leadership
    "meta_get": "SELECT value FROM meta WHERE key = ?",
    "meta_set": "INSERT INTO meta (key, value) VALUES (?, ?)",
    "meta_insert_new": "INSERT INTO meta (key, value) VALUES (?, ?) IF NOT EXISTS",
    "meta_cas": "UPDATE meta SET value = ? WHERE key = ? IF value = ?",
    # the leader's start-up: whole tables, paged (Cassandra serves a full-table SELECT)
    "jobs_scan": "SELECT value FROM active_jobs",
    "tasks_scan": "SELECT task_id, job_id, version, state, agent_id, status_ts, value "
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
    "job_version": "SELECT version FROM active_jobs WHERE job_id = ?",
    "task_version": "SELECT version, job_id, value FROM active_tasks WHERE task_id = ?",
    # instance groups (one small partition)
    "ig_list": "SELECT name, state FROM instance_groups WHERE part = 0",
    "ig_set": "INSERT INTO instance_groups (part, name, state) VALUES (0, ?, ?)",
    # scheduler results
    "sr_put": "INSERT INTO scheduler_results (task_id, job_id, value) VALUES (?, ?, ?)",
    "sr_get": "SELECT value FROM scheduler_results WHERE task_id = ?",
    "sr_delete": "DELETE FROM scheduler_results WHERE task_id = ?",
}


def _task_columns(task: Task) -> tuple[str, str, str | None, int]:
    """The plain columns written beside a task's document (job_id, state, agent, status ms)."""
    return (task.jobId, *task_facts(task))


def _feed_bucket(seq: int) -> int:
    return seq // (FEED_BUCKET_MS * SEQ_PER_MS)


def _now_seq() -> int:
    return int(time.time() * 1000) * SEQ_PER_MS


class CassandraRefused(StoreRefused):
    """Cassandra refused a statement as invalid (e.g. "Batch too large"): retrying cannot
    help, and the caller gets what was refused and why."""


class CassandraJobStore:
    """JobStore on Cassandra; see the module docstring for the consistency rules."""

    def __init__(
        self,
        contact_points: Sequence[str],
        *,
        port: int = 9042,
        keyspace: str = "titus",
        local_dc: str | None = None,
        replication: dict[str, Any] | None = None,
        username: str | None = None,
        password: str | None = None,
        consistency: int = ConsistencyLevel.LOCAL_QUORUM,
        request_timeout: float = 10.0,
        retries: int = 4,
        backoff_base: float = 0.05,
        backoff_max: float = 1.0,
        load_parallelism: int = 64,
        buckets: int = DEFAULT_BUCKETS,
        connect_timeout: float = 10.0,
        feed_window: float | None = None,
    ):
        if not _IDENT.match(keyspace):
            raise ValueError(f"invalid Cassandra keyspace name {keyspace!r}")
        self.keyspace = keyspace
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.load_parallelism = load_parallelism
        self._known_epoch = 0
        self._epoch_lock = threading.Lock()
        # Change feed: sequence numbers are time-based, so a write can land after a reader
        # has read past its number (a slow or retried write). A reader re-reads the last
        # `feed_window` seconds and gets, once, what it had not seen; each attempt of a
        # write takes a fresh number, so no write lands later than one request's timeout.
        self.feed_window = feed_window if feed_window is not None else request_timeout + 2.0
        self._seq_lock = threading.Lock()
        self._last_seq = 0
        self._feed_lock = threading.Lock()
        self._feed_from: int | None = None
        self._feed_seen: dict[tuple[int, str, str, str], None] = {}
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc)),
            # This store decides what is safe to retry; the driver must not guess.
            retry_policy=FallthroughRetryPolicy(),
            consistency_level=consistency,
            serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
            request_timeout=request_timeout,
        )
        auth = (
            PlainTextAuthProvider(username=username, password=password or "") if username else None
        )
        self._cluster = Cluster(
            list(contact_points),
            port=port,
            protocol_version=4,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            auth_provider=auth,
            schema_metadata_enabled=False,
            token_metadata_enabled=False,
            connect_timeout=connect_timeout,
            # Request/response traffic: without it a batch written in two pieces waits for
            # the server's delayed ACK (~40 ms each). The Java driver sets it by default.
            sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            # Come back quickly after a dropped connection, so the retries above can land.
            reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.1, max_delay=30.0),
        )
        try:
            self._session: Session = self._cluster.connect()
        except NoHostAvailable as e:
            self._cluster.shutdown()
            raise StoreUnavailable(
                f"cannot connect to Cassandra at {', '.join(contact_points)}:{port}: {e}"
            ) from e
        try:
            self._migrate(
                replication or {"class": "NetworkTopologyStrategy", (local_dc or "datacenter1"): 3},
                buckets,
            )
            self._ps: dict[str, PreparedStatement] = {
                name: self._session.prepare(cql) for name, cql in _STATEMENTS.items()
            }
            self._buckets = int(self._meta_raw("job_id_buckets") or buckets)
        except BaseException:
            self._cluster.shutdown()
            raise

    # ---- construction from a URL ----------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> CassandraJobStore:
        """`cassandra://host1,host2:9042/keyspace?dc=us-east&replication=us-east:3,eu:3`.

        `replication` is `dc:rf` pairs for NetworkTopologyStrategy (the default: the local
        dc with 3 replicas), or a bare number for SimpleStrategy. Other query options:
        `consistency` (LOCAL_QUORUM), `timeout` (seconds per request), `parallelism` (bulk
        load). Credentials come from TITUS_CASSANDRA_USERNAME and TITUS_CASSANDRA_PASSWORD,
        never from the URL, so they stay out of process listings and logs.
        """
        parsed = urlparse(url)
        if parsed.scheme != "cassandra":
            raise ValueError(f"not a cassandra:// URL: {url!r}")
        netloc = parsed.netloc.rsplit("@", 1)[-1]
        hosts: list[str] = []
        port = 9042
        for part in netloc.split(","):
            if not part:
                continue
            host, sep, p = part.rpartition(":")
            if sep and p.isdigit():
                hosts.append(host)
                port = int(p)
            else:
                hosts.append(part)
        if not hosts:
            raise ValueError(f"no Cassandra hosts in {url!r}")
        keyspace = unquote(parsed.path.strip("/")) or "titus"
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        dc = query.get("dc")
        kwargs: dict[str, Any] = {"port": port, "keyspace": keyspace, "local_dc": dc}
        if "replication" in query:
            kwargs["replication"] = parse_replication(query["replication"])
        if "consistency" in query:
            kwargs["consistency"] = ConsistencyLevel.name_to_value[query["consistency"].upper()]
        if "timeout" in query:
            kwargs["request_timeout"] = float(query["timeout"])
        if "parallelism" in query:
            kwargs["load_parallelism"] = int(query["parallelism"])
        kwargs["username"] = os.environ.get("TITUS_CASSANDRA_USERNAME") or None
        kwargs["password"] = os.environ.get("TITUS_CASSANDRA_PASSWORD") or None
        kwargs.update(overrides)
        return cls(hosts, **kwargs)

    # ---- plumbing ---------------------------------------------------------------------------
    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """Run an idempotent operation, retrying transient failures with backoff and jitter."""
        attempt = 0
        while True:
            try:
                return fn()
            except InvalidRequest as e:
                # Not transient: the same statement would be refused again.
                raise CassandraRefused(f"Cassandra refused to {what}: {e}") from e
            except _TRANSIENT as e:
                attempt += 1
                if attempt > self.retries:
                    raise StoreUnavailable(
                        f"Cassandra could not {what} after {attempt} attempts: "
                        f"{type(e).__name__}: {e}"
                    ) from e
                delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)
                log.warning("cassandra: %s failed (%s), retry %d in %.2fs", what, e, attempt, delay)
                time.sleep(delay)

    def _exec(self, name: str, args: Sequence[Any], what: str) -> list[Any]:
        return self._retrying(what, lambda: list(self._session.execute(self._ps[name], args)))

    def _batch(self, what: str, items: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """One logged batch: all of it is applied or none; fixed values make it repeatable.

        An item named "change" is a change feed entry (kind, entity id, job id, op); it gets
        a new sequence number on each attempt, so an attempt that did land and its retry
        leave two entries (harmless: readers fetch the entity), never a late one.
        """
        fixed = list(items)

        def run() -> None:
            batch = BatchStatement(batch_type=BatchType.LOGGED)
            for name, args in fixed:
                if name == "change":
                    batch.add(self._ps["change_insert"], self._change_args(*args))
                else:
                    batch.add(self._ps[name], args)
            self._session.execute(batch)

        self._retrying(what, run)

    def _next_seq(self) -> int:
        with self._seq_lock:
            self._last_seq = max(self._last_seq + 1, _now_seq())
            return self._last_seq

    def _change_args(self, kind: str, entity_id: str, job_id: str, op: str = "put") -> tuple:
        seq = self._next_seq()
        return (_feed_bucket(seq), seq, kind, entity_id, op, job_id)

    def _changed(self, kind: str, entity_id: str, job_id: str, op: str = "put") -> None:
        """A change entry for a write that could not share a batch (a lightweight
        transaction). Written after the write: a reader that saw the entry sees the write."""
        try:
            self._retrying(
                f"record a change of {kind} {entity_id}",
                lambda: self._session.execute(
                    self._ps["change_insert"], self._change_args(kind, entity_id, job_id, op)
                ),
            )
        except StoreUnavailable:
            # The write itself is done; failing it now would make the caller redo it. API
            # views miss this change until the entity changes again or they reload.
            log.error(
                "cassandra: %s %s written, but its change feed entry is lost", kind, entity_id
            )

    def _lwt(self, name: str, args: Sequence[Any], what: str) -> tuple[bool, Any]:
        """A lightweight transaction: (applied, the current row when not applied)."""
        applied, row, _ = self._lwt_attempts(name, args, what)
        return applied, row

    def _lwt_attempts(self, name: str, args: Sequence[Any], what: str) -> tuple[bool, Any, int]:
        """`_lwt` and how many attempts it took: a refusal after a retry may be the answer
        to our own earlier attempt, which did apply before it timed out."""
        attempts = 0

        def run() -> list[Any]:
            nonlocal attempts
            attempts += 1
            return list(self._session.execute(self._ps[name], args))

        row = self._retrying(what, run)[0]
        return bool(row[0]), row, attempts

    def _migrate(self, replication: dict[str, Any], buckets: int) -> None:
        repl = ", ".join(f"'{k}': '{v}'" for k, v in replication.items())
        ks = self.keyspace

        def ddl(cql: str) -> None:
            try:
                self._retrying(
                    "apply the schema", lambda: self._session.execute(SimpleStatement(cql))
                )
            except CassandraRefused as e:
                # ALTER TABLE ... ADD has no IF NOT EXISTS before Cassandra 5: a process that
                # starts alongside may have added the column first.
                if "conflicts with an existing column" not in str(e):
                    raise

        ddl(f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{{repl}}}")
        self._session.set_keyspace(ks)
        ddl(
            "CREATE TABLE IF NOT EXISTS schema_migrations (scope text, version int, "
            "description text, applied_at timestamp, PRIMARY KEY ((scope), version))"
        )
        rows = self._retrying(
            "read the schema version",
            lambda: list(
                self._session.execute("SELECT version FROM schema_migrations WHERE scope = 'titus'")
            ),
        )
        applied = {r.version for r in rows}
        for version, description, statements in MIGRATIONS:
            if version in applied:
                continue
            log.info("cassandra: applying schema migration %d: %s", version, description)
            for cql in statements:
                ddl(cql)
            if version == 1:
                # Fixed for the life of the keyspace: a job's bucket is derived from it.
                self._retrying(
                    "record the bucket count",
                    lambda: self._session.execute(
                        "INSERT INTO meta (key, value) VALUES ('job_id_buckets', %s) IF NOT EXISTS",
                        (str(buckets),),
                    ),
                )
            self._retrying(
                "record the schema version",
                lambda v=version, d=description: self._session.execute(  # type: ignore[misc]
                    "INSERT INTO schema_migrations (scope, version, description, applied_at) "
                    "VALUES ('titus', %s, %s, toTimestamp(now()))",
                    (v, d),
                ),
            )

    def _bucket(self, job_id: str) -> int:
        return zlib.crc32(job_id.encode()) % self._buckets

    def _meta_raw(self, key: str, serial: bool = False) -> str | None:
        read = self._serial_read if serial else self._exec
        rows = read("meta_get", (key,), f"read {key}")
        return str(rows[0].value) if rows else None

    def _check_epoch(self, epoch: int | None) -> None:
        """Refuse a write from a leader older than the newest claimed epoch."""
        if epoch is None:
            return
        if epoch < self._known_epoch:
            raise StaleEpoch(
                f"write from leader epoch {epoch}, but epoch {self._known_epoch} leads"
            )
        current = int(self._meta_raw("epoch", serial=True) or 0)
        with self._epoch_lock:
            self._known_epoch = max(self._known_epoch, current)
        if epoch < current:
            raise StaleEpoch(f"write from leader epoch {epoch}, but epoch {current} leads")

    def _concurrent(self, name: str, args: Sequence[Sequence[Any]], what: str) -> list[Any]:
        """One statement with many argument tuples, `load_parallelism` in flight at a time:
        the rows of all of them, in the order of `args`. Retried as a whole (reads and
        fixed-value deletes are safe to repeat)."""
        if not args:
            return []

        def run() -> list[Any]:
            results = execute_concurrent_with_args(
                self._session,
                self._ps[name],
                args,
                concurrency=self.load_parallelism,
                raise_on_first_error=True,
            )
            return [row for _, rows in results for row in rows]

        return self._retrying(what, run)

    def _values(self, name: str, ids: Sequence[str], what: str) -> list[str]:
        """Point reads of many documents."""
        return [r.value for r in self._concurrent(name, [(i,) for i in ids], what)]

    def _active_job_ids(self) -> list[str]:
        buckets = [(b,) for b in range(self._buckets)]
        return [
            r.job_id for r in self._concurrent("job_ids_bucket", buckets, "list the active jobs")
        ]

    # ---- jobs ---------------------------------------------------------------------------------
    def create_job(self, job: Job, tasks: Iterable[Task] = (), *, mark_dirty: bool = False) -> Job:
        job = job.model_copy(update={"version": 1})
        first = [t.model_copy(update={"version": 1}) for t in tasks]
        if self._exec("job_get", (job.id,), f"check job {job.id}") or self._exec(
            "job_get_archived", (job.id,), f"check job {job.id}"
        ):
            raise Conflict(f"job {job.id} exists")
        name = job.jobDescriptor.job_group_name
        if name is not None:
            self._claim_name(name, job.id)
        items: list[tuple[str, Sequence[Any]]] = [
            ("job_insert", (job.id, 1, dump_document(job))),
            ("job_id_insert", (self._bucket(job.id), job.id)),
            ("change", ("job", job.id, job.id)),
        ]
        for t in first:
            items.append(("task_insert", (t.id, 1, dump_document(t), *_task_columns(t))))
            items.append(("task_id_insert", (t.jobId, t.id)))
            items.append(("change", ("task", t.id, t.jobId)))
        if mark_dirty:
            # A fixed mark id, so a retried batch writes the same row again.
            items.append(("dirty_mark", (uuid.uuid1(), job.id)))
        try:
            self._batch(f"create job {job.id} with {len(first)} tasks", items)
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
                exists = bool(self._exec("job_get", (job.id,), f"check job {job.id}"))
            except StoreUnavailable:
                raise StoreUnavailable(
                    f"job {job.id} may not have been created (Cassandra did not confirm, and "
                    f"could not be asked): {e}"
                ) from e
            if exists:
                return job
            if name is not None:
                self._release_name(name, job.id)
            raise StoreUnavailable(f"job {job.id} was not created: {e}") from e
        return job

    def _claim_name(self, name: str, job_id: str) -> None:
        now_ms = int(time.time() * 1000)
        applied, row = self._lwt("name_claim", (name, job_id, now_ms), f"reserve group {name}")
        if applied or row.job_id == job_id:  # our own earlier attempt is not a conflict
            return
        holder = str(row.job_id)
        if self._holder_gone(holder, row.claimed_at):
            applied, row = self._lwt(
                "name_take_over", (job_id, now_ms, name, holder), f"reserve group {name}"
            )
            if applied or row.job_id == job_id:
                return
            holder = str(row.job_id)
        raise GroupNameTaken(name, holder)

    def _holder_gone(self, holder: str, claimed_at: Any) -> bool:
        """True when the job holding a name is archived, or was never written at all."""
        if self._exec("job_get", (holder,), f"check job {holder}"):
            return False
        if self._exec("job_get_archived", (holder,), f"check job {holder}"):
            return True
        if claimed_at is None:
            return True
        claimed = claimed_at.timestamp() if hasattr(claimed_at, "timestamp") else 0.0
        return time.time() - claimed > ABANDONED_NAME_SECONDS

    def _release_name(self, name: str, job_id: str) -> None:
        try:
            self._lwt("name_release", (name, job_id), f"release group {name}")
        except StoreUnavailable:
            log.warning("cassandra: group name %s stays with job %s until reclaimed", name, job_id)

    def get_job(self, job_id: str) -> Job | None:
        rows = self._exec("job_get", (job_id,), f"read job {job_id}")
        if not rows:
            rows = self._exec("job_get_archived", (job_id,), f"read job {job_id}")
        return Job.model_validate_json(rows[0].value) if rows else None

    def update_job(self, job: Job, *, epoch: int | None = None) -> Job:
        self._check_epoch(epoch)
        new = job.model_copy(update={"version": job.version + 1})
        value = dump_document(new)
        self._update("job", job.id, job.id, job.version, value, (new.version, value, job.id))
        return new

    def _update(
        self,
        kind: str,
        entity_id: str,
        job_id: str,
        version: int,
        value: str,
        args: Sequence[Any],
    ) -> None:
        """`UPDATE ... IF version = <version>` of a job or task (`<kind>_update` with `args`
        and then the version read), then its change entry. A refusal that shows the new
        version and our value is our own earlier attempt, which applied before it timed out."""
        applied, row = self._lwt(f"{kind}_update", (*args, version), f"update {kind} {entity_id}")
        if not applied and not (
            len(row) > 1
            and row.version == version + 1
            and self._active_value(kind, entity_id) == value
        ):
            raise Conflict(f"{kind} {entity_id} changed since version {version}")
        self._changed(kind, entity_id, job_id)

    def _active_value(self, kind: str, entity_id: str) -> str | None:
        """The stored document of an active job or task (`kind`), if there is one."""
        rows = self._exec(f"{kind}_get", (entity_id,), f"read {kind} {entity_id}")
        return str(rows[0].value) if rows else None

    def list_active_jobs(self) -> list[Job]:
        ids = self._active_job_ids()
        values = self._values("job_get", ids, "read the active jobs")
        return [Job.model_validate_json(v) for v in values]

    def count_active_jobs(self) -> int:
        buckets = [(b,) for b in range(self._buckets)]
        rows = self._concurrent("job_count_bucket", buckets, "count the active jobs")
        return sum(int(r.count) for r in rows)

    def archive_job(self, job: Job, *, epoch: int | None = None) -> None:
        self._check_epoch(epoch)
        task_ids = [r.task_id for r in self._exec("task_ids", (job.id,), f"list tasks {job.id}")]
        values = self._values("task_get", task_ids, f"read the tasks of job {job.id}")
        # Tasks still active go first, a few per batch: Cassandra refuses a batch above
        # batch_size_fail_threshold_in_kb (50 KB by default), and a job with hundreds of
        # tasks left would never be archived in one. A crash part-way leaves the job active
        # with fewer tasks; archiving it again moves the rest.
        task_items: list[tuple[str, Sequence[Any]]] = []
        for value in values:
            task = Task.model_validate_json(value)
            task_items += [
                ("task_archive", (task.id, value)),
                ("task_id_archive", (task.jobId, task.id)),
                ("task_delete", (task.id,)),
                ("task_id_delete", (task.jobId, task.id)),
                ("change", ("task", task.id, job.id, "archive")),
            ]
        if len(values) > ARCHIVE_TASKS_PER_BATCH:
            step = 5 * ARCHIVE_TASKS_PER_BATCH
            for i in range(0, len(task_items), step):
                self._batch(f"archive the tasks of job {job.id}", task_items[i : i + step])
            task_items = []
        items: list[tuple[str, Sequence[Any]]] = [
            ("job_archive", (job.id, dump_document(job))),
            ("job_delete", (job.id,)),
            ("job_id_delete", (self._bucket(job.id), job.id)),
            *task_items,
            ("task_ids_delete_job", (job.id,)),
            ("kills_delete_job", (job.id,)),
            ("moves_delete_job", (job.id,)),
            ("change", ("job", job.id, job.id, "archive")),
        ]
        self._batch(f"archive job {job.id}", items)
        name = job.jobDescriptor.job_group_name
        if name is not None:
            self._release_name(name, job.id)

    # ---- tasks ----------------------------------------------------------------------------------
    def create_task(self, task: Task, *, epoch: int | None = None) -> Task:
        self._check_epoch(epoch)
        new = task.model_copy(update={"version": 1})
        if self._exec("task_get", (task.id,), f"check task {task.id}"):
            raise Conflict(f"task {task.id} exists")
        self._batch(
            f"create task {task.id}",
            [
                ("task_insert", (new.id, 1, dump_document(new), *_task_columns(new))),
                ("task_id_insert", (new.jobId, new.id)),
                ("change", ("task", new.id, new.jobId)),
            ],
        )
        return new

    def update_task(self, task: Task, *, epoch: int | None = None) -> Task:
        self._check_epoch(epoch)
        new = task.model_copy(update={"version": task.version + 1})
        value = dump_document(new)
        args = (new.version, value, *_task_columns(new), task.id)
        self._update("task", task.id, task.jobId, task.version, value, args)
        return new

    def archive_task(self, task: Task, *, epoch: int | None = None) -> None:
        self._check_epoch(epoch)
        self._batch(
            f"archive task {task.id}",
            [
                ("task_archive", (task.id, dump_document(task))),
                ("task_id_archive", (task.jobId, task.id)),
                ("task_delete", (task.id,)),
                ("task_id_delete", (task.jobId, task.id)),
                ("change", ("task", task.id, task.jobId, "archive")),
            ],
        )

    def get_task(self, task_id: str) -> Task | None:
        rows = self._exec("task_get", (task_id,), f"read task {task_id}")
        if not rows:
            rows = self._exec("task_get_archived", (task_id,), f"read task {task_id}")
        return Task.model_validate_json(rows[0].value) if rows else None

    def list_tasks(self, job_id: str, *, include_archived: bool = False) -> list[Task]:
        ids = [r.task_id for r in self._exec("task_ids", (job_id,), f"list tasks of {job_id}")]
        values = self._values("task_get", ids, f"read the tasks of job {job_id}")
        if include_archived:
            old = self._exec("task_ids_archived", (job_id,), f"list tasks of {job_id}")
            values += self._values(
                "task_get_archived", [r.task_id for r in old], f"read tasks of {job_id}"
            )
        return [Task.model_validate_json(v) for v in values]

    def list_active_tasks(self) -> list[Task]:
        return [Task.model_validate_json(r.value) for r in self._scan("tasks_scan", "tasks")]

    def _scan(self, name: str, what: str) -> list[Any]:
        """Every row of a whole table, `SCAN_PAGE_SIZE` rows a page.

        The active tables hold only what is active, so reading them whole is the leader's
        start-up in a few hundred round trips, not one read per task. A scan that fails
        part-way is read again from the start (reads are safe to repeat).
        """
        stmt = self._ps[name].bind(())
        stmt.fetch_size = SCAN_PAGE_SIZE
        return self._retrying(f"read the active {what}", lambda: list(self._session.execute(stmt)))

    def _scan_both(self) -> tuple[list[Job], list[Any]]:
        """The job and task scans side by side: the jobs' pages arrive while tasks page."""
        result: dict[str, list[Any]] = {}
        errors: list[BaseException] = []

        def jobs() -> None:
            try:
                result["jobs"] = self._scan("jobs_scan", "jobs")
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                errors.append(e)

        thread = threading.Thread(target=jobs, name="cassandra-load-jobs", daemon=True)
        thread.start()
        task_rows = self._scan("tasks_scan", "tasks")
        thread.join()
        if errors:
            raise errors[0]
        job_list = [Job.model_validate_json(r.value) for r in result["jobs"]]
        return job_list, task_rows

    def load_active(self) -> ActiveState:
        """The new leader's start: both active tables, each as one paged full-table scan."""
        return self.load_active_index().parsed()

    def load_active_index(self) -> ActiveIndex:
        """`load_active` with tasks unparsed: the plain columns beside each document."""
        jobs, rows = self._scan_both()
        # The scan's columns are TaskRow's fields, in its order.
        tasks = [TaskRow._make(r) if r.job_id is not None else self._old_row(r) for r in rows]
        return ActiveIndex(jobs=jobs, tasks=tasks)

    @staticmethod
    def _old_row(r: Any) -> TaskRow:
        """A task written before the index columns existed: parse its document once."""
        job_id, state, agent_id, ts = _task_columns(Task.model_validate_json(r.value))
        return TaskRow(r.task_id, job_id, int(r.version), state, agent_id, ts, r.value)

    # ---- the API's requests to the master ---------------------------------------------------
    def mark_dirty(self, job_id: str) -> None:
        # Each mark is its own row (a time-based id), so taking marks never loses a new one.
        self._exec("dirty_mark", (uuid.uuid1(), job_id), f"mark job {job_id}")

    def take_dirty(self) -> list[str]:
        rows = self._exec("dirty_list", (), "read dirty marks")
        self._concurrent("dirty_delete", [(r.mark,) for r in rows], "clear dirty marks")
        return list(dict.fromkeys(str(r.job_id) for r in rows))

    def add_kill_request(self, request: KillRequest) -> None:
        value = dump_request(request)
        self._batch(
            f"request a kill of task {request.task_id}",
            [
                ("kill_insert", (request.job_id, request.task_id, value)),
                ("dirty_mark", (uuid.uuid1(), request.job_id)),
            ],
        )

    def list_kill_requests(self, job_id: str) -> list[KillRequest]:
        rows = self._exec("kill_list", (job_id,), f"read kill requests of {job_id}")
        return [load_kill_request(r.value) for r in rows]

    def delete_kill_request(self, request: KillRequest, *, epoch: int | None = None) -> None:
        self._check_epoch(epoch)
        self._exec("kill_delete", (request.job_id, request.task_id), "delete a kill request")

    # ---- leadership -------------------------------------------------------------------------
    def claim_epoch(self, epoch: int) -> None:
        """Move the epoch row forward by compare-and-set; never backwards."""
        while True:
            raw = self._meta_raw("epoch", serial=True)
            current = int(raw) if raw is not None else 0
            if epoch < current:
                with self._epoch_lock:
                    self._known_epoch = max(self._known_epoch, current)
                raise StaleEpoch(f"leader epoch {epoch} is older than epoch {current}")
            if epoch == current:
                break
            if raw is None:
                applied, row = self._lwt("meta_insert_new", ("epoch", str(epoch)), "claim epoch")
            else:
                applied, row = self._lwt("meta_cas", (str(epoch), "epoch", raw), "claim epoch")
            if applied or (len(row) > 1 and row.value == str(epoch)):
                break
        with self._epoch_lock:
            self._known_epoch = max(self._known_epoch, epoch)

    def current_epoch(self) -> int:
        raw = self._meta_raw("epoch", serial=True)
        return int(raw) if raw is not None else 0

    # ---- small settings ----------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        return self._meta_raw(key)

    def set_meta(self, key: str, value: str, *, epoch: int | None = None) -> None:
        self._check_epoch(epoch)
        self._exec("meta_set", (key, value), f"set {key}")

    # ---- instance groups ----------------------------------------------------------------------
    def list_instance_groups(self) -> dict[str, str]:
        rows = self._exec("ig_list", (), "read instance groups")
        return {str(r.name): str(r.state) for r in rows}

    def set_instance_group(self, name: str, state: str) -> None:
        self._exec("ig_set", (name, state), f"set instance group {name}")

    # ---- scheduler results ----------------------------------------------------------------------
    def put_scheduler_result(
        self, task_id: str, job_id: str, value: str, *, epoch: int | None = None
    ) -> None:
        self._check_epoch(epoch)
        self._exec("sr_put", (task_id, job_id, value), f"record placement of {task_id}")

    def get_scheduler_result(self, task_id: str) -> str | None:
        rows = self._exec("sr_get", (task_id,), f"read placement of {task_id}")
        return str(rows[0].value) if rows else None

    def delete_scheduler_result(self, task_id: str, *, epoch: int | None = None) -> None:
        self._check_epoch(epoch)
        self._exec("sr_delete", (task_id,), f"forget placement of {task_id}")

    # ---- change feed ----------------------------------------------------------------------------
    def _feed_rows(self, lower: int, upper_bucket: int, what: str) -> Iterable[Any]:
        """Feed entries with seq > `lower`, oldest first, bucket by bucket, paged."""
        floor = max(lower, _now_seq() - FEED_TTL_SECONDS * 1000 * SEQ_PER_MS)
        for bucket in range(_feed_bucket(floor), upper_bucket + 1):
            stmt = self._ps["changes_after"].bind((bucket, lower))
            stmt.fetch_size = 1000
            yield from self._retrying(what, lambda s=stmt: self._session.execute(s))  # type: ignore[misc]

    def changes_since(self, seq: int, limit: int = 1000) -> ChangeBatch:
        """Changes after `seq`, plus (once) those that landed late below it.

        Sequence numbers come from writers' clocks, so an entry may become visible after a
        reader has moved past its number. This handle re-reads the trailing `feed_window`
        and returns what it has not returned before, even below `seq`; entries it already
        returned are returned again only when asked for by a `seq` below them.
        """
        now = _now_seq()
        window = int(self.feed_window * 1000) * SEQ_PER_MS
        horizon = now - window
        first = now - FEED_TTL_SECONDS * 1000 * SEQ_PER_MS
        with self._feed_lock:
            if self._feed_from is not None:
                self._feed_from = max(self._feed_from, horizon)
                for key in [k for k in self._feed_seen if k[0] <= self._feed_from]:
                    del self._feed_seen[key]
            lower = seq if self._feed_from is None else min(seq, self._feed_from)
            seen = dict(self._feed_seen)
        out: list[Change] = []
        last_read = 0
        rows = self._feed_rows(lower, _feed_bucket(now + window), "read the change feed")
        for r in rows:
            s = int(r.seq)
            last_read = max(last_read, s)
            key = (s, str(r.kind), str(r.entity_id), str(r.op))
            if s <= seq and key in seen:
                continue
            if len(out) >= limit and s != out[-1].seq:
                break
            out.append(Change(s, key[1], key[2], str(r.job_id), key[3]))
        out.sort(key=lambda c: c.seq)
        with self._feed_lock:
            self._feed_from = lower if self._feed_from is None else min(self._feed_from, lower)
            for c in out:
                self._feed_seen[(c.seq, c.kind, c.entity_id, c.op)] = None
        # Nothing newer than `lower` means the head is at most `seq`: no look-back (an idle
        # feed is polled several times a second).
        return ChangeBatch(out, first, max(last_read, seq))

    def _head_seq(self, now: int) -> int:
        """The newest entry's seq, looking back bucket by bucket over the feed's lifetime."""
        skew = int(self.feed_window * 1000) * SEQ_PER_MS
        newest = _feed_bucket(now + skew)
        oldest = _feed_bucket(now - FEED_TTL_SECONDS * 1000 * SEQ_PER_MS)
        for bucket in range(newest, oldest - 1, -1):
            rows = self._exec("change_head", (bucket,), "read the change feed head")
            if rows:
                return int(rows[0].seq)
        return 0

    def last_change_seq(self) -> int:
        """The newest change's seq; this handle then counts the trailing window as seen,
        as a reader that starts from here loads everything else in full."""
        now = _now_seq()
        head = self._head_seq(now)
        horizon = now - int(self.feed_window * 1000) * SEQ_PER_MS
        if head:
            seen = [
                (int(r.seq), str(r.kind), str(r.entity_id), str(r.op))
                for r in self._feed_rows(horizon, _feed_bucket(head), "read the change feed")
                if int(r.seq) <= head
            ]
            with self._feed_lock:
                self._feed_from = horizon
                self._feed_seen = dict.fromkeys(seen)
        return head

    # ---- capacity groups ------------------------------------------------------------------------
    def create_capacity_group(self, name: str, value: str) -> None:
        applied, row, attempts = self._lwt_attempts(
            "cg_create", (name, value), f"create capacity group {name}"
        )
        # Refused after a retry with our own value: the attempt that timed out did apply.
        if not applied and not (attempts > 1 and row.value == value):
            raise Conflict(f"capacity group {name} exists")

    def put_capacity_group(self, name: str, value: str) -> None:
        self._exec("cg_put", (name, value), f"write capacity group {name}")

    def get_capacity_group(self, name: str) -> str | None:
        rows = self._exec("cg_get", (name,), f"read capacity group {name}")
        return str(rows[0].value) if rows else None

    def list_capacity_groups(self) -> dict[str, str]:
        rows = self._exec("cg_list", (), "read capacity groups")
        return {str(r.name): str(r.value) for r in rows}

    def delete_capacity_group(self, name: str) -> bool:
        applied, _, attempts = self._lwt_attempts(
            "cg_delete", (name,), f"delete capacity group {name}"
        )
        # Not applied after a retry: most likely our own timed-out attempt deleted it.
        return applied or attempts > 1

    # ---- idempotency keys -----------------------------------------------------------------------
    def claim_idempotency_key(
        self, key: str, fingerprint: str, job_id: str, ttl_sec: float
    ) -> IdempotencyRecord:
        """INSERT IF NOT EXISTS with a TTL: the winner's row, or the row that holds the key."""
        ttl = max(1, math.ceil(ttl_sec))
        expires_ms = int((time.time() + ttl_sec) * 1000)
        applied, row = self._lwt(
            "idem_claim", (key, fingerprint, job_id, expires_ms, ttl), "claim an idempotency key"
        )
        if applied:
            return IdempotencyRecord(fingerprint, job_id, expires_ms / 1000)
        return IdempotencyRecord(str(row.fingerprint), str(row.job_id), int(row.expires_at) / 1000)

    def release_idempotency_key(self, key: str, job_id: str) -> None:
        self._lwt("idem_release", (key, job_id), "release an idempotency key")

    # ---- task attributes ------------------------------------------------------------------------
    def update_task_attributes(
        self, task_id: str, job_id: str, upsert: dict[str, str], delete: Iterable[str] = ()
    ) -> None:
        items: list[tuple[str, Sequence[Any]]] = []
        for k, v in upsert.items():
            items.append(("attr_put", (task_id, k, job_id, v)))
            items.append(("attr_put_by_job", (job_id, task_id, k, v)))
        for k in delete:
            items.append(("attr_delete", (task_id, k)))
            items.append(("attr_delete_by_job", (job_id, task_id, k)))
        items.append(("change", ("task", task_id, job_id)))
        self._batch(f"write attributes of task {task_id}", items)

    def get_task_attributes(self, task_id: str) -> dict[str, str]:
        rows = self._exec("attr_get", (task_id,), f"read attributes of task {task_id}")
        return {str(r.key): str(r.value) for r in rows}

    def list_task_attributes(self, job_id: str) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for r in self._exec("attr_list", (job_id,), f"read task attributes of job {job_id}"):
            out.setdefault(str(r.task_id), {})[str(r.key)] = str(r.value)
        return out

    # ---- task moves -----------------------------------------------------------------------------
    def add_move_request(self, request: MoveRequest) -> None:
        value = dump_request(request)
        self._batch(
            f"request a move of task {request.task_id}",
            [
                ("move_insert", (request.source_job_id, request.task_id, value)),
                ("dirty_mark", (uuid.uuid1(), request.source_job_id)),
                ("dirty_mark", (uuid.uuid1(), request.target_job_id)),
            ],
        )

    def list_move_requests(self, job_id: str) -> list[MoveRequest]:
        rows = self._exec("move_list", (job_id,), f"read move requests of {job_id}")
        return [load_move_request(r.value) for r in rows]

    def delete_move_request(self, request: MoveRequest, *, epoch: int | None = None) -> None:
        self._check_epoch(epoch)
        self._exec("move_delete", (request.source_job_id, request.task_id), "delete a move request")

    def list_all_kill_requests(self) -> list[KillRequest]:
        """A paged scan of the kill requests table: kills are carried out at once, so it
        stays small (archiving a job drops its partition)."""
        return [load_kill_request(r.value) for r in self._scan("kills_scan", "kills")]

    def list_all_move_requests(self) -> list[MoveRequest]:
        """A paged scan of the move requests table: moves are few and short-lived."""
        return [load_move_request(r.value) for r in self._scan("moves_scan", "moves")]

    def move_task(
        self, task: Task, source: Job, target: Job, *, epoch: int | None = None
    ) -> tuple[Task, Job, Job]:
        """Versions checked first, then one logged batch (see JobStore.move_task).

        Conditional updates cannot span partitions, so the versions are read at SERIAL
        and the batch writes without conditions. The epoch fence keeps other masters out;
        a user's job update that lands between the check and the batch is overwritten
        (the API's writes to a job under a move are rare: a resize of one of the two jobs).
        """
        if task.jobId != target.id:
            raise ValueError(f"task {task.id} must name its target job {target.id}")
        self._check_epoch(epoch)
        rows = self._serial_read("task_version", (task.id,), f"read task {task.id}")
        if not rows:
            raise Conflict(f"task {task.id} is not active")
        stored_job = rows[0].job_id
        if stored_job is None:  # written before the index columns existed
            stored_job = Task.model_validate_json(rows[0].value).jobId
        if int(rows[0].version) != task.version or stored_job != source.id:
            raise Conflict(
                f"task {task.id} changed since version {task.version} or left job {source.id}"
            )
        for job in (source, target):
            got = self._serial_read("job_version", (job.id,), f"read job {job.id}")
            if not got or int(got[0].version) != job.version:
                raise Conflict(f"job {job.id} changed since version {job.version}")
        new_task = task.model_copy(update={"version": task.version + 1})
        new_source = source.model_copy(update={"version": source.version + 1})
        new_target = target.model_copy(update={"version": target.version + 1})
        attrs = self.get_task_attributes(task.id)
        items: list[tuple[str, Sequence[Any]]] = [
            (
                "task_insert",
                (task.id, new_task.version, dump_document(new_task), *_task_columns(new_task)),
            ),
            ("task_id_delete", (source.id, task.id)),
            ("task_id_insert", (target.id, task.id)),
            ("job_insert", (source.id, new_source.version, dump_document(new_source))),
            ("job_insert", (target.id, new_target.version, dump_document(new_target))),
            ("move_delete", (source.id, task.id)),
        ]
        for k, v in attrs.items():
            items += [
                ("attr_put", (task.id, k, target.id, v)),
                ("attr_delete_by_job", (source.id, task.id, k)),
                ("attr_put_by_job", (target.id, task.id, k, v)),
            ]
        items += [
            ("change", ("job", source.id, source.id)),
            ("change", ("job", target.id, target.id)),
            ("change", ("task", task.id, target.id)),
        ]
        self._batch(f"move task {task.id} to job {target.id}", items)
        return new_task, new_source, new_target

    def _serial_read(self, name: str, args: Sequence[Any], what: str) -> list[Any]:
        """A read at LOCAL_SERIAL: sees any compare-and-set that was accepted, even one
        still being committed."""
        bound = self._ps[name].bind(args)
        bound.consistency_level = ConsistencyLevel.LOCAL_SERIAL
        return self._retrying(what, lambda: list(self._session.execute(bound)))

    def close(self) -> None:
        self._cluster.shutdown()


def parse_replication(text: str) -> dict[str, Any]:
    """`dc1:3,dc2:3` (NetworkTopologyStrategy) or `3` (SimpleStrategy, for one-dc labs)."""
    text = text.strip()
    if text.isdigit():
        return {"class": "SimpleStrategy", "replication_factor": int(text)}
    out: dict[str, Any] = {"class": "NetworkTopologyStrategy"}
    for part in text.split(","):
        dc, sep, rf = part.partition(":")
        if not sep or not rf.strip().isdigit() or not dc.strip():
            raise ValueError(f"replication must look like dc1:3,dc2:3, not {text!r}")
        out[dc.strip()] = int(rf)
    return out


__all__ = ["CassandraJobStore", "CassandraRefused", "StoreError", "parse_replication"]
