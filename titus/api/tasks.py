"""`/api/v3/tasks`: read, list and kill tasks, and read their logs from the host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from titus.api.auth import caller_key
from titus.api.body import read_json
from titus.api.deps import authenticated, caller_of, principal_of, service_of, settings_of, view_of
from titus.api.errors import ApiError
from titus.api.jobs import parse
from titus.api.listing import task_page
from titus.api.query import TASK_FILTERS, Criteria, Paging, csv
from titus.api.schemas import (
    ERROR_RESPONSES,
    Empty,
    JobAttributesBody,
    Page,
    TaskMoveBody,
    json_body,
    query_parameters,
)
from titus.api.slots import CallerSlots
from titus.coord.agent_calls import for_agent
from titus.model.job import Task

router = APIRouter(
    prefix="/api/v3",
    tags=["tasks"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(authenticated)],
)

OK: dict[int | str, dict[str, Any]] = {200: {"model": Empty, "description": "Done."}}


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


@router.get(
    "/tasks",
    response_model=Page,
    openapi_extra={"parameters": query_parameters(TASK_FILTERS, paging=True)},
)
async def list_tasks(request: Request) -> JSONResponse:
    """Active tasks matching every filter; with `jobIds`, those jobs' finished tasks too."""
    params = dict(request.query_params)
    criteria = Criteria.parse(params, TASK_FILTERS)
    paging = Paging.parse(params)
    page = await task_page(view_of(request), service_of(request), params, criteria, paging)
    return JSONResponse(paging.response(page.items, page.keys, page.has_more, page.total))


@router.get("/tasks/{task_id}", responses={200: {"model": Task, "description": "The task."}})
async def get_task(task_id: str, request: Request) -> JSONResponse:
    task = await run_in_threadpool(service_of(request).get_task, task_id)
    return JSONResponse(task.api_json())


@router.delete(
    "/tasks/{task_id}",
    responses=OK,
    openapi_extra={"parameters": query_parameters(["shrink", "preventMinSizeUpdate"])},
)
async def kill_task(task_id: str, request: Request) -> JSONResponse:
    """Kill a task; `shrink=true` also lowers the job's desired size by one."""
    params = request.query_params
    caller, reason = caller_of(request)
    await run_in_threadpool(
        lambda: service_of(request).kill_task(
            task_id,
            shrink=_flag(params.get("shrink")),
            prevent_min_size_update=_flag(params.get("preventMinSizeUpdate")),
            caller=caller,
            reason=reason,
            who=principal_of(request),
        )
    )
    return JSONResponse({}, status_code=200)


@router.put("/tasks/{task_id}/attributes", responses=OK, openapi_extra=json_body(JobAttributesBody))
async def put_task_attributes(task_id: str, request: Request) -> JSONResponse:
    body = await read_json(request, settings_of(request).max_body_bytes)
    attrs = parse(JobAttributesBody, body, "attributes").attributes
    caller, reason = caller_of(request)
    await run_in_threadpool(
        service_of(request).update_task_attributes,
        task_id,
        attrs,
        [],
        caller,
        reason,
        principal_of(request),
    )
    return JSONResponse({}, status_code=200)


@router.delete(
    "/tasks/{task_id}/attributes",
    responses=OK,
    openapi_extra={"parameters": query_parameters(["keys"], required=["keys"])},
)
async def delete_task_attributes(task_id: str, request: Request) -> JSONResponse:
    keys = csv(request.query_params.get("keys"))
    if not keys:
        raise ApiError(400, "give the attribute keys to delete as keys=a,b")
    caller, reason = caller_of(request)
    await run_in_threadpool(
        service_of(request).update_task_attributes,
        task_id,
        {},
        keys,
        caller,
        reason,
        principal_of(request),
    )
    return JSONResponse({}, status_code=200)


@router.post("/tasks/move", responses=OK, openapi_extra=json_body(TaskMoveBody))
async def move_task(request: Request) -> JSONResponse:
    """Ask the master to move a running task to another compatible service job."""
    body = await read_json(request, settings_of(request).max_body_bytes)
    move = parse(TaskMoveBody, body, "task move")
    caller, reason = caller_of(request)
    await run_in_threadpool(
        service_of(request).move_task,
        move.sourceJobId,
        move.targetJobId,
        move.taskId,
        caller,
        reason,
        principal_of(request),
    )
    return JSONResponse({}, status_code=200)


@router.get(
    "/tasks/{task_id}/logs",
    response_class=StreamingResponse,
    responses={200: {"description": "Output text.", "content": {"text/plain": {}}}},
    openapi_extra={"parameters": query_parameters(["stream", "offset", "length", "follow"])},
)
async def task_logs(task_id: str, request: Request) -> StreamingResponse:
    """The task's stdout and stderr as kept on its host; `follow=true` streams while it runs.
    Only its job's owners and admins may read it."""
    agent_id, address = await run_in_threadpool(
        service_of(request).logs_address, task_id, principal_of(request)
    )
    params = {
        k: v
        for k, v in request.query_params.items()
        if k in ("stream", "offset", "length", "follow")
    }
    url = f"{address}/v1/tasks/{task_id}/logs"
    # a stream holds a connection here and one to the host for as long as the client reads
    slots: CallerSlots = request.app.state.log_streams
    key = caller_key(request)
    slots.take(key, principal_of(request).name)
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, read=None), auth=request.app.state.agent_auth
    )
    upstream: httpx.Response | None = None
    released = False

    async def release() -> None:
        """Once, whichever comes first: the body's end, or the response's end (a client
        that went before the body started)."""
        nonlocal released
        if released:
            return
        released = True
        slots.give(key)
        if upstream is not None:
            await upstream.aclose()
        await client.aclose()

    try:
        outbound = client.build_request("GET", url, params=params, headers=for_agent(agent_id))
        upstream = await client.send(outbound, stream=True)
    except httpx.HTTPError as exc:
        await release()
        raise ApiError(503, f"host {agent_id} did not answer: {exc}") from None
    if upstream.status_code != 200:
        text = (await upstream.aread()).decode(errors="replace")
        await release()
        raise ApiError(upstream.status_code, f"logs of task {task_id}: {text[:300]}")
    streaming = upstream

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in streaming.aiter_raw():
                yield chunk
        finally:
            await release()

    return StreamingResponse(
        body(), media_type="text/plain; charset=utf-8", background=BackgroundTask(release)
    )
