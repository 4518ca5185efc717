"""The archive's retention: finished jobs and tasks are kept `archive_ttl_sec` (as long as
Cassandra's archive TTL keeps them), then pruned, so a long-lived embedded store does not
grow without bound with work that ended long ago."""

from __future__ import annotations

import sqlite3

from titus.model.job import now_ms
from titus.store.sqlite.connection import SqliteBase
from titus.store.sqlite.schema import ARCHIVE_TTL_SEC, PRUNE_EVERY


class ArchivePart(SqliteBase):
    archive_ttl_sec: float = ARCHIVE_TTL_SEC
    _archive_writes: int = 0

    def _archived(self, db: sqlite3.Connection) -> None:
        """Count an archive write (inside its transaction); prune now and then."""
        self._archive_writes += 1
        if self._archive_writes % PRUNE_EVERY == 1:
            self._prune(db)

    def _prune(self, db: sqlite3.Connection) -> None:
        horizon = now_ms() - int(self.archive_ttl_sec * 1000)
        for table in ("archived_jobs", "archived_tasks"):
            db.execute(f"DELETE FROM {table} WHERE archived_at < ?", (horizon,))

    def prune_archive(self) -> None:
        """Drop what was archived longer ago than the TTL (also done as archives happen)."""
        with self._tx() as db:
            self._prune(db)
