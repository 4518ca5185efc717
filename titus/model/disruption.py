"""Disruption budgets, evaluated: how many of a job's tasks the platform may take down now.

Pure (no I/O, time passed in) so that the master, which makes voluntary kills, and the API,
which answers eviction quotas, apply one rule. A user's own kill never asks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from titus.model.job import DisruptionBudget, TimeWindow

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
