"""The production JobStore: Cassandra through cassandra-driver, in the shape Titus used.

Each job and task is one JSON document in a `value text` column. Listing goes through small
index tables: `active_job_ids` spread over a fixed number of buckets (chosen when the
keyspace is created and kept in `meta`, so no partition grows without bound) and
`active_task_ids ((job_id), task_id)`. Finished jobs and tasks move to `archived_*` tables
that expire after 30 days (`default_time_to_live`).

Consistency rules, and why (each told in full where it is kept):
- A job and its index rows change together in one logged batch at LOCAL_QUORUM: Cassandra
  applies all of a logged batch or (if the batch log was never written) none of it.
  Concurrent creates share one such batch, answered only once it is written (groups.py).
- Job group names are unique among active jobs through a lightweight transaction (jobs.py).
- Versions: updates are `UPDATE ... IF version = ?`, so a writer that read an old version is
  refused (`Conflict`) instead of overwriting a newer decision (session.py).
- Leadership fencing: the `epoch` row only moves forward; each job, task and meta row
  carries the epoch of the leader that last wrote it (`fence`), and a leader's update is
  `IF version = ? AND fence <= <its epoch>`, so the check and the write are one
  compare-and-set; a write that carries an older epoch is refused with `StaleEpoch`
  (fencing.py).
- A task move spans partitions: it is decided by the task's own fenced compare-and-set,
  which carries the rest of the move beside the task; that rest is written at the move's
  own timestamp by whoever finds it, so repeats agree and a late one loses to newer
  writes (moves.py).
- The change feed is a table partitioned by minute with a one-hour TTL, read with a
  trailing window so a late entry is still delivered, once (sequence.py, feed.py).
- A new leader reads the active tables whole, as paged full-table scans (tasks.py).
- Transient failures are retried with backoff and jitter when the statement is safe to
  repeat; then the caller gets `StoreUnavailable` with what was being done (session.py).

The modules: schema.py and statements.py (tables, migrations, CQL), session.py (connecting,
retries, consistency, error mapping), one module per role of titus/store/roles.py (jobs.py
and tasks.py, requests.py, fencing.py, cluster.py, feed.py, idempotency.py, attributes.py,
results.py), each a mixin over part.py that store.py composes into `CassandraJobStore`;
groups.py (creates sent together); moves.py (the rest of a decided task move).
"""

from __future__ import annotations

from titus.store.cassandra.session import CassandraRefused
from titus.store.cassandra.store import CassandraJobStore, parse_replication
from titus.store.errors import StoreError

__all__ = ["CassandraJobStore", "CassandraRefused", "StoreError", "parse_replication"]
