"""Filters, paging and projection for job and task listings.

A query is compiled once per request into a list of predicates (only the filters given),
so matching 10,000 jobs costs a few comparisons each. Unknown parameter names and bad
values are a 400 that names them.

Paging uses an opaque cursor that encodes the sort key (creation time, id) of the last
item returned: the next page starts strictly after it, so jobs created or finished between
two pages never shift items into or out of the pages already read.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from titus.api.errors import ApiError
from titus.model.job import Job, Task
from titus.model.names import DEFAULT_CAPACITY_GROUP
from titus.model.states import SYSTEM_ERRORS, JobState, TaskState
from titus.model.validation import FieldError

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

Key = tuple[int, str]


def csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _flag(value: str) -> bool:
    low = value.lower()
    if low in ("1", "true", "yes"):
        return True
    if low in ("0", "false", "no", ""):
        return False
    raise ApiError(400, f"'{value}' is not a boolean", [FieldError("skipSystemFailures", value)])


def _enum_values(name: str, value: str, allowed: list[str]) -> set[str]:
    """The comma list in `value`, each matched case-insensitively to one of `allowed`."""
    by_lower = {a.lower(): a for a in allowed}
    out = set()
    for item in csv(value):
        if item.lower() not in by_lower:
            raise ApiError(
                400,
                f"invalid {name} '{item}': one of {', '.join(allowed)}",
                [FieldError(name, f"'{item}' is not one of {', '.join(allowed)}")],
            )
        out.add(by_lower[item.lower()])
    return out


JobCheck = Callable[[Job], bool]
TaskCheck = Callable[[Task], bool]


@dataclass
class Criteria:
    """The filters of one request, compiled to predicates."""

    params: Mapping[str, str]
    job_checks: list[JobCheck] = field(default_factory=list)
    task_checks: list[TaskCheck] = field(default_factory=list)

    @classmethod
    def parse(cls, params: Mapping[str, str], allowed: set[str]) -> Criteria:
        unknown = sorted(k for k in params if k not in allowed and k not in PAGING)
        if unknown:
            raise ApiError(
                400,
                f"unknown query parameter(s): {', '.join(unknown)}",
                [FieldError(k, "unknown query parameter") for k in unknown],
            )
        c = cls(params)
        c._compile()
        return c

    @property
    def empty(self) -> bool:
        return not self.job_checks and not self.task_checks

    def _value(self, name: str) -> str | None:
        value = self.params.get(name)
        if name == "applicationName" and not value:
            value = self.params.get("appName")
        return value or None

    def _compile(self) -> None:
        jc = self.job_checks
        v = self._value
        if ids := v("jobIds"):
            wanted = set(csv(ids))
            jc.append(lambda j: j.id in wanted)
        simple: list[tuple[str, Callable[[Job], str]]] = [
            ("owner", lambda j: j.jobDescriptor.owner.teamEmail),
            ("applicationName", lambda j: j.jobDescriptor.applicationName),
            ("imageName", lambda j: j.jobDescriptor.container.image.name),
            ("imageTag", lambda j: j.jobDescriptor.container.image.tag or ""),
            ("capacityGroup", lambda j: j.jobDescriptor.capacityGroup or DEFAULT_CAPACITY_GROUP),
            ("jobGroupStack", lambda j: j.jobDescriptor.jobGroupInfo.stack),
            ("jobGroupDetail", lambda j: j.jobDescriptor.jobGroupInfo.detail),
            ("jobGroupSequence", lambda j: j.jobDescriptor.jobGroupInfo.sequence),
        ]
        for name, get in simple:
            if (want := v(name)) is not None:
                jc.append(lambda j, get=get, want=want: get(j) == want)  # type: ignore[misc]
        if jt := v("jobType"):
            types = _enum_values("jobType", jt, ["BATCH", "SERVICE"])
            jc.append(lambda j: j.jobDescriptor.job_type in types)
        if js := v("jobState"):
            states = _enum_values("jobState", js, [s.value for s in JobState])
            jc.append(lambda j: j.status.state.value in states)
        if attrs := v("attributes"):
            jc.append(self._attributes_check(attrs))
        elif v("attributes.op"):
            self._attributes_op()

        tc = self.task_checks
        if tids := v("taskIds"):
            wanted_tasks = set(csv(tids))
            tc.append(lambda t: t.id in wanted_tasks)
        if ts := v("taskStates"):
            tstates = _enum_values("taskStates", ts, [s.value for s in TaskState])
            tc.append(lambda t: t.status.state.value in tstates)
        if reasons := v("taskStateReasons"):
            wanted_reasons = set(csv(reasons))
            tc.append(lambda t: t.status.reasonCode in wanted_reasons)
        if (skip := v("skipSystemFailures")) is not None and _flag(skip):
            system = {str(r) for r in SYSTEM_ERRORS}
            tc.append(
                lambda t: (
                    not (t.status.state == TaskState.FINISHED and t.status.reasonCode in system)
                )
            )

    def _attributes_op(self) -> str:
        op = (self.params.get("attributes.op") or "and").lower()
        if op not in ("and", "or"):
            raise ApiError(
                400,
                f"attributes.op must be 'and' or 'or', not '{op}'",
                [FieldError("attributes.op", "must be 'and' or 'or'")],
            )
        return op

    def _attributes_check(self, spec: str) -> JobCheck:
        op = self._attributes_op()
        pairs = []
        for item in csv(spec):
            key, sep, value = item.partition(":")
            pairs.append((key, value if sep else None))

        def one(attrs: Mapping[str, str], key: str, value: str | None) -> bool:
            return key in attrs and (value is None or attrs[key] == value)

        if op == "and":
            return lambda j: all(one(j.jobDescriptor.attributes, k, x) for k, x in pairs)
        return lambda j: any(one(j.jobDescriptor.attributes, k, x) for k, x in pairs)

    def job_matches(self, job: Job) -> bool:
        return all(check(job) for check in self.job_checks)

    def task_matches(self, task: Task) -> bool:
        return all(check(task) for check in self.task_checks)


def decimal(raw: str, max_digits: int = 12) -> int | None:
    """A non-negative whole number written in ASCII digits, else None.

    `str.isdigit` also accepts '²' and other Unicode digits that `int` refuses, and `int`
    refuses more than 4,300 digits: both would surface as a 500 instead of a 400."""
    if raw.isascii() and raw.isdigit() and len(raw) <= max_digits:
        return int(raw)
    return None


def encode_cursor(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_cursor(cursor: str) -> Key:
    try:
        ts, ident = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return int(ts), str(ident)
    except Exception:
        raise ApiError(400, "invalid cursor", [FieldError("cursor", "not a cursor")]) from None


@dataclass(frozen=True)
class Paging:
    """Where a page starts and how long it is: after the `cursor`'s key, or else `page`
    pages of `pageSize` in; `fields` is the projection of its items."""

    size: int
    cursor: str | None
    after: Key | None
    skip: int
    fields: str | None

    @classmethod
    def parse(cls, params: Mapping[str, str], default_size: int = 10) -> Paging:
        size = page_size(params, default_size)
        cursor = params.get("cursor") or None
        after = decode_cursor(cursor) if cursor else None
        skip = 0 if cursor else _page_number(params) * size
        return cls(size, cursor, after, skip, params.get("fields"))

    def response(
        self, items: list[dict[str, Any]], keys: list[Key], has_more: bool, total: int
    ) -> dict[str, Any]:
        """The listing's body: the page's items, projected, and where the next page starts."""
        return {
            "items": [project(item, self.fields) for item in items],
            "pagination": {
                "hasMore": has_more,
                "cursor": encode_cursor(keys[-1]) if keys else (self.cursor or ""),
                "totalItems": total,
            },
        }


def page_size(params: Mapping[str, str], default: int) -> int:
    """`pageSize` of a listing: a plain decimal from 1 to MAX_PAGE_SIZE, else a 400."""
    raw = params.get("pageSize")
    if raw is None:
        return default
    size = decimal(raw)
    if size is None or not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(
            400,
            f"pageSize must be a number from 1 to {MAX_PAGE_SIZE}",
            [FieldError("pageSize", f"must be from 1 to {MAX_PAGE_SIZE}")],
        )
    return size


def _page_number(params: Mapping[str, str]) -> int:
    raw = params.get("page")
    if raw is None:
        return 0
    page = decimal(raw)
    if page is None or page > 1_000_000:
        raise ApiError(400, "page must be a number", [FieldError("page", "must be a number")])
    return page


def project(item: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """Keep only the comma-listed dotted paths (plus id) of an item."""
    if not fields:
        return item
    out: dict[str, Any] = {"id": item.get("id")}
    for path in csv(fields):
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
            nxt = dst.setdefault(part, {})
            if not isinstance(nxt, dict):
                break
            dst = nxt
        else:
            dst[parts[-1]] = src
    return out


def job_key(job: Job) -> Key:
    first = job.statusHistory[0] if job.statusHistory else job.status
    return first.timestamp, job.id


def task_key(task: Task) -> Key:
    first = task.statusHistory[0] if task.statusHistory else task.status
    return first.timestamp, task.id
