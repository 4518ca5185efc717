"""Scaling policies: one row per policy with its version (`UPDATE ... IF version = ?`),
and an index partition per job. Listing every policy is a whole-table read, as a
leader's start-up is: policies are a few per service job at most."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from titus.model.autoscaling import PolicyRecord
from titus.store.cassandra.part import Part
from titus.store.errors import Conflict

log = logging.getLogger("titus.store.cassandra")


def _decoded(rows: Any) -> list[PolicyRecord]:
    out = []
    for row in rows:
        try:
            out.append(PolicyRecord.decode(str(row.value), int(row.version)))
        except ValidationError as exc:
            log.error("scaling policy %s cannot be read, left out: %s", row.policy_id, exc)
    return out


class ScalingPoliciesPart(Part):
    """The ScalingPolicies role (titus/store/roles.py)."""

    def create_scaling_policy(self, record: PolicyRecord) -> PolicyRecord:
        stored = record.model_copy(update={"version": 1})
        value = stored.encode()
        what = f"create scaling policy {record.id}"
        applied, row, attempts = self._db.lwt_attempts(
            "sp_insert", (stored.id, stored.jobId, 1, value), what
        )
        # Refused after a retry with our own value: the attempt that timed out did apply.
        if not applied and not (attempts > 1 and row.value == value):
            raise Conflict(f"scaling policy {record.id} exists")
        self._db.execute("sp_id_insert", (stored.jobId, stored.id), what)
        return stored

    def update_scaling_policy(
        self, record: PolicyRecord, *, epoch: int | None = None
    ) -> PolicyRecord:
        self._fence.check(epoch)
        stored = record.model_copy(update={"version": record.version + 1})
        value = stored.encode()
        applied, row, attempts = self._db.lwt_attempts(
            "sp_update",
            (stored.version, value, record.id, record.version),
            f"update scaling policy {record.id}",
        )
        ours = attempts > 1 and len(row) > 1 and row.version == stored.version
        if not applied and not (ours and self._value(record.id) == value):
            raise Conflict(f"scaling policy {record.id} changed since version {record.version}")
        return stored

    def _value(self, policy_id: str) -> str | None:
        rows = self._db.execute("sp_get", (policy_id,), f"read scaling policy {policy_id}")
        return str(rows[0].value) if rows else None

    def get_scaling_policy(self, policy_id: str) -> PolicyRecord | None:
        rows = self._db.execute("sp_get", (policy_id,), f"read scaling policy {policy_id}")
        found = _decoded(rows)
        return found[0] if found else None

    def list_scaling_policies(self, job_id: str | None = None) -> list[PolicyRecord]:
        if job_id is None:
            rows = self._db.execute("sp_scan", (), "read scaling policies")
            return sorted(_decoded(rows), key=lambda r: r.id)
        ids = self._db.execute("sp_ids", (job_id,), f"read scaling policies of job {job_id}")
        out: list[PolicyRecord] = []
        for row in ids:
            found = self.get_scaling_policy(str(row.policy_id))
            if found is not None and found.jobId == job_id:
                out.append(found)
        return sorted(out, key=lambda r: r.id)

    def delete_scaling_policy(self, policy_id: str, *, epoch: int | None = None) -> None:
        self._fence.check(epoch)
        what = f"delete scaling policy {policy_id}"
        rows = self._db.execute("sp_get", (policy_id,), what)
        self._db.execute("sp_delete", (policy_id,), what)
        if rows:
            self._db.execute("sp_id_delete", (str(rows[0].job_id), policy_id), what)
