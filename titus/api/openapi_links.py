"""OpenAPI links: which answer yields the id that another operation's path (or, for a few,
its query or body) needs.

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


#: Answers that carry an id of each kind, as (method, path, status) -> runtime expression.
ID_SOURCES: dict[str, dict[tuple[str, str, str], str]] = {
    "job": {
        ("post", "/api/v3/jobs", "202"): "$response.body#/id",
        ("get", "/api/v3/jobs", "200"): "$response.body#/items/0/id",
    },
    "task": {("get", "/api/v3/tasks", "200"): "$response.body#/items/0/id"},
    "task's job": {("get", "/api/v3/tasks", "200"): "$response.body#/items/0/jobId"},
    "policy": {
        ("post", "/api/v3/autoscaling/scalingPolicy", "200"): "$response.body#/id",
        ("get", "/api/v3/autoscaling/scalingPolicies", "200"): "$response.body#/items/0/id/id",
    },
}

#: The path parameter each kind of id fills, and the paths it is for.
ID_PARAMS = {
    "job": ("job_id", "/"),
    "task": ("task_id", "/"),
    "policy": ("policy_id", "/api/v3/autoscaling/"),
}


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
    *(
        Producer(method, path, status, param, expression, prefix)
        for kind, (param, prefix) in ID_PARAMS.items()
        for (method, path, status), expression in ID_SOURCES[kind].items()
    ),
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


@dataclass(frozen=True)
class FieldConsumer:
    """An operation that takes ids in its query or body rather than its path: each field
    named with the kind of id it takes (ID_SOURCES); a body field may be a dotted path."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: tuple[tuple[str, str], ...] = ()


FIELD_CONSUMERS = (
    FieldConsumer("post", "/api/v3/loadBalancers", query=(("jobId", "job"),)),
    FieldConsumer("delete", "/api/v3/loadBalancers", query=(("jobId", "job"),)),
    FieldConsumer("post", "/api/v3/autoscaling/scalingPolicy", body=(("jobId", "job"),)),
    FieldConsumer("put", "/api/v3/autoscaling/scalingPolicy", body=(("policyId.id", "policy"),)),
    FieldConsumer(
        "post", "/api/v3/tasks/move", body=(("taskId", "task"), ("sourceJobId", "task's job"))
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
    for consumer in FIELD_CONSUMERS:
        _link_fields(paths, consumer)
    return schema


def _link_fields(paths: dict[str, dict[str, Any]], consumer: FieldConsumer) -> None:
    """Links to `consumer` from every answer that carries all the ids it takes (one link
    fills them all, so that a task and its own job arrive together)."""
    target = paths.get(consumer.path, {}).get(consumer.method)
    if target is None or "operationId" not in target:
        return
    fields = [*consumer.query, *consumer.body]
    sources = set.intersection(*(set(ID_SOURCES[kind]) for _, kind in fields))
    for method, path, status in sorted(sources):
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        link: dict[str, Any] = {"operationId": target["operationId"]}
        if consumer.query:
            link["parameters"] = {
                f"query.{name}": ID_SOURCES[kind][(method, path, status)]
                for name, kind in consumer.query
            }
        if consumer.body:
            # merged into the generated body (the other fields stay generated)
            body: dict[str, Any] = {}
            for name, kind in consumer.body:
                *parents, last = name.split(".")
                node = body
                for parent in parents:
                    node = node.setdefault(parent, {})
                node[last] = ID_SOURCES[kind][(method, path, status)]
            link["requestBody"] = body
        response.setdefault("links", {})[_link_name(consumer.method, consumer.path)] = link
