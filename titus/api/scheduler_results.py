"""`/api/v3/scheduler/results/{taskId}`: "why is my task pending?"

The leader keeps, for each Accepted task it could not place, the summary of the last
attempt (hosts looked at, how many each placement rule refused) in the store; the API
and the master may be separate processes, so this router reads it from there.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from titus.api.deps import authenticated, service_of
from titus.api.schemas import ERROR_RESPONSES

router = APIRouter(
    prefix="/api/v3/scheduler",
    tags=["scheduler"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(authenticated)],
)


@router.get("/results/{task_id}")
async def scheduler_result(task_id: str, request: Request) -> dict[str, Any]:
    """The last placement attempt of a task: `hostsConsidered`, `refusedBy` (hosts per rule,
    each host counted under the first rule that refused it) and a one-line `message`.

    A task that was placed, or that the scheduler has not tried yet, has no failure to
    explain: the answer then says so in `message` with `placed` or `pending` set.
    """
    return await run_in_threadpool(service_of(request).scheduler_result, task_id)
