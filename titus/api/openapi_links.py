"""OpenAPI links: which answer yields the id that another operation's path needs.

A client generator or a stateful fuzzer reads them to chain calls as a user does: create a
job, then read, resize, disable and kill it by the id the create returned. They are derived
from rules about path parameters, not written per operation, so a new route that takes a
`{job_id}` or a `{task_id}` is linked from the start; a new kind of id needs a producer
here, and tests/integration/test_api_schema.py fails until it has one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_PARAM = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class Producer:
    """An answer that carries a value for the path parameter `param` of operations whose
    path starts with `prefix`."""

    method: str
    path: str
    status: str
    param: str
    expression: str  # an OpenAPI runtime expression
    prefix: str = "/"


PRODUCERS = (
    Producer("post", "/api/v3/jobs", "202", "job_id", "$response.body#/id"),
    Producer("get", "/api/v3/jobs", "200", "job_id", "$response.body#/items/0/id"),
    Producer("get", "/api/v3/tasks", "200", "task_id", "$response.body#/items/0/id"),
    Producer(
        "post",
        "/api/v2/management/applications",
        "201",
        "name",
        "$response.body#/appName",
        prefix="/api/v2/management/applications/",
    ),
    Producer(
        "get",
        "/api/v2/management/applications",
        "200",
        "name",
        "$response.body#/0/appName",
        prefix="/api/v2/management/applications/",
    ),
    Producer(
        "get",
        "/api/v2/management/applications",
        "200",
        "name",
        "$response.body#/0/appName",
        prefix="/api/v3/eviction/quotas/capacityGroups/",
    ),
    Producer(
        "post",
        "/api/v3/autoscaling/scalingPolicy",
        "200",
        "policy_id",
        "$response.body#/id",
        prefix="/api/v3/autoscaling/",
    ),
    Producer(
        "get",
        "/api/v3/autoscaling/scalingPolicies",
        "200",
        "policy_id",
        "$response.body#/items/0/id/id",
        prefix="/api/v3/autoscaling/",
    ),
    Producer(
        "get",
        "/api/v3/instanceGroups",
        "200",
        "name",
        "$response.body#/items/0/id",
        prefix="/api/v3/instanceGroups/",
    ),
    Producer(
        "get",
        "/api/v3/quarantine",
        "200",
        "kind",
        "$response.body#/items/0/kind",
        prefix="/api/v3/quarantine/",
    ),
    Producer(
        "get",
        "/api/v3/quarantine",
        "200",
        "record_id",
        "$response.body#/items/0/id",
        prefix="/api/v3/quarantine/",
    ),
)


def _link_name(method: str, path: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path) if w and w not in ("api", "v2", "v3")]
    return method.capitalize() + "".join(w[:1].upper() + w[1:] for w in words)


def add_links(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to `schema` (in place) a link from each producer to every operation it feeds."""
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for producer in PRODUCERS:
        source = paths.get(producer.path, {}).get(producer.method)
        if source is None:
            continue
        response = source.get("responses", {}).get(producer.status)
        if response is None:
            continue
        links = response.setdefault("links", {})
        for path, operations in paths.items():
            params = _PARAM.findall(path)
            if producer.param not in params or not path.startswith(producer.prefix):
                continue
            for method, operation in operations.items():
                if not isinstance(operation, dict) or "operationId" not in operation:
                    continue
                if (method, path) == (producer.method, producer.path):
                    continue
                # producers of one answer for one operation's several parameters: one link
                link = links.setdefault(
                    _link_name(method, path),
                    {"operationId": operation["operationId"], "parameters": {}},
                )
                link["parameters"][producer.param] = producer.expression
    return schema
