"""Fuzzing the OpenAPI description with schemathesis, in-process on a real SQLite store:
no 5xx, and every answer (status, content type, body) matches what the description says.
The number of examples per operation is bounded so the suite stays fast."""

from __future__ import annotations

import tempfile
from pathlib import Path

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
    case.call_and_validate(
        excluded_checks=[checks.positive_data_acceptance, checks.negative_data_rejection]
    )
