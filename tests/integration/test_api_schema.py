"""Fuzzing the OpenAPI description with schemathesis, in-process on a real SQLite store:
no 5xx; every answer (status, content type, body) matches what the description says; a
request the description allows is taken and one it forbids is refused, so the description
states what the API enforces; for single calls and for chains of calls that follow the
description's links. Creating a job is held to the positive check too: each generated
descriptor the description allows is first mended to keep the rules between its fields
(which JSON Schema cannot state), and the API must then take it.

Generated requests are drawn at random (and from the description's examples); the coverage
phase's boundary values of every field are the command-line run's
(tests/integration/test_api_schema_cli.py). The number of examples per operation is
bounded so the suite stays fast (a few per cent of it); TITUS_SCHEMA_EXAMPLES raises it for
a long run (e.g. 1000)."""

from __future__ import annotations

import copy
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator

from tests.support.catalogue import CATALOGUE, GOOD, Edit
from tests.support.moto_server import speak_to_moto
from tests.support.schema_rules import (
    descriptor_errors,
    excluded,
    mend_descriptor,
    register_formats,
    remember_taken_key,
)
from titus.api.app import create_app
from titus.coord.local import LocalCoordinator
from titus.settings import Settings
from titus.store.sqlite import SqliteJobStore

register_formats()
_dir = Path(tempfile.mkdtemp(prefix="titus-schema-"))
_store = SqliteJobStore(_dir / "titus.db", synchronous="OFF")
# rate limits off: the fuzzer is one caller sending many requests on purpose
app = create_app(Settings(data_dir=str(_dir), rate_limit_buckets=[]), _store, LocalCoordinator())
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
    path_regex=r".*/(observe|logs)$"
)
# The coverage phase (boundary values of every field) is the command-line run's, over HTTP
# with the same rules (test_api_schema_cli.py): here it would send the same cases again.
schema.config.phases.update(phases=["examples", "fuzzing", "stateful"])


#: Examples per operation (chains of calls stay at 10, see TestApiWorkflows); the default
#: takes about 20 s on two cores (300 about 2 min).
EXAMPLES = int(os.environ.get("TITUS_SCHEMA_EXAMPLES", "30"))

schema.hook("map_body")(mend_descriptor)
schema.hook("after_call")(remember_taken_key)


@pytest.fixture(scope="module", autouse=True)
def _elbv2_on_moto(moto_server: str) -> Iterator[None]:
    """A target group named by a well-formed ARN is looked up in ELBv2 (moto here)."""
    with pytest.MonkeyPatch.context() as env:
        speak_to_moto(env, moto_server)
        yield


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


#: Ids an operation may take in its query or body rather than its path; each must be fed.
ID_FIELDS = {"jobId", "taskId", "sourceJobId", "policyId"}


def test_every_operation_that_needs_an_id_is_linked_from_one_that_yields_it() -> None:
    """Each path parameter of each operation, and each id it takes in its query or body, is
    fed by a link from an answer (a create or a listing), so client generators and the
    stateful runs reach every operation with ids that exist."""
    doc = app.openapi()
    fed: dict[str, set[str]] = {}
    for operations in doc["paths"].values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                for link in response.get("links", {}).values():
                    got = fed.setdefault(link["operationId"], set())
                    got.update(k.removeprefix("query.") for k in link.get("parameters", {}))
                    got.update(link.get("requestBody", {}))
    unfed = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            needed = set(re.findall(r"\{([^}]+)\}", path))
            needed |= {p["name"] for p in operation.get("parameters", [])} & ID_FIELDS
            needed |= _body_fields(doc, operation) & ID_FIELDS
            missing = needed - fed.get(operation["operationId"], set())
            if missing:
                unfed.append(f"{method.upper()} {path}: {sorted(missing)}")
    assert not unfed, "operations no link feeds: " + "; ".join(unfed)
    create = doc["paths"]["/api/v3/jobs"]["post"]["responses"]["202"]["links"]
    assert create["GetJobsJobId"]["parameters"] == {"job_id": "$response.body#/id"}
    assert create["PostAutoscalingScalingPolicy"]["requestBody"] == {"jobId": "$response.body#/id"}


def _body_fields(doc: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = content.get("schema", {}).get("$ref", "")
    component = doc["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}) if ref else {}
    return set(component.get("properties", {}))


class ApiWorkflows(schema.as_state_machine()):  # type: ignore[misc]
    """Chains of calls along the links (create a job, then read, change and kill it by the
    id it returned; list tasks, then act on one), each answer checked as above."""

    def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
        case.validate_response(response, excluded_checks=excluded(case))


TestApiWorkflows = ApiWorkflows.TestCase
# Ten chains, however many examples per operation: the store is kept across examples, so
# a chain hypothesis replays may meet other answers and draw other steps, which it
# reports as FlakyStrategyDefinition (seen at 25 chains after 100 examples per operation,
# and at 30 after 300). Longer runs of chains: the command-line run
# (test_api_schema_cli.py, TITUS_SCHEMA_CLI_EXAMPLES), which has no such replay.
TestApiWorkflows.settings = settings(
    max_examples=10,
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


def _descriptor_errors(body: dict[str, Any]) -> list[str]:
    return descriptor_errors(body, app.openapi())


@pytest.mark.parametrize(
    ("rule", "breaks", "passes"), [pytest.param(r, b, p, id=r) for r, _, b, p in CATALOGUE]
)
def test_the_job_description_states_each_rule_it_can(rule: str, breaks: Edit, passes: Edit) -> None:
    """Each body the API takes, the description takes; each rule JSON Schema can state, the
    description states, so a generator or a fuzzer reading it sends what is accepted.
    (The description is read in JSON Schema's own dialect, as the fuzzers read it: its
    `$` lets no trailing line break through, so the catalogue's "ends as it should" bodies
    are refused by the description too, where Python's `$` would let them through.)"""
    good = copy.deepcopy(GOOD)
    passes(good)
    assert _descriptor_errors(good) == []
    bad = copy.deepcopy(GOOD)
    breaks(bad)
    if rule in NOT_STATABLE:
        assert _descriptor_errors(bad) == [], f"{rule} is stated now: take it off the list"
    else:
        assert _descriptor_errors(bad), f"the description does not state: {rule}"


def test_no_pattern_in_the_description_uses_a_class_the_dialects_read_differently() -> None:
    r"""`\s`, `\d` and `\w` are ASCII or Unicode depending on who reads the pattern
    (JSON Schema's ECMA-262 or Python's re, which the API's checks use)."""
    found = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "pattern" and re.search(r"\\[dDwWsS]", str(value)):
                    found.append(f"{where}: {value}")
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(app.openapi(), "")
    assert found == []


def test_the_defaults_of_each_object_in_the_description_are_a_choice_it_allows() -> None:
    """Where an object's `anyOf` says which of its fields go together (one of tag or digest,
    batch or service, ...), the fields' defaults taken together fit one of its branches: a
    client that fills in the defaults, or a fuzzer that starts from them (the coverage
    phase does), builds a value the description allows. (With `default: null` on each
    field of such a group, the defaults choose none of them, and the coverage phase finds
    no job descriptor to start from: it sends none.)"""
    doc = app.openapi()
    clashing = []
    for name, component in doc["components"]["schemas"].items():
        if "anyOf" not in component or "properties" not in component:
            continue
        properties = component["properties"]
        defaults = {k: p["default"] for k, p in properties.items() if "default" in p}
        # a branch's `required` asks for fields a default leaves out: not the question here
        branches = [{k: v for k, v in b.items() if k != "required"} for b in component["anyOf"]]
        if not any(Draft202012Validator(b).is_valid(defaults) for b in branches):
            clashing.append(f"{name}: {defaults}")
    assert clashing == []


def test_a_job_read_back_with_the_platforms_own_attributes_matches_its_description() -> None:
    """A job whose resources were raised to the minimums carries `titus.resources.raised`,
    which a user may not send: the description of a job as read back allows it."""
    body = copy.deepcopy(GOOD)
    body["container"]["resources"].update(memoryMB=4, diskMB=2)
    with TestClient(app) as http:
        created = http.post("/api/v3/jobs", json=body)
        assert created.status_code == 202, created.text
        job = http.get(f"/api/v3/jobs/{created.json()['id']}").json()
    assert any(k.startswith("titus.") for k in job["jobDescriptor"]["attributes"])
    doc = app.openapi()
    described = {"$ref": "#/components/schemas/Job", "components": doc["components"]}
    assert [e.message for e in Draft202012Validator(described).iter_errors(job)] == []
