"""Response and request shapes as the OpenAPI description states them.

Handlers return prepared JSON (the view keeps each job's JSON ready) rather than have
FastAPI re-validate every item; these models make the description truthful, and the
schemathesis suite checks that answers match it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from titus.model.json_schema import WHITE_SPACE, one_of_pattern
from titus.model.states import JobState, TaskState
from titus.model.validation import (
    ATTRIBUTE_KEY_MAX_CHARS,
    ATTRIBUTE_VALUE_MAX_CHARS,
    ATTRIBUTES_MAX_COUNT,
)
from titus.model.wire import Int, Number


class ErrorItem(BaseModel):
    path: str = Field(description="JSON path of the problem ('$' for the whole body).")
    message: str


class ErrorBody(BaseModel):
    """Every refusal has this shape."""

    statusCode: int
    message: str
    errors: list[ErrorItem] = Field(default_factory=list)


class JobId(BaseModel):
    id: str


class Eviction(BaseModel):
    """An eviction the job's budget allowed: the task is being killed."""

    taskId: str
    jobId: str
    message: str = Field(description="What was recorded as the kill's reason.")


class Pagination(BaseModel):
    hasMore: bool
    cursor: str = Field(description="Opaque; pass it back as `cursor` for the next page.")
    totalItems: int


class Page(BaseModel):
    items: list[dict[str, Any]] = Field(
        description="Jobs or tasks, or their projection when `fields` is given."
    )
    pagination: Pagination


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(BaseModel):
    """What is true now. `status` is "ok"; "degraded" (200) when no leader is known, no
    healthy host is registered, or stored records were set aside as unreadable
    (`quarantined`, listed at /api/v3/quarantine); "unavailable" (503) when the store does
    not answer. `reasons` says which."""

    status: str
    leader: bool
    store: str = "ok"
    agents: int = 0
    healthyAgents: int = 0
    quarantined: int = 0
    reasons: list[str] = []


class CapacityRequest(BaseModel):
    """The `instances` and `capacityAttributes` body (64-bit numbers may be strings)."""

    model_config = ConfigDict(extra="forbid")
    min: Int | None = None
    desired: Int | None = None
    max: Int | None = None


#: What the service layer takes as a user's attributes (validation.check_user_attributes):
#: keys 1-256 characters not starting with "titus" (any case), values up to 4096, at most
#: 100 of them. (Their total size, at most 32 KiB, is checked but cannot be stated here.)
USER_ATTRIBUTES: dict[str, Any] = {
    "type": "object",
    "maxProperties": ATTRIBUTES_MAX_COUNT,
    "propertyNames": {
        "minLength": 1,
        "maxLength": ATTRIBUTE_KEY_MAX_CHARS,
        "pattern": "^(?![Tt][Ii][Tt][Uu][Ss])",
    },
    "additionalProperties": {"type": "string", "maxLength": ATTRIBUTE_VALUE_MAX_CHARS},
}


class JobAttributesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attributes: dict[str, str] = Field(json_schema_extra=USER_ATTRIBUTES)


NON_EMPTY: dict[str, Any] = {"minLength": 1}


class TaskMoveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sourceJobId: str = Field(json_schema_extra=NON_EMPTY)
    targetJobId: str = Field(json_schema_extra=NON_EMPTY)
    taskId: str = Field(json_schema_extra=NON_EMPTY)


class CapacityGroup(BaseModel):
    """A reservation of `instanceCount` slices of the given size (Titus ApplicationSla)."""

    model_config = ConfigDict(extra="forbid")
    appName: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    tier: Literal["Critical", "Flex"] = "Flex"
    instanceCPU: Number = Field(1.0, ge=0, le=1000)
    instanceMemoryMB: Int = Field(512, ge=0, le=10_000_000)
    instanceDiskMB: Int = Field(10_000, ge=0, le=100_000_000)
    instanceNetworkMbs: Int = Field(128, ge=0, le=10_000_000)
    instanceGPU: Int = Field(0, ge=0, le=1000)
    instanceCount: Int = Field(0, ge=0, le=1_000_000)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("Invalid request: each problem with its JSON path."),
    401: _error("Authentication is on and no valid bearer token was given."),
    403: _error("The caller lacks the role this needs."),
    404: _error("No such job, task or capacity group."),
    409: _error("Conflict: exists already, or not in a state that allows this."),
    413: _error("Request body over the configured size."),
    415: _error("Content type is not application/json."),
    422: _error("Idempotency-Key reused with another body."),
    429: _error("Rate limit or capacity limit; see Retry-After."),
    503: _error("Store unavailable or too much contention; retry later."),
}


def json_body(schema: dict[str, Any] | type[BaseModel]) -> dict[str, Any]:
    """An `openapi_extra` that documents a JSON request body read by hand."""
    if isinstance(schema, type):
        schema = {"$ref": f"#/components/schemas/{schema.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def comma_list_pattern(values: Iterable[str]) -> str:
    """A comma list of `values` (any case, blanks around items, empty items ignored)."""
    blanks = f"[{WHITE_SPACE}]*"
    item = f"{blanks}(?:{one_of_pattern(values)})?{blanks}"
    return f"^{item}(?:,{item})*$"


#: Query parameters the API reads as more than free text, described as it parses them
#: (titus/api/query.py).
QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "jobType": {"type": "string", "pattern": comma_list_pattern(["BATCH", "SERVICE"])},
    "jobState": {"type": "string", "pattern": comma_list_pattern(s.value for s in JobState)},
    "taskStates": {"type": "string", "pattern": comma_list_pattern(s.value for s in TaskState)},
    "attributes.op": {"type": "string", "pattern": f"^{one_of_pattern(['and', 'or'])}?$"},
    "skipSystemFailures": {
        "type": "string",
        "pattern": f"^{one_of_pattern(['1', 'true', 'yes', '0', 'false', 'no'])}?$",
    },
}


def query_parameters(
    names: Iterable[str], paging: bool = False, required: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Query parameters as the API reads them; those in `required` must be non-empty."""
    must = set(required)
    params = [
        {
            "name": n,
            "in": "query",
            "required": n in must,
            "schema": {
                **QUERY_SCHEMAS.get(n, {"type": "string"}),
                **(NON_EMPTY if n in must else {}),
            },
        }
        for n in sorted(names)
    ]
    if paging:
        params += [
            {
                "name": "pageSize",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
            },
            {
                "name": "page",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0},
            },
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "Opaque: the `cursor` of the previous page's answer.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_=-]*$"},
            },
            {"name": "fields", "in": "query", "required": False, "schema": {"type": "string"}},
        ]
    return params
