"""Talking to Cassandra: connecting, consistency, retries, and what the driver's errors mean.

Timeouts and unavailable replicas are retried with exponential backoff and jitter when the
statement is safe to repeat (every batch here writes fixed values; every lightweight
transaction checks, when refused, whether the refusal is its own earlier success). When
retries run out the caller gets `StoreUnavailable` with what was being done; a statement
Cassandra refuses as invalid is `CassandraRefused` at once, since repeating it cannot help.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

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
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from titus.store.cassandra.sequence import (
    FEED_TTL_SECONDS,
    SEQ_PER_MS,
    SequenceClock,
    feed_bucket,
    now_seq,
)
from titus.store.errors import Conflict, StaleEpoch, StoreRefused, StoreUnavailable
from titus.store.metrics import Operation, count_error

log = logging.getLogger("titus.store.cassandra")

# Rows per page of the leader's full-table scans.
SCAN_PAGE_SIZE = 5000

TRANSIENT = (
    WriteTimeout,
    ReadTimeout,
    Unavailable,
    OperationTimedOut,
    NoHostAvailable,
    ConnectionException,
    CoordinationFailure,
)

T = TypeVar("T")

#: One statement of a logged batch: a STATEMENTS name and its arguments. The name "change"
#: stands for a change feed entry, its arguments (kind, entity id, job id[, op]).
Item = tuple[str, Sequence[Any]]


class CassandraRefused(StoreRefused):
    """Cassandra refused a statement as invalid (e.g. "Batch too large"): retrying cannot
    help, and the caller gets what was refused and why."""


def connect(
    contact_points: Sequence[str],
    *,
    port: int,
    local_dc: str | None,
    username: str | None,
    password: str | None,
    consistency: int,
    request_timeout: float,
    connect_timeout: float,
) -> tuple[Cluster, Session]:
    """A connected cluster and session; `StoreUnavailable` when no contact point answers."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc)),
        # The store decides what is safe to retry; the driver must not guess.
        retry_policy=FallthroughRetryPolicy(),
        consistency_level=consistency,
        serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
        request_timeout=request_timeout,
    )
    auth = PlainTextAuthProvider(username=username, password=password or "") if username else None
    cluster = Cluster(
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
        # Come back quickly after a dropped connection, so the retries can land.
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.1, max_delay=30.0),
    )
    try:
        return cluster, cluster.connect()
    except NoHostAvailable as e:
        cluster.shutdown()
        count_error("cassandra", "connect")
        raise StoreUnavailable(
            f"cannot connect to Cassandra at {', '.join(contact_points)}:{port}: {e}"
        ) from e


class CassandraSession:
    """A driver session with the store's prepared statements and its rules for running
    them: what is retried, how batches carry change feed entries, how a lightweight
    transaction tells its own earlier success from a refusal."""

    def __init__(
        self,
        session: Session,
        *,
        retries: int,
        backoff_base: float,
        backoff_max: float,
        load_parallelism: int,
    ):
        self.session = session
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.load_parallelism = load_parallelism
        self.ps: dict[str, PreparedStatement] = {}
        self._operations: dict[str, Operation] = {}
        self._seq = SequenceClock()

    def write_timestamp(self) -> int:
        """A write timestamp from the client's generator, the one the driver stamps every
        write with (microseconds, increasing): for a write that must be older than what
        others write after this moment (see requests.py move_task)."""
        return int(self.session.cluster.timestamp_generator())

    def prepare(self, statements: Mapping[str, str]) -> None:
        """Prepare every statement (after the keyspace exists and is in use)."""
        self.ps = {name: self.session.prepare(cql) for name, cql in statements.items()}
        self._operations = {
            name: "read" if cql.lstrip().upper().startswith("SELECT") else "write"
            for name, cql in statements.items()
        }

    # ---- retries --------------------------------------------------------------------------
    def retrying(self, what: str, fn: Callable[[], T], operation: Operation = "write") -> T:
        """Run an idempotent operation, retrying transient failures with backoff and jitter.

        Every driver failure a caller sees becomes a store error here, so here it is
        counted (`titus_store_errors_total`), as a read or a write (`operation`)."""
        attempt = 0
        while True:
            try:
                return fn()
            except InvalidRequest as e:
                # Not transient: the same statement would be refused again.
                count_error("cassandra", operation)
                raise CassandraRefused(f"Cassandra refused to {what}: {e}") from e
            except TRANSIENT as e:
                attempt += 1
                if attempt > self.retries:
                    count_error("cassandra", operation)
                    raise StoreUnavailable(
                        f"Cassandra could not {what} after {attempt} attempts: "
                        f"{type(e).__name__}: {e}"
                    ) from e
                delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)
                log.warning("cassandra: %s failed (%s), retry %d in %.2fs", what, e, attempt, delay)
                time.sleep(delay)

    # ---- plain statements -----------------------------------------------------------------
    def operation(self, name: str) -> Operation:
        """Whether a prepared statement reads or writes, for the error count."""
        return self._operations[name]

    def execute(self, name: str, args: Sequence[Any], what: str) -> list[Any]:
        return self.retrying(
            what, lambda: list(self.session.execute(self.ps[name], args)), self.operation(name)
        )

    def serial_read(self, name: str, args: Sequence[Any], what: str) -> list[Any]:
        """A read at LOCAL_SERIAL: sees any compare-and-set that was accepted, even one
        still being committed."""
        bound = self.ps[name].bind(args)
        bound.consistency_level = ConsistencyLevel.LOCAL_SERIAL
        return self.retrying(what, lambda: list(self.session.execute(bound)), "read")

    def concurrent(self, name: str, args: Sequence[Sequence[Any]], what: str) -> list[Any]:
        """One statement with many argument tuples, `load_parallelism` in flight at a time:
        the rows of all of them, in the order of `args`. Retried as a whole (reads and
        fixed-value deletes are safe to repeat)."""
        if not args:
            return []

        def run() -> list[Any]:
            results = execute_concurrent_with_args(
                self.session,
                self.ps[name],
                args,
                concurrency=self.load_parallelism,
                raise_on_first_error=True,
            )
            return [row for _, rows in results for row in rows]

        return self.retrying(what, run, self.operation(name))

    def values(self, name: str, ids: Sequence[str], what: str) -> list[str]:
        """Point reads of many documents."""
        return [r.value for r in self.concurrent(name, [(i,) for i in ids], what)]

    def scan(self, name: str, what: str) -> list[Any]:
        """Every row of a whole table, `SCAN_PAGE_SIZE` rows a page.

        The active tables hold only what is active, so reading them whole is the leader's
        start-up in a few hundred round trips, not one read per task. A scan that fails
        part-way is read again from the start (reads are safe to repeat).
        """
        stmt = self.ps[name].bind(())
        stmt.fetch_size = SCAN_PAGE_SIZE
        return self.retrying(
            f"read the active {what}", lambda: list(self.session.execute(stmt)), "read"
        )

    # ---- batches and the change feed entries they carry ------------------------------------
    def batch(self, what: str, items: Iterable[Item]) -> None:
        """One logged batch: all of it is applied or none; fixed values make it repeatable.

        An item named "change" is a change feed entry (kind, entity id, job id, op), one
        named "dirty" a dirty mark (job id); each gets a new sequence number on each
        attempt, so an attempt that did land and its retry leave two entries (harmless:
        readers fetch the entity), never a late one.
        """
        fixed = list(items)

        def run() -> None:
            batch = BatchStatement(batch_type=BatchType.LOGGED)
            for name, args in fixed:
                if name == "change":
                    batch.add(self.ps["change_insert"], self._change_args(*args))
                elif name == "dirty":
                    batch.add(self.ps["dirty_mark"], self._dirty_args(*args))
                else:
                    batch.add(self.ps[name], args)
            self.session.execute(batch)

        self.retrying(what, run)

    def _change_args(self, kind: str, entity_id: str, job_id: str, op: str = "put") -> tuple:
        seq = self._seq.next()
        return (feed_bucket(seq), seq, kind, entity_id, op, job_id)

    def _dirty_args(self, job_id: str) -> tuple:
        seq = self._seq.next()
        return (feed_bucket(seq), seq, job_id)

    def mark_dirty(self, job_id: str) -> None:
        self.retrying(
            f"mark job {job_id}",
            lambda: self.session.execute(self.ps["dirty_mark"], self._dirty_args(job_id)),
        )

    def rows_after(self, name: str, lower: int, upper_bucket: int, what: str) -> Iterable[Any]:
        """Rows of a minute-bucketed, TTL'd table (the change feed, the dirty marks) with
        seq > `lower`, oldest first, bucket by bucket, paged; never further back than the
        TTL, so the partitions read hold live rows only (no tombstones to wade through)."""
        floor = max(lower, now_seq() - FEED_TTL_SECONDS * 1000 * SEQ_PER_MS)
        for bucket in range(feed_bucket(floor), upper_bucket + 1):
            stmt = self.ps[name].bind((bucket, lower))
            stmt.fetch_size = 1000
            yield from self.retrying(what, lambda s=stmt: self.session.execute(s), "read")  # type: ignore[misc]

    def changed(self, kind: str, entity_id: str, job_id: str, op: str = "put") -> None:
        """A change entry for a write that could not share a batch (a lightweight
        transaction). Written after the write: a reader that saw the entry sees the write."""
        try:
            self.retrying(
                f"record a change of {kind} {entity_id}",
                lambda: self.session.execute(
                    self.ps["change_insert"], self._change_args(kind, entity_id, job_id, op)
                ),
            )
        except StoreUnavailable:
            # The write itself is done; failing it now would make the caller redo it. API
            # views miss this change until the entity changes again or they reload.
            log.error(
                "cassandra: %s %s written, but its change feed entry is lost", kind, entity_id
            )

    # ---- lightweight transactions ---------------------------------------------------------
    def lwt(self, name: str, args: Sequence[Any], what: str) -> tuple[bool, Any]:
        """A lightweight transaction: (applied, the current row when not applied)."""
        applied, row, _ = self.lwt_attempts(name, args, what)
        return applied, row

    def lwt_attempts(self, name: str, args: Sequence[Any], what: str) -> tuple[bool, Any, int]:
        """`lwt` and how many attempts it took: a refusal after a retry may be the answer
        to our own earlier attempt, which did apply before it timed out."""
        attempts = 0

        def run() -> list[Any]:
            nonlocal attempts
            attempts += 1
            return list(self.session.execute(self.ps[name], args))

        row = self.retrying(what, run)[0]
        return bool(row[0]), row, attempts

    def update_versioned(
        self,
        kind: str,
        entity_id: str,
        job_id: str,
        version: int,
        value: str,
        sets: Sequence[Any],
        *,
        epoch: int | None = None,
        statement: str = "",
    ) -> None:
        """`UPDATE ... IF version = <version>` of a job or task, then its change entry.

        `sets` are the values of the SET clause of `<kind>_update` and then the entity's
        key. With `epoch` (a leader's write) the row's fence is part of the condition and
        raised by the write: `IF version = ? AND fence <= <epoch>`, so the epoch check and
        the write are one compare-and-set, and a leader deposed between reading the epoch
        and writing cannot land a write on a row its successor wrote. A row never written
        with a fence (null: older than the column) is taken with `IF fence = null`.

        A refusal that shows the new version and our value is our own earlier attempt,
        which applied before it timed out. `statement` names another family of update
        statements than `<kind>_update...` (a task move's, which writes one more column)."""
        what = f"update {kind} {entity_id}"
        name = statement or kind
        *values, key = sets
        if epoch is None:
            applied, row = self.lwt(f"{name}_update", (*values, key, version), what)
        else:
            args = (*values, epoch, key, version)
            applied, row = self.lwt(f"{name}_update_fenced", (*args, epoch), what)
            if not applied and len(row) > 1 and row.fence is None and row.version == version:
                applied, row = self.lwt(f"{name}_update_fenced_first", args, what)
        if not applied:
            ours = (
                len(row) > 1
                and row.version == version + 1
                and self._active_value(kind, entity_id) == value
            )
            if not ours:
                fence = getattr(row, "fence", None) if len(row) > 1 else None
                if epoch is not None and fence is not None and fence > epoch:
                    raise StaleEpoch(
                        f"{kind} {entity_id} was written by leader epoch {fence}; "
                        f"epoch {epoch} no longer leads"
                    )
                raise Conflict(f"{kind} {entity_id} changed since version {version}")
        self.changed(kind, entity_id, job_id)

    def _active_value(self, kind: str, entity_id: str) -> str | None:
        """The stored document of an active job or task (`kind`), if there is one."""
        rows = self.execute(f"{kind}_get", (entity_id,), f"read {kind} {entity_id}")
        return str(rows[0].value) if rows else None
