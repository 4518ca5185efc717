"""Response and request shapes as the OpenAPI description states them.

Handlers return prepared JSON (the view keeps each job's JSON ready) rather than have
FastAPI re-validate every item; these models make the description truthful, and the
schemathesis suite checks that answers match it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    min: int | None = None
    desired: int | None = None
    max: int | None = None


class JobAttributesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    attributes: dict[str, str]


class TaskMoveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sourceJobId: str
    targetJobId: str
    taskId: str


class CapacityGroup(BaseModel):
    """A reservation of `instanceCount` slices of the given size (Titus ApplicationSla)."""

    model_config = ConfigDict(extra="forbid")
    appName: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    tier: Literal["Critical", "Flex"] = "Flex"
    instanceCPU: float = Field(1.0, ge=0, le=1000)
    instanceMemoryMB: int = Field(512, ge=0, le=10_000_000)
    instanceDiskMB: int = Field(10_000, ge=0, le=100_000_000)
    instanceNetworkMbs: int = Field(128, ge=0, le=10_000_000)
    instanceGPU: int = Field(0, ge=0, le=1000)
    instanceCount: int = Field(0, ge=0, le=1_000_000)


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


def query_parameters(names: Iterable[str], paging: bool = False) -> list[dict[str, Any]]:
    params = [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
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
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "fields", "in": "query", "required": False, "schema": {"type": "string"}},
        ]
    return params
