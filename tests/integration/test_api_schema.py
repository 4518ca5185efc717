"""Fuzzing the OpenAPI description with schemathesis, in-process on a real SQLite store:
no 5xx, and every answer (status, content type, body) matches what the description says,
for single calls and for chains of calls that follow the description's links.
The number of examples per operation is bounded so the suite stays fast."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from titus.api.app import create_app
from titus.coord.local import LocalCoordinator
from titus.settings import Settings
from titus.store.sqlite import SqliteJobStore

_dir = Path(tempfile.mkdtemp(prefix="titus-schema-"))
_store = SqliteJobStore(_dir / "titus.db", synchronous="OFF")
# rate limits off: the fuzzer is one caller sending many requests on purpose
app = create_app(Settings(data_dir=str(_dir), rate_limit_buckets=[]), _store, LocalCoordinator())
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
    path_regex=r".*/(observe|logs)$"
)


#: The two checks that cross-field rules (which the schema cannot state) rightly fail.
CROSS_FIELD = [checks.positive_data_acceptance, checks.negative_data_rejection]


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_matches_its_description(case: schemathesis.Case) -> None:
    if (case.path_parameters or {}).get("job_id") == "observe":
        return  # that is the (excluded) observe stream, not a job id
    # Cross-field rules (capacity order, one retry policy, ...) are not in the schema, so a
    # schema-valid body may rightly be refused with a 400: those two checks do not apply.
    case.call_and_validate(excluded_checks=CROSS_FIELD)


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
        case.validate_response(response, excluded_checks=CROSS_FIELD)


TestApiWorkflows = ApiWorkflows.TestCase
TestApiWorkflows.settings = settings(
    max_examples=10,
    stateful_step_count=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
