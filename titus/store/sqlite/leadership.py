"""Leadership fencing (the `epoch` row of `meta`) and the other small settings in `meta`."""

from __future__ import annotations

from titus.store.sqlite.connection import SqliteBase


class LeadershipPart(SqliteBase):
    """The Leadership role (titus/store/roles.py)."""

    def claim_epoch(self, epoch: int) -> None:
        with self._tx(epoch) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (str(epoch),))

    def current_epoch(self) -> int:
        rows = self._read("SELECT value FROM meta WHERE key='epoch'")
        return int(str(rows[0][0])) if rows else 0

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key=?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str, *, epoch: int | None = None) -> None:
        with self._tx(epoch) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
