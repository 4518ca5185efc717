"""Idempotency keys: `INSERT ... IF NOT EXISTS USING TTL`, so a key expires on its own and
two racing creates with one key agree on a single job."""

from __future__ import annotations

import math
import time

from titus.store.cassandra.part import Part
from titus.store.records import IdempotencyRecord


class IdempotencyPart(Part):
    """The Idempotency role (titus/store/roles.py)."""

    def claim_idempotency_key(
        self, key: str, fingerprint: str, job_id: str, ttl_sec: float
    ) -> IdempotencyRecord:
        """INSERT IF NOT EXISTS with a TTL: the winner's row, or the row that holds the key."""
        ttl = max(1, math.ceil(ttl_sec))
        expires_ms = int((time.time() + ttl_sec) * 1000)
        applied, row = self._db.lwt(
            "idem_claim", (key, fingerprint, job_id, expires_ms, ttl), "claim an idempotency key"
        )
        if applied:
            return IdempotencyRecord(fingerprint, job_id, expires_ms / 1000)
        return IdempotencyRecord(str(row.fingerprint), str(row.job_id), int(row.expires_at) / 1000)

    def release_idempotency_key(self, key: str, job_id: str) -> None:
        self._db.lwt("idem_release", (key, job_id), "release an idempotency key")
