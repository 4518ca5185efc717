"""Fuzzing the OpenAPI description with schemathesis, in-process on a real SQLite store:
no 5xx; every answer (status, content type, body) matches what the description says; a
request the description allows is taken and one it forbids is refused, so the description
states what the API enforces; for single calls and for chains of calls that follow the
description's links. Creating a job is held to the positive check too: each generated
descriptor the description allows is first mended to keep the rules between its fields
(which JSON Schema cannot state), and the API must then take it.

The number of examples per operation is bounded so the suite stays fast (a few per cent of
it); TITUS_SCHEMA_EXAMPLES raises it for a long run (e.g. 1000)."""

from __future__ import annotations

import copy
import functools
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis import checks

from tests.support.catalogue import CATALOGUE, GOOD, Edit
from titus.api.app import create_app
from titus.coord.local import LocalCoordinator
from titus.model import validation as v
from titus.model.health import check_health_attributes
from titus.model.job import TIME_ZONE_FORMAT, known_time_zones
from titus.settings import Settings
from titus.store.sqlite import SqliteJobStore

# budget windows' zones: any zone this host knows (the description names the format)
schemathesis.openapi.format(TIME_ZONE_FORMAT, st.sampled_from(sorted(known_time_zones())))
_dir = Path(tempfile.mkdtemp(prefix="titus-schema-"))
_store = SqliteJobStore(_dir / "titus.db", synchronous="OFF")
# rate limits off: the fuzzer is one caller sending many requests on purpose
app = create_app(Settings(data_dir=str(_dir), rate_limit_buckets=[]), _store, LocalCoordinator())
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
    path_regex=r".*/(observe|logs)$"
)


#: Examples per operation (a tenth as many chains of calls, at least 10); the default takes
#: about 45 s on two cores (60 took about 80 s).
EXAMPLES = int(os.environ.get("TITUS_SCHEMA_EXAMPLES", "30"))

#: Operations with rules between fields, or against stored state, that JSON Schema cannot
#: state: a request the description allows may rightly be refused with a 400 naming the
#: rule, so "schema-valid data is accepted" does not apply to them (every other check does,
#: the negative one included). Each with the rule that makes it so.
CROSS_FIELD: dict[str, str] = {
    "PUT /api/v3/jobs/{job_id}/instances": "min <= desired <= max",
    "PUT /api/v3/jobs/{job_id}/capacityAttributes": "min <= desired <= max with the job's "
    "stored numbers for those not given",
    "POST /api/v3/tasks/move": "the source and the target job differ",
    "PUT /api/v2/management/applications/{name}": "the body's appName is the path's name",
    "GET /api/v3/autoscaling/scalableTargetDimensions/{job_id}": "the job is a service "
    "job (a batch job has no scalable dimension)",
    "PATCH /api/v3/autoscaling/scalableTargetDimensions/{job_id}": "a service job's "
    "desired within its stored min and max",
    "POST /api/v3/autoscaling/scalingPolicy": "a step policy's intervals in order, each "
    "starting where the one before ends; the least step adjustment and "
    "minAdjustmentMagnitude by adjustmentType",
    "PUT /api/v3/autoscaling/scalingPolicy": "as POST",
    "DELETE /api/v3/jobs/{job_id}/attributes": "each key in the comma-separated `keys` is "
    "an attribute key a user may set (none reserved: titus...), a rule on the items of a "
    "list inside one string",
    "DELETE /api/v3/tasks/{task_id}/attributes": "as for a job",
}


CREATE = "POST /api/v3/jobs"


def excluded(case: schemathesis.Case) -> list[Any]:
    """The checks that do not apply to `case` (see CROSS_FIELD, and `keeps_every_rule`
    for creating a job)."""
    operation = f"{case.method.upper()} {case.path}"
    if operation in CROSS_FIELD:
        return [checks.positive_data_acceptance]
    if operation == CREATE and (not keeps_every_rule(case.body) or _key_reused(case)):
        return [checks.positive_data_acceptance]
    if (case.query or {}).get("cursor"):
        # a cursor is a token the previous page's answer gave: any other well-formed
        # string is rightly refused ("not a cursor"), which no schema can state
        return [checks.positive_data_acceptance]
    return []


#: The body each Idempotency-Key was first sent with in this run.
_bodies_by_key: dict[str, Any] = {}


def _key_reused(case: schemathesis.Case) -> bool:
    """True when the case's Idempotency-Key came before with another body: the generator
    draws keys from a small space, and such a create is rightly refused (422) whatever the
    description says, as it must be."""
    key = (case.headers or {}).get("Idempotency-Key")
    if key is None:
        return False
    return _bodies_by_key.setdefault(key, copy.deepcopy(case.body)) != case.body


def keeps_every_rule(body: Any) -> bool:
    """True when the job descriptor `body` is valid by its description and keeps the rules
    between fields too, so the API must take it. (Schemathesis's coverage phase also labels
    as valid a body it varies one header of, such as `{"service": null}`: not one to hold
    the API to.)"""
    if not isinstance(body, dict) or _descriptor_errors(body):
        return False
    return keep_rules_between_fields(copy.deepcopy(body)) == body


@schema.hook("map_body")
def _keep_rules_between_fields(context: Any, body: Any) -> Any:
    """A job descriptor valid by its description, mended to keep the rules between fields
    as well, so that the positive check holds the API to most generated descriptors (left
    alone, few keep them all). One the description refuses (a negative case) is left as
    it is."""
    if context.operation is None or context.operation.label != CREATE:
        return body
    if not isinstance(body, dict) or _descriptor_errors(body):
        return body
    return keep_rules_between_fields(body)


def keep_rules_between_fields(body: dict[str, Any]) -> dict[str, Any]:
    """`body` (a job descriptor), changed in place to keep each rule JSON Schema cannot
    state (NOT_STATABLE below, and health checks, which live in attributes)."""
    service = body.get("service")
    if isinstance(service, dict) and isinstance(service.get("capacity"), dict):
        capacity = service["capacity"]
        # sorted as numbers, each kept as it was sent (a number or its digits)
        values = sorted((capacity.get(k, 0) for k in ("min", "desired", "max")), key=int)
        capacity.update(zip(("min", "desired", "max"), values, strict=True))
    container = body["container"]
    resources = container.get("resources") or {}
    memory = resources.get("memoryMB", 0)
    shm = resources.get("shmSizeMB")
    if shm is not None and int(shm) > int(memory):
        resources["shmSizeMB"] = memory
    disk = resources.get("diskMB", 0)
    scratch = resources.get("ephemeralStorageMB")
    if scratch is not None and int(scratch) > int(disk):
        # folded into diskMB, which then must stay within diskMB's own bounds
        resources["ephemeralStorageMB"] = disk
    for key in ("entryPoint", "command"):
        if _utf8(container.get(key) or []) > v.ENTRY_POINT_MAX_BYTES:
            container[key] = []
    env = container.get("env") or {}
    if sum(len(k.encode()) + len(val.encode()) for k, val in env.items()) > v.ENV_MAX_BYTES:
        container["env"] = {}
    soft = (container.get("softConstraints") or {}).get("constraints") or {}
    hard = (container.get("hardConstraints") or {}).get("constraints") or {}
    hard_names = {k.lower() for k in hard}
    for name in [k for k in soft if k.lower() in hard_names]:
        del soft[name]
    attributes = container.get("attributes") or {}
    if check_health_attributes(attributes):
        for key in [k for k in attributes if check_health_attributes({k: ""})]:
            del attributes[key]  # a health check setting (with the agent prefix or not)
    return body


def _utf8(strings: list[str]) -> int:
    return sum(len(s.encode()) for s in strings)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_matches_its_description(case: schemathesis.Case) -> None:
    if (case.path_parameters or {}).get("job_id") == "observe":
        return  # that is the (excluded) observe stream, not a job id
    case.call_and_validate(excluded_checks=excluded(case))


def test_every_operation_that_needs_an_id_is_linked_from_one_that_yields_it() -> None:
    """Each path parameter of each operation is fed by a link from an answer (a create or
    a listing), so client generators and the stateful run below reach every operation."""
    doc = app.openapi()
    fed: dict[str, set[str]] = {}
    for operations in doc["paths"].values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                for link in response.get("links", {}).values():
                    fed.setdefault(link["operationId"], set()).update(link["parameters"])
    unfed = []
    for path, operations in doc["paths"].items():
        needed = set(re.findall(r"\{([^}]+)\}", path))
        for method, operation in operations.items():
            missing = needed - fed.get(operation["operationId"], set())
            if missing:
                unfed.append(f"{method.upper()} {path}: {sorted(missing)}")
    assert not unfed, "operations no link feeds: " + "; ".join(unfed)
    create = doc["paths"]["/api/v3/jobs"]["post"]["responses"]["202"]["links"]
    assert create["GetJobsJobId"]["parameters"] == {"job_id": "$response.body#/id"}


class ApiWorkflows(schema.as_state_machine()):  # type: ignore[misc]
    """Chains of calls along the links (create a job, then read, change and kill it by the
    id it returned; list tasks, then act on one), each answer checked as above."""

    def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
        case.validate_response(response, excluded_checks=excluded(case))


TestApiWorkflows = ApiWorkflows.TestCase
# Few chains: the store is kept across examples, so a chain hypothesis replays may meet
# other answers and draw other steps, which it reports as FlakyStrategyDefinition (seen
# at 25 chains after 100 examples per operation).
TestApiWorkflows.settings = settings(
    max_examples=max(10, EXAMPLES // 10),
    stateful_step_count=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


#: Catalogue rules (tests/support/catalogue.py) that JSON Schema cannot state: between
#: fields, or a size in bytes over a whole list or map.
NOT_STATABLE = {
    "shm <= memory",
    "entryPoint size",
    "env size",
    "not soft and hard",
    "capacity order",
}


@functools.cache
def _descriptor_validator() -> Draft202012Validator:
    doc = app.openapi()
    schema = {"$ref": "#/components/schemas/JobDescriptor", "components": doc["components"]}
    return Draft202012Validator(schema)


def _descriptor_errors(body: dict[str, Any]) -> list[str]:
    return [e.message for e in _descriptor_validator().iter_errors(body)]


@pytest.mark.parametrize(
    ("rule", "breaks", "passes"), [pytest.param(r, b, p, id=r) for r, _, b, p in CATALOGUE]
)
def test_the_job_description_states_each_rule_it_can(rule: str, breaks: Edit, passes: Edit) -> None:
    """Each body the API takes, the description takes; each rule JSON Schema can state, the
    description states, so a generator or a fuzzer reading it sends what is accepted.
    (Python's `$` lets a trailing line break through a pattern, which JSON Schema's does
    not: the catalogue's "ends as it should" bodies are refused by the API and by
    JSON Schema's own dialect, not by a Python reading of the patterns.)"""
    good = copy.deepcopy(GOOD)
    passes(good)
    assert _descriptor_errors(good) == []
    bad = copy.deepcopy(GOOD)
    breaks(bad)
    if rule in NOT_STATABLE or rule.endswith("ends as it should"):
        assert _descriptor_errors(bad) == [], f"{rule} is stated now: take it off the list"
    else:
        assert _descriptor_errors(bad), f"the description does not state: {rule}"
