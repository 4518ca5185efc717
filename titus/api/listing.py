"""One page of tasks, as every transport lists them: active tasks from the API's view, or,
when the query names jobs, those jobs' tasks from the store (finished ones too, since the
view holds active tasks only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from titus.api.query import Criteria, Key, Paging, csv, task_key
from titus.api.service import JobService
from titus.api.view import ActiveView, SortedIndex


@dataclass(frozen=True)
class TaskPage:
    items: list[dict[str, Any]]  # the tasks' API JSON, in page order
    keys: list[Key]
    total: int
    has_more: bool
    #: The items are the view's own documents (replaced, never changed): a transport may
    #: cache what it makes of them.
    from_view: bool


async def task_page(
    view: ActiveView,
    service: JobService,
    params: Mapping[str, str],
    criteria: Criteria,
    paging: Paging,
) -> TaskPage:
    job_ids = csv(params.get("jobIds"))
    if job_ids:
        tasks = await run_in_threadpool(service.tasks_of_jobs, job_ids, criteria)
        keys, total, more = SortedIndex([task_key(t) for t in tasks.values()]).page(paging)
        return TaskPage([tasks[k[1]].api_json() for k in keys], keys, total, more, False)
    await view.refresh()

    def matches(key: Key) -> bool:
        task = view.tasks[key[1]]
        job = view.jobs.get(task.jobId)
        return job is not None and criteria.job_matches(job) and criteria.task_matches(task)

    keys, total, more = view.task_order.page(paging, matches)
    return TaskPage([view.task_json[k[1]] for k in keys], keys, total, more, True)
