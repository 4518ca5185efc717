"""When the platform disrupted each job's tasks, kept in the store across failovers.

The budgets' rates (so many per interval, a share per hour) count the disruptions the
platform made. Kept in the leader's memory only, a failover would forget them and let a
new leader disrupt a job again at once; so the leadership writes the record (one meta
value, fenced by its epoch) whenever it changes, and a new leader reads it back. The
record is bounded: a day's history, at most MAX_PER_JOB times per job. A record that
cannot be read is logged and started afresh, never a reason not to lead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

DISRUPTIONS_META = "disruptions"
HISTORY_MS = 86_400_000
MAX_PER_JOB = 1000


def recent(disrupted: dict[str, list[int]], job_id: str, now_ms: int) -> list[int]:
    """The job's disruptions within the budgets' memory (pruned in place)."""
    history = disrupted.setdefault(job_id, [])
    history[:] = [t for t in history if now_ms - t < HISTORY_MS][-MAX_PER_JOB:]
    return history


def encode(disrupted: dict[str, list[int]], now_ms: int) -> str:
    kept = {
        job_id: sorted(t for t in times if now_ms - t < HISTORY_MS)[-MAX_PER_JOB:]
        for job_id, times in disrupted.items()
    }
    return json.dumps({j: t for j, t in sorted(kept.items()) if t}, separators=(",", ":"))


def decode(text: str | None, jobs: Iterable[str]) -> dict[str, list[int]]:
    """The record of the jobs still active; {} for none or an unreadable one."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
        active = set(jobs)
        return {
            str(job_id): [int(t) for t in times][-MAX_PER_JOB:]
            for job_id, times in dict(raw).items()
            if job_id in active and isinstance(times, list)
        }
    except (ValueError, TypeError) as exc:
        log.warning("the stored disruption record is unreadable, starting afresh: %s", exc)
        return {}
