"""Fuzzing the OpenAPI description with schemathesis, in-process on a real SQLite store:
no 5xx; every answer (status, content type, body) matches what the description says; a
request the description allows is taken and one it forbids is refused, so the description
states what the API enforces; for single calls and for chains of calls that follow the
description's links.

The number of examples per operation is bounded so the suite stays fast (a few per cent of
it); TITUS_SCHEMA_EXAMPLES raises it for a long run (e.g. 1000)."""

from __future__ import annotations

import copy
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
    "POST /api/v3/jobs": "service min <= desired <= max, shm <= memory, an image tag or a "
    "digest, batch or service, a constraint not both soft and hard, the largest host",
    "PUT /api/v3/jobs/{job_id}/instances": "min <= desired <= max",
    "PUT /api/v3/jobs/{job_id}/capacityAttributes": "min <= desired <= max with the job's "
    "stored numbers for those not given",
    "POST /api/v3/tasks/move": "the source and the target job differ",
    "PUT /api/v2/management/applications/{name}": "the body's appName is the path's name",
    "PATCH /api/v3/autoscaling/scalableTargetDimensions/{job_id}": "a service job's "
    "desired within its stored min and max",
    "POST /api/v3/autoscaling/scalingPolicy": "a step policy's intervals in order, each "
    "starting where the one before ends; the least step adjustment and "
    "minAdjustmentMagnitude by adjustmentType",
    "PUT /api/v3/autoscaling/scalingPolicy": "as POST",
}


def excluded(case: schemathesis.Case) -> list[Any]:
    """The checks that do not apply to `case` (see CROSS_FIELD)."""
    if f"{case.method.upper()} {case.path}" in CROSS_FIELD:
        return [checks.positive_data_acceptance]
    if (case.query or {}).get("cursor"):
        # a cursor is a token the previous page's answer gave: any other well-formed
        # string is rightly refused ("not a cursor"), which no schema can state
        return [checks.positive_data_acceptance]
    return []


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
#: Fields the description states as integers that protobuf-JSON clients may send as
#: numeric strings (64-bit numbers); the API takes both, the description names the number.
INT64_FIELDS = {"runtimeLimitSec", "initialDelayMs", "delayMs", "maxDelayIntervalMs"}


def _as_numbers(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: int(v) if k in INT64_FIELDS and isinstance(v, str) else _as_numbers(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_as_numbers(v) for v in node]
    return node


def _descriptor_errors(body: dict[str, Any]) -> list[str]:
    doc = app.openapi()
    schema = {"$ref": "#/components/schemas/JobDescriptor", "components": doc["components"]}
    return [e.message for e in Draft202012Validator(schema).iter_errors(_as_numbers(body))]


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
