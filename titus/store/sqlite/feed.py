"""Reading the change feed: an autoincrement table, so sequence numbers are the order of
commits and a reader never misses a late entry."""

from __future__ import annotations

from titus.store.records import Change, ChangeBatch
from titus.store.sqlite.connection import SqliteBase


class ChangeFeedPart(SqliteBase):
    """The ChangeFeed role (titus/store/roles.py)."""

    def changes_since(self, seq: int, limit: int = 1000) -> ChangeBatch:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            rows = conn.execute(
                "SELECT seq, kind, entity_id, job_id, op FROM changes WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
            first, last = conn.execute("SELECT min(seq), max(seq) FROM changes").fetchone()
        finally:
            conn.execute("COMMIT")
        changes = [Change(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]
        return ChangeBatch(changes, int(first or 0), int(last or 0))

    def last_change_seq(self) -> int:
        row = self._read("SELECT max(seq) FROM changes")
        return int(str(row[0][0] or 0))
