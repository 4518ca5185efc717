"""Stored records that cannot be read, set aside instead of failing whatever reads them.

A document written by an older version, edited by hand, or poisoned by a bug that let bad
input through once, must not take the platform down: a listing that meets it, a create
that lists, a new leader loading the active state. Each backend decodes job and task
documents through `decode_job` / `decode_task`; a document that does not parse is logged,
counted, kept here (what, which id, why, since when) for operators to see (the API's
`/api/v3/quarantine` and `/health`), and left out of the answer as if it were not there.
The record itself stays in the store untouched, for an operator to repair or remove; once
a read of it succeeds again (repaired), it leaves the quarantine.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from prometheus_client import Gauge
from pydantic import ValidationError

from titus.model.job import Job, Task

log = logging.getLogger("titus.store")

QUARANTINED = Gauge(
    "titus_store_quarantined_records",
    "Stored job and task records this process could not read and left out",
    ["kind"],
)

#: Records remembered at most; more are still left out and counted, not listed.
MAX_ENTRIES = 10_000
#: How much of a parse error is kept: enough to find the field.
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class QuarantinedRecord:
    kind: str  # "job" | "task"
    id: str
    error: str
    since: float  # wall clock, seconds

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.id, "error": self.error, "since": self.since}


class Quarantine:
    """The records this process found unreadable (thread-safe, bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], QuarantinedRecord] = {}
        #: Records an operator set aside (moved to the archive), newest last: a read that
        #: raced with the move and met the record still active does not bring it back.
        self._set_aside: OrderedDict[tuple[str, str], None] = OrderedDict()

    def add(self, kind: str, ident: str, error: str) -> None:
        key = (kind, ident)
        with self._lock:
            if key in self._records or key in self._set_aside:
                return
            if len(self._records) < MAX_ENTRIES:
                self._records[key] = QuarantinedRecord(kind, ident, error, time.time())
                QUARANTINED.labels(kind).inc()
        log.error("stored %s %s cannot be read and is left out: %s", kind, ident, error)

    def release(self, kind: str, ident: str) -> None:
        """The record was read again successfully (repaired, or rewritten)."""
        if not self._records:  # the common case, on every read: no lock taken
            return
        with self._lock:
            if self._records.pop((kind, ident), None) is not None:
                QUARANTINED.labels(kind).dec()

    def set_aside(self, kind: str, ident: str) -> None:
        """The record left the active tables for good: forget it, and ignore a late read
        of it that was under way while it moved."""
        with self._lock:
            if self._records.pop((kind, ident), None) is not None:
                QUARANTINED.labels(kind).dec()
            self._set_aside[(kind, ident)] = None
            while len(self._set_aside) > MAX_ENTRIES:
                self._set_aside.popitem(last=False)

    def records(self) -> list[QuarantinedRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: (r.kind, r.id))

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


#: This process's quarantine: every store of the process reports into it.
QUARANTINE = Quarantine()


def _ident(raw: str | bytes, fallback: str) -> str:
    if fallback:
        return fallback
    try:
        value = json.loads(raw)
        return str(value.get("id", "")) or "unknown" if isinstance(value, dict) else "unknown"
    except (ValueError, RecursionError):
        return "unknown"


def _error(exc: Exception) -> str:
    return str(exc).replace("\n", " ")[:MAX_ERROR_CHARS]


def decode_job(raw: str | bytes, ident: str = "") -> Job | None:
    """A job document, or None (quarantined) when it cannot be read."""
    try:
        job = Job.model_validate_json(raw)
    except (ValidationError, ValueError, RecursionError) as exc:
        QUARANTINE.add("job", _ident(raw, ident), _error(exc))
        return None
    QUARANTINE.release("job", job.id)
    return job


def decode_task(raw: str | bytes, ident: str = "") -> Task | None:
    """A task document, or None (quarantined) when it cannot be read."""
    try:
        task = Task.model_validate_json(raw)
    except (ValidationError, ValueError, RecursionError) as exc:
        QUARANTINE.add("task", _ident(raw, ident), _error(exc))
        return None
    QUARANTINE.release("task", task.id)
    return task


def decode_jobs(raws: list[str] | list[bytes]) -> list[Job]:
    return [job for raw in raws if (job := decode_job(raw)) is not None]


def decode_tasks(raws: list[str] | list[bytes]) -> list[Task]:
    return [task for raw in raws if (task := decode_task(raw)) is not None]
