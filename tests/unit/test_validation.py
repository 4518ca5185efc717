"""A bad job descriptor is refused with every problem named by its JSON path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from titus.model.validation import InvalidRequest, parse_job_descriptor

GOOD: dict[str, Any] = {
    "owner": {"teamEmail": "team@example.com"},
    "applicationName": "app",
    "container": {
        "image": {"name": "titus/busybox", "tag": "latest"},
        "resources": {"cpu": 1, "memoryMB": 512, "diskMB": 10000, "networkMbps": 128},
    },
    "batch": {"size": 1, "runtimeLimitSec": "3600"},
}


def broken(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = body
    for p in parents:
        node = node.setdefault(p, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return body


def paths(body: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidRequest) as exc:
        parse_job_descriptor(body)
    return [e.path for e in exc.value.errors]


def test_a_good_descriptor_passes_and_numeric_strings_are_numbers() -> None:
    d = parse_job_descriptor(GOOD)
    assert d.batch is not None and d.batch.runtimeLimitSec == 3600


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("owner.teamEmail", "not-an-email", "owner.teamEmail"),
        ("owner", None, "owner"),
        ("applicationName", "", "applicationName"),
        ("container.image.name", "bad name!", "container.image.name"),
        ("container.image.tag", None, "container.image"),
        ("container.resources.cpu", 0, "container.resources.cpu"),
        ("container.resources.memoryMB", -1, "container.resources.memoryMB"),
        ("container.resources.memoryMb", 512, "container.resources.memoryMb"),
        ("batch.size", 0, "batch.size"),
    ],
)
def test_each_rule_names_the_bad_field(path: str, value: Any, expected: str) -> None:
    assert expected in paths(broken(path, value))


def test_service_capacity_must_be_ordered() -> None:
    body = copy.deepcopy(GOOD)
    del body["batch"]
    body["service"] = {"capacity": {"min": 3, "desired": 2, "max": 4}}
    assert paths(body) == ["service.capacity"]
    body["service"]["capacity"]["min"] = 2
    parse_job_descriptor(body)


def test_every_problem_is_listed_at_once() -> None:
    body = broken("owner.teamEmail", "x")
    body["container"]["resources"]["cpu"] = -1
    assert set(paths(body)) == {"owner.teamEmail", "container.resources.cpu"}


def test_batch_and_service_together_are_refused() -> None:
    body = copy.deepcopy(GOOD)
    body["service"] = {"capacity": {"min": 0, "desired": 1, "max": 1}}
    assert "$" in paths(body)
