"""The embedded JobStore: one SQLite file in WAL mode.

Tables mirror the Cassandra layout (one JSON document per entity, small index tables) so
both backends answer the same access patterns. Each write is one transaction, which is
what a Cassandra logged batch gives for a job and its index rows. With synchronous=FULL a
write that returned is on disk: a kill -9 (or a power cut) loses nothing acknowledged.

The modules: schema.py (tables, upgrades of older files), connection.py (connections,
transactions, the epoch fence, change feed entries), and one module per role of
titus/store/roles.py, each a mixin over connection.py that store.py composes.
"""

from __future__ import annotations

from titus.store.sqlite.store import SqliteJobStore

__all__ = ["SqliteJobStore"]
