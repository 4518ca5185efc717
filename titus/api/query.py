"""Filters, paging and projection for job and task listings.

Paging uses an opaque cursor that encodes the sort key (creation time, id) of the last
item returned: the next page starts strictly after it, so jobs created or finished between
two pages never shift items into or out of the pages already read.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from titus.api.errors import ApiError
from titus.model.job import Job, Task

JOB_FILTERS = {
    "jobIds",
    "owner",
    "applicationName",
    "appName",
    "imageName",
    "imageTag",
    "capacityGroup",
    "jobGroupStack",
    "jobGroupDetail",
    "jobGroupSequence",
    "jobType",
    "attributes",
    "attributes.op",
    "jobState",
}
TASK_FILTERS = JOB_FILTERS | {"taskIds", "taskStates", "taskStateReasons", "skipSystemFailures"}
PAGING = {"pageSize", "cursor", "fields", "page"}
MAX_PAGE_SIZE = 1000


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@dataclass
class Criteria:
    params: Mapping[str, str]

    @classmethod
    def parse(cls, params: Mapping[str, str], allowed: set[str]) -> Criteria:
        unknown = sorted(k for k in params if k not in allowed and k not in PAGING)
        if unknown:
            raise ApiError(400, f"unknown query parameter(s): {', '.join(unknown)}")
        return cls(params)

    def get(self, name: str) -> str | None:
        value = self.params.get(name)
        if name == "applicationName" and value is None:
            value = self.params.get("appName")
        return value

    def job_matches(self, job: Job) -> bool:
        d = job.jobDescriptor
        checks: list[tuple[str, Callable[[str], bool]]] = [
            ("jobIds", lambda v: job.id in _csv(v)),
            ("owner", lambda v: d.owner.teamEmail == v),
            ("applicationName", lambda v: d.applicationName == v),
            ("imageName", lambda v: d.container.image.name == v),
            ("imageTag", lambda v: (d.container.image.tag or "") == v),
            ("capacityGroup", lambda v: (d.capacityGroup or "DEFAULT") == v),
            ("jobGroupStack", lambda v: d.jobGroupInfo.stack == v),
            ("jobGroupDetail", lambda v: d.jobGroupInfo.detail == v),
            ("jobGroupSequence", lambda v: d.jobGroupInfo.sequence == v),
            ("jobType", lambda v: d.job_type == v.upper()),
            ("jobState", lambda v: job.status.state.value in _csv(v)),
            ("attributes", lambda v: self._attributes_match(d.attributes, v)),
        ]
        for name, check in checks:
            value = self.get(name)
            if value is not None and value != "" and not check(value):
                return False
        return True

    def _attributes_match(self, attrs: Mapping[str, str], spec: str) -> bool:
        op = (self.params.get("attributes.op") or "and").lower()
        results = []
        for item in _csv(spec):
            key, sep, value = item.partition(":")
            results.append(key in attrs and (not sep or attrs[key] == value))
        return all(results) if op == "and" else any(results)

    def task_matches(self, task: Task) -> bool:
        ids = self.params.get("taskIds")
        if ids and task.id not in _csv(ids):
            return False
        states = self.params.get("taskStates")
        if states and task.status.state.value not in _csv(states):
            return False
        reasons = self.params.get("taskStateReasons")
        return not (reasons and task.status.reasonCode not in _csv(reasons))


T = TypeVar("T")


def _encode(key: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def _decode(cursor: str) -> tuple[int, str]:
    try:
        ts, ident = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return int(ts), str(ident)
    except Exception:
        raise ApiError(400, "invalid cursor") from None


def page_size(params: Mapping[str, str], default: int = 10) -> int:
    raw = params.get("pageSize")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise ApiError(400, f"pageSize must be a number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def paginate(
    items: Iterable[T], params: Mapping[str, str], key: Callable[[T], tuple[int, str]]
) -> tuple[list[T], dict[str, Any]]:
    ordered = sorted(items, key=key)
    total = len(ordered)
    cursor = params.get("cursor")
    if cursor:
        after = _decode(cursor)
        ordered = [i for i in ordered if key(i) > after]
    size = page_size(params)
    page = ordered[:size]
    has_more = len(ordered) > size
    pagination: dict[str, Any] = {
        "hasMore": has_more,
        "cursor": _encode(key(page[-1])) if page else (cursor or ""),
        "totalItems": total,
    }
    return page, pagination


def project(item: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """Keep only the comma-listed dotted paths (plus id) of an item."""
    if not fields:
        return item
    out: dict[str, Any] = {"id": item.get("id")}
    for path in _csv(fields):
        src: Any = item
        parts = path.split(".")
        for part in parts:
            if not isinstance(src, dict) or part not in src:
                src = None
                break
            src = src[part]
        if src is None:
            continue
        dst = out
        for part in parts[:-1]:
            dst = dst.setdefault(part, {})
        dst[parts[-1]] = src
    return out


def job_key(job: Job) -> tuple[int, str]:
    first = job.statusHistory[0] if job.statusHistory else job.status
    return first.timestamp, job.id


def task_key(task: Task) -> tuple[int, str]:
    first = task.statusHistory[0] if task.statusHistory else task.status
    return first.timestamp, task.id
