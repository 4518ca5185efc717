"""The disruption budget evaluator: how many of a job's tasks the platform may take down."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from titus.model.disruption import HOUR_MS, quota
from titus.model.job import DisruptionBudget
from titus.model.validation import check_disruption_budget


def budget(**fields: Any) -> DisruptionBudget:
    return DisruptionBudget.model_validate(fields)


# a Wednesday, 10:00 UTC
NOW = int(datetime(2026, 12, 2, 10, 0, tzinfo=UTC).timestamp() * 1000)


def test_without_a_budget_one_task_is_down_at_a_time() -> None:
    assert quota(None, 10, 10, [], NOW).allowed == 1
    assert quota(None, 10, 9, [], NOW).allowed == 0


def test_at_most_two_unavailable_of_ten() -> None:
    b = budget(unhealthyTasksLimit={"limitOfUnhealthyContainers": 2}, rateUnlimited={})
    assert [quota(b, 10, healthy, [], NOW).allowed for healthy in (10, 9, 8, 7)] == [2, 1, 0, 0]
    assert "at most 2" in quota(b, 10, 8, [], NOW).reason


def test_availability_percentage_keeps_that_share_healthy() -> None:
    b = budget(availabilityPercentageLimit={"percentageOfHealthyContainers": 80}, rateUnlimited={})
    assert quota(b, 10, 10, [], NOW).allowed == 2
    assert quota(b, 10, 8, [], NOW).allowed == 0


def test_rates_count_recent_disruptions_only() -> None:
    b = budget(
        relocationLimit={"limit": 3},
        ratePerInterval={"intervalMs": 60_000, "limitPerInterval": 2},
    )
    assert quota(b, 10, 10, [NOW - 1000], NOW).allowed == 1
    assert quota(b, 10, 10, [NOW - 1000, NOW - 2000], NOW).allowed == 0
    assert quota(b, 10, 10, [NOW - 61_000, NOW - 62_000], NOW).allowed == 2
    hourly = budget(
        relocationLimit={"limit": 3},
        ratePercentagePerHour={"maxPercentageOfContainersRelocatedInHour": 20},
    )
    assert quota(hourly, 10, 10, [NOW - HOUR_MS + 1], NOW).allowed == 1
    assert quota(hourly, 10, 10, [NOW - HOUR_MS], NOW).allowed == 2


def test_time_windows_in_the_windows_zone() -> None:
    windows = [
        {
            "days": ["Wednesday"],
            "hourlyTimeWindows": [{"startHour": 9, "endHour": 11}],
            "timeZone": "UTC",
        }
    ]
    b = budget(
        unhealthyTasksLimit={"limitOfUnhealthyContainers": 2}, rateUnlimited={}, timeWindows=windows
    )
    assert quota(b, 10, 10, [], NOW).allowed == 2
    assert quota(b, 10, 10, [], NOW + 2 * HOUR_MS).reason == "outside the budget's time windows"
    assert quota(b, 10, 10, [], NOW + 24 * HOUR_MS).allowed == 0  # Thursday
    windows[0]["timeZone"] = "America/Los_Angeles"  # 02:00 there
    b = budget(
        unhealthyTasksLimit={"limitOfUnhealthyContainers": 2}, rateUnlimited={}, timeWindows=windows
    )
    assert quota(b, 10, 10, [], NOW).allowed == 0


def test_an_unknown_time_zone_is_refused_by_name() -> None:
    b = budget(
        unhealthyTasksLimit={"limitOfUnhealthyContainers": 2},
        rateUnlimited={},
        timeWindows=[{"days": ["Monday"], "timeZone": "Mars/Olympus"}],
    )
    [error] = check_disruption_budget(b, "disruptionBudget")
    assert error.path == "disruptionBudget.timeWindows[0].timeZone"
    assert "Mars/Olympus" in error.message
