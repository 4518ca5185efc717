"""`/api/v3/tasks`: read, list and kill tasks, and read their logs from the host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from titus.api.deps import caller_of, service_of
from titus.api.errors import ApiError
from titus.api.query import TASK_FILTERS, Criteria, _csv, paginate, project, task_key
from titus.model.job import Task

router = APIRouter(prefix="/api/v3", tags=["tasks"])


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


@router.get("/tasks")
async def list_tasks(request: Request) -> dict[str, Any]:
    params = dict(request.query_params)
    criteria = Criteria.parse(params, TASK_FILTERS)
    store = service_of(request).store

    def load() -> list[Task]:
        job_ids = _csv(params.get("jobIds"))
        if job_ids:
            # for named jobs, finished tasks (retries, replaced tasks) are shown too
            tasks = [t for j in job_ids for t in store.list_tasks(j, include_archived=True)]
            jobs = {j: store.get_job(j) for j in job_ids}
        else:
            tasks = store.list_active_tasks()
            jobs = {j.id: j for j in store.list_active_jobs()}
        out = []
        for t in tasks:
            job = jobs.get(t.jobId)
            if job is not None and criteria.job_matches(job) and criteria.task_matches(t):
                out.append(t)
        return out

    tasks = await run_in_threadpool(load)
    page, pagination = paginate(tasks, params, task_key)
    return {
        "items": [project(t.api_json(), params.get("fields")) for t in page],
        "pagination": pagination,
    }


@router.get("/tasks/{task_id}")
async def get_task(task_id: str, request: Request) -> dict[str, Any]:
    task = await run_in_threadpool(service_of(request).get_task, task_id)
    return task.api_json()


@router.delete("/tasks/{task_id}")
async def kill_task(task_id: str, request: Request) -> JSONResponse:
    params = request.query_params
    caller, reason = caller_of(request)
    await run_in_threadpool(
        lambda: service_of(request).kill_task(
            task_id,
            shrink=_flag(params.get("shrink")),
            prevent_min_size_update=_flag(params.get("preventMinSizeUpdate")),
            caller=caller,
            reason=reason,
        )
    )
    return JSONResponse({}, status_code=200)


@router.get("/tasks/{task_id}/logs")
async def task_logs(task_id: str, request: Request) -> StreamingResponse:
    """The task's stdout and stderr as kept on its host; `follow=true` streams while it runs."""
    service = service_of(request)
    task = await run_in_threadpool(service.get_task, task_id)
    agent_id = task.agent_id
    if not agent_id:
        raise ApiError(404, f"task {task_id} has not been placed on a host yet: no logs")
    agents = {a.id: a for a in await run_in_threadpool(service.coord.agents)}
    agent = agents.get(agent_id)
    if agent is None:
        raise ApiError(503, f"host {agent_id} of task {task_id} is not reachable now")
    params = {
        k: v
        for k, v in request.query_params.items()
        if k in ("stream", "offset", "length", "follow")
    }
    url = f"{agent.address}/v1/tasks/{task_id}/logs"
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
    try:
        upstream = await client.send(client.build_request("GET", url, params=params), stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        raise ApiError(503, f"host {agent_id} did not answer: {exc}") from None
    if upstream.status_code != 200:
        text = (await upstream.aread()).decode(errors="replace")
        await upstream.aclose()
        await client.aclose()
        raise ApiError(upstream.status_code, f"logs of task {task_id}: {text[:300]}")

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()

    return StreamingResponse(body(), media_type="text/plain; charset=utf-8")
