"""The validation catalogue (tests/support/catalogue.py): each rule with a request that just
breaks it and one that just passes, so a bound that drifts by one is caught on either side."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.catalogue import CATALOGUE, GOOD, Edit
from titus.model.validation import Bounds, InvalidRequest, parse_job_descriptor


def errors_of(body: dict[str, Any], bounds: Bounds = Bounds()) -> list[str]:
    try:
        parse_job_descriptor(body, bounds)
    except InvalidRequest as exc:
        return [e.path for e in exc.errors]
    return []


@pytest.mark.parametrize(
    ("field", "breaks", "passes"),
    [pytest.param(f, b, p, id=rule) for rule, f, b, p in CATALOGUE],
)
def test_rule_breaks_and_just_passes(field: str, breaks: Edit, passes: Edit) -> None:
    bad = copy.deepcopy(GOOD)
    breaks(bad)
    assert field in errors_of(bad)
    good = copy.deepcopy(GOOD)
    passes(good)
    assert errors_of(good) == []


def test_numeric_strings_are_accepted_as_64_bit_integers() -> None:
    body = copy.deepcopy(GOOD)
    body["batch"]["retryPolicy"] = {"delayed": {"initialDelayMs": "10", "delayMs": "1000"}}
    d = parse_job_descriptor(body)
    assert d.batch is not None and d.batch.retryPolicy.delayed is not None
    assert d.batch.retryPolicy.delayed.delayMs == 1000


def test_never_more_than_the_largest_host_offers() -> None:
    bounds = Bounds(host={"cpu": 4, "memoryMB": 8192, "diskMB": 50000, "networkMbps": 1000})
    body = copy.deepcopy(GOOD)
    body["container"]["resources"]["cpu"] = 5
    assert "container.resources.cpu" in errors_of(body, bounds)
    body["container"]["resources"]["cpu"] = 4
    assert errors_of(body, bounds) == []


def test_bounds_are_configurable() -> None:
    body = copy.deepcopy(GOOD)
    body["container"]["resources"]["memoryMB"] = 2_000_000
    assert "container.resources.memoryMB" in errors_of(body)
    assert errors_of(body, Bounds(memory_mb_max=2_000_000)) == []
    body["container"]["resources"]["memoryMB"] = 100
    raised = parse_job_descriptor(body, Bounds(memory_mb_min=128))
    assert raised.container.resources.memoryMB == 128
