"""Disruption budgets, evaluated: how many of a job's tasks the platform may take down now.

Pure (no I/O, time passed in) so that the master, which makes voluntary kills, and the API,
which answers eviction quotas, apply one rule. A user's own kill never asks.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from titus.model.health import UNHEALTHY
from titus.model.job import HEALTH_CHECK_PROVIDER, DisruptionBudget, Job, Task, TimeWindow
from titus.model.names import TaskContextKey
from titus.model.states import TaskState

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Quota:
    """Tasks that may be taken down now (0 when none), and why not when none may."""

    allowed: int
    reason: str = ""


def in_windows(windows: Sequence[TimeWindow], now_ms: int) -> bool:
    """True when `now_ms` falls in one of the windows (no windows: always). A window with
    no days is every day; one with no hourly windows is the whole day."""
    if not windows:
        return True
    for window in windows:
        zone = ZoneInfo(window.timeZone)  # validation refuses a zone it does not know
        local = datetime.fromtimestamp(now_ms / 1000, zone)
        days = {d.lower() for d in window.days}
        if days and local.strftime("%A").lower() not in days:
            continue
        hours = window.hourlyTimeWindows
        if not hours or any(h.startHour <= local.hour < h.endHour for h in hours):
            return True
    return False


def quota(
    budget: DisruptionBudget | None,
    desired: int,
    healthy: int,
    disrupted_at: Sequence[int],
    now_ms: int,
) -> Quota:
    """Tasks of a job that may be disrupted now. `healthy`: its running healthy tasks;
    `disrupted_at`: when the platform disrupted its tasks before (ms). A job without a
    budget may have one task down at a time."""
    unavailable = max(0, desired - healthy)
    if budget is None:
        return _allow(1 - unavailable, f"{unavailable} task(s) already unavailable")
    if not in_windows(budget.timeWindows, now_ms):
        return Quota(0, "outside the budget's time windows")
    if budget.availabilityPercentageLimit is not None:
        pct = budget.availabilityPercentageLimit.percentageOfHealthyContainers
        keep = math.ceil(desired * pct / 100)
        by_policy = _allow(healthy - keep, f"{pct:g}% of {desired} tasks must stay healthy")
    elif budget.unhealthyTasksLimit is not None:
        limit = budget.unhealthyTasksLimit.limitOfUnhealthyContainers
        by_policy = _allow(limit - unavailable, f"at most {limit} task(s) may be unavailable")
    else:  # relocationLimit and selfManaged bound per task, not per job
        by_policy = Quota(max(0, healthy))
    by_rate = _rate(budget, desired, disrupted_at, now_ms)
    return by_policy if by_policy.allowed <= by_rate.allowed else by_rate


def _rate(budget: DisruptionBudget, desired: int, at: Sequence[int], now_ms: int) -> Quota:
    if budget.ratePerInterval is not None:
        r = budget.ratePerInterval
        return _within(r.limitPerInterval, r.intervalMs, at, now_ms)
    if budget.ratePercentagePerHour is not None:
        pct = budget.ratePercentagePerHour.maxPercentageOfContainersRelocatedInHour
        return _within(max(1, math.floor(desired * pct / 100)), HOUR_MS, at, now_ms)
    if budget.ratePercentagePerInterval is not None:
        ri = budget.ratePercentagePerInterval
        limit = max(1, math.floor(desired * ri.percentageLimitPerInterval / 100))
        return _within(limit, ri.intervalMs, at, now_ms)
    return Quota(desired)


def _within(limit: int, interval_ms: int, at: Sequence[int], now_ms: int) -> Quota:
    recent = sum(1 for t in at if now_ms - t < interval_ms)
    return _allow(limit - recent, f"{recent} of {limit} disruptions per {interval_ms} ms used")


def _allow(count: int, reason: str) -> Quota:
    return Quota(count) if count > 0 else Quota(0, reason)


# ---- availability: which tasks serve ------------------------------------------------------


def is_unhealthy(task: Task) -> bool:
    return task.taskContext.get(TaskContextKey.HEALTH) == UNHEALTHY


def counts_health(job: Job) -> bool:
    """Whether the job's budget names the container health check as a health provider:
    then an unhealthy task is an unavailable one for every voluntary disruption."""
    budget = job.jobDescriptor.disruptionBudget
    providers = budget.containerHealthProviders if budget is not None else []
    return any(p.name == HEALTH_CHECK_PROVIDER for p in providers)


def available(tasks: Iterable[Task], by_health: bool = True) -> int:
    """Tasks that serve: running (and, `by_health`, not reported unhealthy)."""
    return sum(t.state == TaskState.STARTED and not (by_health and is_unhealthy(t)) for t in tasks)


def job_quota(job: Job, tasks: Iterable[Task], history: Sequence[int], now_ms: int) -> Quota:
    """How many of the job's tasks the platform (or an eviction) may take down now."""
    d = job.jobDescriptor
    serving = available(tasks, counts_health(job))
    return quota(d.disruptionBudget, d.task_demand, serving, history, now_ms)


# ---- the record of disruptions, kept in the store across failovers -----------------------
# The budgets' rates count the disruptions the platform made. Kept in the leader's memory
# only, a failover would forget them and let a new leader disrupt a job again at once; so
# the leadership writes the record (one meta value, fenced by its epoch) whenever it
# changes, a new leader reads it back, and the API reads it to answer eviction quotas. It
# is bounded (a day, MAX_PER_JOB times per job); an unreadable record starts afresh.

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
