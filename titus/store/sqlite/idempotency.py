"""Idempotency keys with an expiry; expired keys are dropped as new ones are claimed."""

from __future__ import annotations

import time

from titus.store.records import IdempotencyRecord
from titus.store.sqlite.connection import SqliteBase


class IdempotencyPart(SqliteBase):
    """The Idempotency role (titus/store/roles.py)."""

    def claim_idempotency_key(
        self, key: str, fingerprint: str, job_id: str, ttl_sec: float
    ) -> IdempotencyRecord:
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT fingerprint, job_id, expires_at FROM idempotency_keys WHERE key=?", (key,)
            ).fetchone()
            if row is not None and float(row[2]) > now:
                return IdempotencyRecord(str(row[0]), str(row[1]), float(row[2]))
            record = IdempotencyRecord(fingerprint, job_id, now + ttl_sec)
            db.execute(
                "INSERT OR REPLACE INTO idempotency_keys VALUES (?, ?, ?, ?)",
                (key, fingerprint, job_id, record.expires_at),
            )
            # expired keys go on the way (Cassandra's TTL does this by itself)
            db.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (now,))
        return record

    def release_idempotency_key(self, key: str, job_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM idempotency_keys WHERE key=? AND job_id=?", (key, job_id))
