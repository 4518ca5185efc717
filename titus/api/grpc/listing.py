"""FindJobs and FindTasks: Titus's query messages run on the REST listings' machinery.

`filteringCriteria` holds the same names and value syntax as the REST query parameters
(Titus defined both alike), so a query is compiled by the same Criteria, paged by the
same Paging (cursor or page number) over the same view, and refused with the same field
errors. Only the envelope differs: Titus's Pagination carries the page asked for and the
number of pages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from titus.api.auth import OPEN, Principal
from titus.api.grpc.convert import job_message, task_message
from titus.api.grpc.gen import titus_base_pb2 as base
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.listing import task_page
from titus.api.policy import job_doc
from titus.api.query import JOB_FILTERS, TASK_FILTERS, Criteria, Key, Paging
from titus.api.service import JobService
from titus.api.view import ActiveView


def paging_of(page: base.Page) -> Paging:
    """A Page message as REST's paging parameters (zero means not given)."""
    params: dict[str, str] = {}
    if page.pageSize:
        params["pageSize"] = str(page.pageSize)
    if page.pageNumber:
        params["page"] = str(page.pageNumber)
    if page.cursor:
        params["cursor"] = page.cursor
    return Paging.parse(params)


def pagination(
    page: base.Page, paging: Paging, keys: list[Key], more: bool, total: int
) -> base.Pagination:
    cursor = paging.response([], keys, more, total)["pagination"]["cursor"]
    return base.Pagination(
        currentPage=base.Page(pageNumber=page.pageNumber, pageSize=paging.size, cursor=page.cursor),
        hasMore=more,
        totalPages=math.ceil(total / paging.size) if paging.size else 0,
        totalItems=total,
        cursor=cursor,
    )


async def find_jobs(
    view: ActiveView, query: pb.JobQuery, who: Principal = OPEN
) -> pb.JobQueryResult:
    """A page of active jobs, each as `who` may read it (policy.job_doc)."""
    criteria = Criteria.parse(dict(query.filteringCriteria), JOB_FILTERS)
    paging = paging_of(query.page)
    await view.refresh()
    jobs = view.jobs
    matches = None if criteria.empty else lambda key: criteria.job_matches(jobs[key[1]])
    keys, total, more = view.job_order.page(paging, matches)
    fields = list(query.fields)
    return pb.JobQueryResult(
        items=[
            _shown(job_doc(who, view.job_json[k[1]]), view.job_json[k[1]], fields) for k in keys
        ],
        pagination=pagination(query.page, paging, keys, more, total),
    )


def _shown(doc: dict[str, Any], original: dict[str, Any], fields: list[str]) -> pb.Job:
    """A job message; the view's converted one when nothing was hidden from the caller."""
    return job_message(doc, fields, reuse=doc is original)


async def find_tasks(
    view: ActiveView, service: JobService, query: pb.TaskQuery
) -> pb.TaskQueryResult:
    """Active tasks matching the criteria; with `jobIds`, those jobs' finished tasks too."""
    params: Mapping[str, str] = dict(query.filteringCriteria)
    criteria = Criteria.parse(params, TASK_FILTERS)
    paging = paging_of(query.page)
    fields = list(query.fields)
    page = await task_page(view, service, params, criteria, paging)
    items = [task_message(t, fields, reuse=page.from_view) for t in page.items]
    return pb.TaskQueryResult(
        items=items,
        pagination=pagination(query.page, paging, page.keys, page.has_more, page.total),
    )
