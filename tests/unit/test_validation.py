"""A bad job descriptor is refused with every problem named by its JSON path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.catalogue import GOOD
from titus.model.validation import RAISED_ATTRIBUTE, InvalidRequest, parse_job_descriptor


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
    ("path", "value", "message"),
    [
        ("container.resources.cpu", True, "must be a number"),
        ("container.resources.memoryMB", False, "must be a number"),
        ("batch.size", True, "must be a number"),
        ("batch.retryPolicy.delayed.delayMs", True, "must be a number"),
        ("container.resources.allocateIP", 0, "must be true or false"),
        ("batch.retryOnRuntimeLimit", "yes", "must be true or false"),
        ("batch.retryOnRuntimeLimit", 1, "must be true or false"),
    ],
)
def test_a_number_is_a_number_and_a_switch_true_or_false(
    path: str, value: Any, message: str
) -> None:
    """`true` is not taken for 1, nor 0 for `false`, as protobuf-JSON does not take them:
    each is refused naming its field."""
    with pytest.raises(InvalidRequest) as exc:
        parse_job_descriptor(broken(path, value))
    assert [(e.path, e.message) for e in exc.value.errors] == [(path, message)]


def test_integers_and_switches_may_come_as_strings_as_protobuf_json_sends_them() -> None:
    body = broken("container.resources.memoryMB", "1024")
    body["batch"]["retryOnRuntimeLimit"] = "true"
    body["batch"]["retryPolicy"] = {"delayed": {"initialDelayMs": "0", "delayMs": "1000"}}
    d = parse_job_descriptor(body)
    assert d.container.resources.memoryMB == 1024
    assert d.batch is not None and d.batch.retryOnRuntimeLimit is True
    assert d.batch.retryPolicy is not None and d.batch.retryPolicy.delayed is not None
    assert d.batch.retryPolicy.delayed.delayMs == 1000


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("container.resources.memoryMB", "lots"),
        # only the digits, as protobuf-JSON writes them and the description states them
        ("container.resources.memoryMB", " 1024"),
        ("container.resources.memoryMB", "01024"),
        ("container.resources.memoryMB", "+1024"),
        ("container.resources.memoryMB", "1_024"),
        ("container.resources.memoryMB", "1024.0"),
        # a fraction is never sent as a string
        ("container.resources.cpu", "2"),
    ],
)
def test_a_number_as_a_string_is_only_an_integer_in_plain_digits(path: str, value: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        parse_job_descriptor(broken(path, value))
    assert [e.path for e in exc.value.errors] == [path]
    assert "must be" in exc.value.errors[0].message


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


def _error(body: dict[str, Any], path: str) -> str:
    with pytest.raises(InvalidRequest) as exc:
        parse_job_descriptor(body)
    return next(e.message for e in exc.value.errors if e.path == path)


@pytest.mark.parametrize("pairs", [8_000, 100_000])
def test_an_address_made_to_backtrack_is_refused_at_once_and_not_echoed(pairs: int) -> None:
    """`a@a.a.a...a ` fails only at its last character: a backtracking check would hold the
    interpreter for minutes on the larger one (the suite's timeout fails it)."""
    email = "a@" + "a." * pairs + "a "
    message = _error(broken("owner.teamEmail", email), "owner.teamEmail")
    assert "not a valid email address" in message
    assert len(message) < 200 and f"({len(email)} characters)" in message


@pytest.mark.parametrize("email", ["a@b.c", "first.last@mail.example.com", "x@a..b", "a+tag@b.io"])
def test_ordinary_addresses_pass(email: str) -> None:
    assert parse_job_descriptor(broken("owner.teamEmail", email)).owner.teamEmail == email


@pytest.mark.parametrize("email", ["a@b", "@b.c", "a@.c", "a@b.", "a@b@c.d", "a b@c.d"])
def test_malformed_addresses_are_refused(email: str) -> None:
    assert "owner.teamEmail" in paths(broken("owner.teamEmail", email))


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


SERVICE: dict[str, Any] = {
    **{k: v for k, v in GOOD.items() if k != "batch"},
    "service": {"capacity": {"min": 0, "desired": 1, "max": 2}},
}


def _poisoned(where: str) -> dict[str, Any]:
    deep = {"x": _nested(230)}
    body = copy.deepcopy(SERVICE)
    if where == "rateUnlimited":
        body["disruptionBudget"] = {"relocationLimit": {"limit": 1}, "rateUnlimited": deep}
    else:
        body["service"]["migrationPolicy"] = {where: deep}
    return body


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("systemDefault", "service.migrationPolicy.systemDefault.x"),
        ("selfManaged", "service.migrationPolicy.selfManaged.x"),
        ("rateUnlimited", "disruptionBudget.rateUnlimited.x"),
    ],
)
def test_policies_without_fields_refuse_any_content_by_name(where: str, path: str) -> None:
    """The poison job: a list nested hundreds deep under a field-less policy used to be
    stored, and then every listing of jobs failed. Now it is refused, naming the field."""
    assert path in paths(_poisoned(where))


def test_policies_without_fields_are_accepted_empty() -> None:
    body = {
        **SERVICE,
        "service": {**SERVICE["service"], "migrationPolicy": {"systemDefault": {}}},
        "disruptionBudget": {"relocationLimit": {"limit": 1}, "rateUnlimited": {}},
    }
    d = parse_job_descriptor(body)
    assert d.service is not None and d.service.migrationPolicy is not None
    assert d.service.migrationPolicy.systemDefault is not None
    assert d.to_json()["disruptionBudget"]["rateUnlimited"] == {}


def test_resources_below_the_minimums_are_raised_and_the_job_says_so() -> None:
    """A first job on one machine asks for little: it runs with the minimums instead of
    being refused, as Titus's sanitizer did."""
    body = copy.deepcopy(GOOD)
    body["container"]["resources"] = {"cpu": 0.001, "memoryMB": 128, "diskMB": 1000}
    d = parse_job_descriptor(body)
    r = d.container.resources
    assert (r.cpu, r.memoryMB, r.diskMB, r.networkMbps) == (0.01, 512, 10_000, 128)
    note = d.attributes[RAISED_ATTRIBUTE]
    assert "memoryMB 128 -> 512 (the minimum)" in note
    assert "diskMB 1000 -> 10000 (the minimum)" in note
    assert "cpu 0.001 -> 0.01 (the minimum)" in note
    assert RAISED_ATTRIBUTE not in parse_job_descriptor(GOOD).attributes


def test_ephemeral_storage_becomes_the_disk_the_container_gets() -> None:
    body = copy.deepcopy(GOOD)
    body["container"]["resources"]["ephemeralStorageMB"] = 25_000
    d = parse_job_descriptor(body)
    assert d.container.resources.diskMB == 25_000
    assert "diskMB 10000 -> 25000 (ephemeralStorageMB)" in d.attributes[RAISED_ATTRIBUTE]
    body["container"]["resources"]["ephemeralStorageMB"] = -5
    assert "container.resources.ephemeralStorageMB" in paths(body)


def test_the_raised_attribute_cannot_be_set_by_a_user() -> None:
    body = copy.deepcopy(GOOD)
    body["attributes"] = {RAISED_ATTRIBUTE: "memoryMB 1 -> 2"}
    assert f"attributes.{RAISED_ATTRIBUTE}" in paths(body)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({f"k{i}": "v" for i in range(101)}, "at most 100 attributes (101 given)"),
        ({f"k{i}": "v" * 4000 for i in range(9)}, "at most 32768 bytes of keys and values"),
        ({"k": "v" * 4097}, "values are at most 4096 characters"),
        ({"k" * 257: "v"}, "keys are at most 256 characters"),
    ],
)
def test_attribute_floods_are_refused_naming_the_bound(
    attributes: dict[str, str], message: str
) -> None:
    body = {**GOOD, "attributes": attributes}
    with pytest.raises(InvalidRequest) as exc:
        parse_job_descriptor(body)
    assert any(message in e.message for e in exc.value.errors), exc.value.errors


@pytest.mark.parametrize("kind", ["hardConstraints", "softConstraints"])
def test_constraint_expressions_are_refused_by_name(kind: str) -> None:
    body = copy.deepcopy(GOOD)
    body["container"][kind] = {"expression": "zoneBalance && uniqueHost"}
    assert f"container.{kind}.expression" in paths(body)
    body["container"][kind] = {"expression": "", "constraints": {"uniqueHost": "true"}}
    assert parse_job_descriptor(body).container is not None
