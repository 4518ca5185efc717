"""Scaling policies: one row per policy with its version, indexed by job."""

from __future__ import annotations

import logging
import sqlite3

from pydantic import ValidationError

from titus.model.autoscaling import PolicyRecord
from titus.store.errors import Conflict
from titus.store.sqlite.connection import SqliteBase

log = logging.getLogger("titus.store")


def _decoded(rows: list[tuple[object, ...]]) -> list[PolicyRecord]:
    out = []
    for policy_id, version, value in rows:
        try:
            out.append(PolicyRecord.decode(str(value), int(str(version))))
        except ValidationError as exc:
            log.error("scaling policy %s cannot be read, left out: %s", policy_id, exc)
    return out


class ScalingPoliciesPart(SqliteBase):
    """The ScalingPolicies role (titus/store/roles.py)."""

    def create_scaling_policy(self, record: PolicyRecord) -> PolicyRecord:
        stored = record.model_copy(update={"version": 1})
        with self._tx() as db:
            try:
                db.execute(
                    "INSERT INTO scaling_policies VALUES (?, ?, ?, ?)",
                    (stored.id, stored.jobId, 1, stored.encode()),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"scaling policy {record.id} exists") from None
        return stored

    def update_scaling_policy(
        self, record: PolicyRecord, *, epoch: int | None = None
    ) -> PolicyRecord:
        stored = record.model_copy(update={"version": record.version + 1})
        with self._tx(epoch) as db:
            cur = db.execute(
                "UPDATE scaling_policies SET version=?, value=? WHERE policy_id=? AND version=?",
                (stored.version, stored.encode(), record.id, record.version),
            )
            if cur.rowcount != 1:
                raise Conflict(f"scaling policy {record.id} changed since version {record.version}")
        return stored

    def get_scaling_policy(self, policy_id: str) -> PolicyRecord | None:
        rows = self._read(
            "SELECT policy_id, version, value FROM scaling_policies WHERE policy_id=?",
            (policy_id,),
        )
        found = _decoded(rows)
        return found[0] if found else None

    def list_scaling_policies(self, job_id: str | None = None) -> list[PolicyRecord]:
        if job_id is None:
            rows = self._read(
                "SELECT policy_id, version, value FROM scaling_policies ORDER BY policy_id"
            )
        else:
            rows = self._read(
                "SELECT policy_id, version, value FROM scaling_policies WHERE job_id=? "
                "ORDER BY policy_id",
                (job_id,),
            )
        return _decoded(rows)

    def delete_scaling_policy(self, policy_id: str, *, epoch: int | None = None) -> None:
        with self._tx(epoch) as db:
            db.execute("DELETE FROM scaling_policies WHERE policy_id=?", (policy_id,))
