"""The agent's HTTP API, which the master's direct cluster driver talks to.

The master pushes launches and kills and pulls task reports by long poll; owners (through
the api) read task output. Every handler that touches Docker or waits runs on a worker
thread, so one slow engine call or a long poll never stalls the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from titus.agent.daemon import MAX_POLL_WAIT_SEC, AgentDaemon
from titus.agent.logs import STREAMS, LogFiles
from titus.model.launch import TaskReportPage, TaskSpec

MAX_LOG_READ = 16 * 1024 * 1024


def logs_router(log_files: LogFiles, is_running: Callable[[str], bool]) -> APIRouter:
    """Task output as kept on this host: a byte range, or followed while the task runs.
    Served by the agent, and by each Mesos executor for its own task."""
    router = APIRouter()

    @router.get("/v1/tasks/{task_id}/logs")
    def logs(
        task_id: str,
        stream: str = "stdout",
        offset: int = Query(0, ge=0),
        length: int | None = Query(None, ge=0, le=MAX_LOG_READ),
        follow: bool = False,
    ) -> Response:
        if stream not in STREAMS:
            raise HTTPException(400, f"stream must be one of {', '.join(STREAMS)}")
        if not log_files.exists(task_id):
            raise HTTPException(404, f"no logs for task {task_id} on this host")
        if follow:
            chunks: Iterator[bytes] = log_files.follow(
                task_id, stream, offset, lambda: is_running(task_id), length
            )
            return StreamingResponse(chunks, media_type="text/plain")
        data = log_files.read(task_id, stream, offset, length or MAX_LOG_READ)
        return Response(data, media_type="text/plain")

    return router


def create_agent_app(daemon: AgentDaemon) -> FastAPI:
    app = FastAPI(title="titus agent", version="1")

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        info = daemon.info
        return {
            "status": "ok" if info.healthy else "unhealthy",
            "agentId": daemon.agent_id,
            "healthy": info.healthy,
            "healthReasons": list(info.health_reasons),
        }

    @app.put("/v1/tasks/claims")
    async def claims(body: dict[str, list[str]]) -> dict[str, Any]:
        """The master names every task it believes runs here; the others are orphans,
        killed after the grace period unless claimed again."""
        ids = body.get("taskIds")
        if ids is None:
            raise HTTPException(400, "taskIds: required")
        orphans = await run_in_threadpool(daemon.claim, ids)
        return {"orphans": orphans}

    @app.post("/v1/tasks", status_code=202)
    async def launch(spec: TaskSpec) -> dict[str, str]:
        try:
            await run_in_threadpool(daemon.launch, spec)
        except ValueError as e:
            raise HTTPException(400, str(e)) from e
        except RuntimeError as e:
            raise HTTPException(503, str(e)) from e
        return {"taskId": spec.taskId}

    @app.delete("/v1/tasks/{task_id}", status_code=202)
    async def kill(task_id: str, reason: str = "killed", message: str = "") -> dict[str, str]:
        if not await run_in_threadpool(daemon.kill, task_id, reason, message):
            raise HTTPException(404, f"task {task_id} is not on this agent")
        return {"taskId": task_id}

    @app.post("/v1/tasks/{task_id}/ack")
    def ack(task_id: str) -> dict[str, Any]:
        return {"taskId": task_id, "acknowledged": daemon.ack(task_id)}

    @app.get("/v1/tasks")
    async def reports(
        since: int = 0, wait: float = Query(0.0, ge=0.0, le=MAX_POLL_WAIT_SEC)
    ) -> TaskReportPage:
        return await run_in_threadpool(daemon.reports, since, wait)

    app.include_router(logs_router(daemon.log_files, daemon.is_running))
    return app


def run_agent_server(
    daemon: AgentDaemon, host: str, port: int, background: bool = False
) -> uvicorn.Server:
    """Serve the agent's API with uvicorn.

    `background=False` blocks until the server exits (signals stop it). With
    `background=True` it runs in a thread (uvicorn installs no signal handlers outside the
    main thread) and returns once listening; set `server.should_exit = True` to stop it.
    """
    app = create_agent_app(daemon)
    if background:
        return serve_in_background(app, host, port)
    server = _server(app, host, port)
    server.run()
    return server


def _server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )


def serve_in_background(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """Run `app` in a thread and return once it listens (port 0: any free port, see
    `bound_port`)."""
    server = _server(app, host, port)
    thread = threading.Thread(target=server.run, name=f"http-{port}", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError(f"HTTP server did not start on {host}:{port}")
    return server


def bound_port(server: uvicorn.Server) -> int:
    return int(server.servers[0].sockets[0].getsockname()[1])
