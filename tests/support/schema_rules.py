"""What the API's description cannot state, for the schema fuzzers (the pytest run in
tests/integration/test_api_schema.py and the command-line run that tests/schemathesis.toml
configures, tests/integration/test_api_schema_cli.py): the operations a schema-valid
request may rightly be refused by, and how a generated job descriptor is mended to keep
the rules between its fields so the API must take it."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import schemathesis
from hypothesis import strategies as st
from jsonschema_rs import Draft202012Validator
from schemathesis import checks
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import CoveragePhaseData

from titus.model import validation as v
from titus.model.health import check_health_attributes
from titus.model.job import TIME_ZONE_FORMAT, known_time_zones


def register_formats() -> None:
    """Budget windows' zones: any zone this host knows (the description names the format
    rather than listing some 600 names)."""
    schemathesis.openapi.format(TIME_ZONE_FORMAT, st.sampled_from(sorted(known_time_zones())))


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
    "POST /api/v3/jobs/{job_id}/enable": "the job is a service job",
    "POST /api/v3/jobs/{job_id}/disable": "the job is a service job",
    "PUT /api/v3/jobs/{job_id}/jobprocesses": "the job is a service job",
    "POST /api/v3/loadBalancers": "the job is a service job and the target group exists "
    "in ELBv2 and takes IP targets",
}


CREATE = "POST /api/v3/jobs"


#: Reads of what a DELETE asks to end rather than removes, as in Titus: a killed job or
#: task stays readable (KillInitiated, then Finished, then archived, and a read by id
#: finds it in the archive too), a deleted scaling policy shows Deleting until the leader
#: has taken it down, then Deleted. "A deleted resource answers 404" does not apply.
STAYS_READABLE: dict[str, str] = {
    "GET /api/v3/jobs/{job_id}": "DELETE kills the job",
    "GET /api/v3/tasks/{task_id}": "DELETE kills the task",
    "GET /api/v3/autoscaling/scalingPolicy/{policy_id}": "DELETE marks the policy Deleting",
}


def excluded(case: schemathesis.Case) -> list[Any]:
    """The checks that do not apply to `case` (see CROSS_FIELD and STAYS_READABLE, and
    `keeps_every_rule` for creating a job)."""
    operation = f"{case.method.upper()} {case.path}"
    if operation in STAYS_READABLE:
        return [checks.use_after_free]
    if operation in CROSS_FIELD:
        return [checks.positive_data_acceptance]
    document = case.operation.schema.raw_schema
    if operation == CREATE and (not keeps_every_rule(case.body, document) or _key_reused(case)):
        return [checks.positive_data_acceptance]
    if (case.query or {}).get("cursor"):
        # a cursor is a token the previous page's answer gave: any other well-formed
        # string is rightly refused ("not a cursor"), which no schema can state
        return [checks.positive_data_acceptance]
    return []


#: The body the API took under each Idempotency-Key in this run.
_bodies_by_key: dict[str, Any] = {}


def _key_reused(case: schemathesis.Case) -> bool:
    """True when the API took another body under the case's Idempotency-Key before: the
    generator draws keys from a small space (the coverage phase sends one key with all its
    bodies), and such a create is rightly refused (422) whatever the description says, as
    it must be."""
    key = (case.headers or {}).get("Idempotency-Key")
    return key in _bodies_by_key and _bodies_by_key[key] != case.body


def remember_taken_key(context: Any, case: schemathesis.Case, response: Any) -> None:
    """An `after_call` hook: the body a create the API took (2xx) was sent with, by its
    Idempotency-Key (a key first sent with a body the API refused binds nothing)."""
    if f"{case.method.upper()} {case.path}" != CREATE or not 200 <= response.status_code < 300:
        return
    key = (case.headers or {}).get("Idempotency-Key")
    if key is not None:
        _bodies_by_key.setdefault(key, copy.deepcopy(case.body))


def keeps_every_rule(body: Any, document: dict[str, Any]) -> bool:
    """True when the job descriptor `body` is valid by its description and keeps the rules
    between fields too, so the API must take it. (Schemathesis's coverage phase also labels
    as valid a body it varies one header of, such as `{"service": null}`: not one to hold
    the API to.)"""
    if not isinstance(body, dict) or descriptor_errors(body, document):
        return False
    return keep_rules_between_fields(copy.deepcopy(body)) == body


def mend_descriptor(context: Any, body: Any) -> Any:
    """A job descriptor valid by its description, mended to keep the rules between fields
    as well, so that the positive check holds the API to most generated descriptors (left
    alone, few keep them all). One the description refuses (a negative case) is left as
    it is."""
    if context.operation is None or context.operation.label != CREATE:
        return body
    if not isinstance(body, dict):
        return body
    if descriptor_errors(body, context.operation.schema.raw_schema):
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


#: The validator of the last description asked about (one per run: it never changes).
_validator: tuple[dict[str, Any], Draft202012Validator] | None = None


def descriptor_errors(body: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """What the description `document` says is wrong with the job descriptor `body`. (The
    fuzzer's own validator, in Rust: asked about every create the fuzzers send, thousands
    in the coverage phase, where Python's jsonschema takes milliseconds a descriptor.)"""
    global _validator
    if _validator is None or _validator[0] is not document:
        components = document["components"]
        schema = {"$ref": "#/components/schemas/JobDescriptor", "components": components}
        _validator = (document, Draft202012Validator(schema))
    return [e.message for e in _validator[1].iter_errors(body)]


#: The fields a coverage case's description names on the way to what it varies, as in
#: "Object with valid 'disruptionBudget' value: Object with valid 'timeWindows' value: ...".
_VARIED = re.compile(r"valid '([^']+)' value")
#: The body variations the coverage phase sent in this run, by operation.
_sent_variations: set[tuple[str, ...]] = set()


def once_per_variation(context: Any, case: schemathesis.Case) -> bool:
    """A `filter_case` hook: the coverage phase's body cases, each variation once. The phase
    walks every branch of an `anyOf` with all the fields beside it, so a disruption budget's
    16 choices of policy and rate each vary its time windows through the same boundary
    values (some 5,000 job descriptors for one create); a case that gives the field its
    description names the value an earlier case of the operation gave it is not sent
    again. Other phases' cases all pass."""
    meta = case.meta
    if meta is None or not isinstance(meta.phase.data, CoveragePhaseData):
        return True
    data = meta.phase.data
    if data.parameter_location != ParameterLocation.BODY:
        return True
    varied = case.body
    for name in _VARIED.findall(data.description):
        if not isinstance(varied, dict) or name not in varied:
            break
        varied = varied[name]
    variation = (
        f"{case.method.upper()} {case.path}",
        meta.generation.mode.value,
        data.description,
        json.dumps(varied, sort_keys=True, default=repr),
    )
    if variation in _sent_variations:
        return False
    _sent_variations.add(variation)
    return True
