"""The agent's HTTP API, which the master's direct cluster driver talks to.

The master pushes launches and kills and pulls task reports by long poll; owners (through
the api) read task output. Every handler that touches Docker or waits runs on a worker
thread, so one slow engine call or a long poll never stalls the others.

With the platform's shared secret set, every call but the health check and the metrics
must be signed (titus/model/signing.py): anything else on the host's network, a container
included, gets 401 and cannot launch, kill, claim away or acknowledge away a task. Orders
(launch, kill, claims, acknowledgements, report polls) also carry the caller's leadership
epoch; one from an epoch older than the newest this agent has obeyed is a deposed leader's,
refused with 409.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from titus.agent.clock import AGENT_CLOCK, SteadyClock
from titus.agent.daemon import MAX_POLL_WAIT_SEC, AgentDaemon
from titus.agent.logs import STREAMS, LogFiles
from titus.agent.metrics import agent_exposition, daemon_registry
from titus.coord.agent_calls import AGENT_HEADER
from titus.model.launch import TaskReportPage, TaskSpec
from titus.model.signing import HEADER, EpochGate, RequestVerifier, SignatureError
from titus.settings import Settings

MAX_LOG_READ = 16 * 1024 * 1024
#: Past any file a host keeps, and below what a file offset can hold.
MAX_LOG_OFFSET = 1 << 50


class CallGuard:
    """Checks who calls: the signature of every call, made for this agent under its own
    secret (titus/model/identity.py), and the epoch of every order."""

    def __init__(
        self,
        secret: bytes | None,
        agent_id: str = "",
        clock: SteadyClock = AGENT_CLOCK,
    ):
        # the time of a call is checked on the steady clock: a step of this host's wall
        # clock does not refuse the leader's calls; a clock wrong since the start is set
        # right once the corrected wall clock and the leader agree (clock.py)
        self.verifier = RequestVerifier(secret, clock=clock, keeper=clock) if secret else None
        self.agent_id = agent_id
        self.epochs = EpochGate()

    @classmethod
    def from_settings(cls, settings: Settings, agent_id: str) -> CallGuard:
        credentials = settings.agent_credentials(agent_id)
        return cls(credentials.secret if credentials else None, agent_id)

    async def _verify(self, request: Request) -> int:
        if self.verifier is None:
            return 0
        meant_for = request.headers.get(AGENT_HEADER, "")
        if request.headers.get(HEADER) and meant_for != self.agent_id:
            raise HTTPException(
                401,
                f"call refused: it is meant for agent {meant_for[:80]!r} ({AGENT_HEADER}), "
                f"this is agent {self.agent_id!r}",
            )
        query = request.scope.get("query_string", b"")
        target = request.scope.get("raw_path") or request.url.path.encode()
        if query:
            target += b"?" + query
        try:
            verified = self.verifier.verify(
                request.method,
                target.decode("latin-1"),
                await request.body(),
                request.headers.get(HEADER),
            )
        except SignatureError as e:
            raise HTTPException(401, f"call refused: {e}") from None
        return verified.epoch

    async def read(self, request: Request) -> None:
        """A signed call that orders nothing (task output for the API)."""
        await self._verify(request)

    async def order(self, request: Request) -> None:
        """A signed order from the leader of now."""
        epoch = await self._verify(request)
        if self.verifier is not None and not self.epochs.admit(epoch):
            raise HTTPException(
                409,
                f"order from leader epoch {epoch} refused: this agent follows epoch "
                f"{self.epochs.highest}",
            )


class Slots:
    """At most `size` long requests of one kind at once (log follows, report long polls),
    so they cannot take every worker thread from launches and kills; beyond, the caller
    is refused at once instead of queued."""

    def __init__(self, size: int, what: str, status: int):
        self.size = size
        self.what = what
        self.status = status
        self.held = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if self.held >= self.size:
                raise HTTPException(
                    self.status,
                    f"{self.held} {self.what} already run on this host, the most it takes; "
                    "retry later",
                    headers={"Retry-After": "2"},
                )
            self.held += 1

    def give(self) -> None:
        with self._lock:
            self.held -= 1

    def around(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """`chunks`, giving the slot back when the stream ends or the client goes."""
        try:
            yield from chunks
        finally:
            self.give()


def logs_router(
    log_files: LogFiles,
    is_running: Callable[[str], bool],
    guard: CallGuard,
    max_follows: int,
) -> APIRouter:
    """Task output as kept on this host: a byte range, or followed while the task runs
    (at most `max_follows` followers at once, 429 beyond). Served by the agent, and by
    each Mesos executor for its own task."""
    router = APIRouter()
    follows = Slots(max_follows, "log follows", 429)

    @router.get("/v1/tasks/{task_id}/logs", dependencies=[Depends(guard.read)])
    def logs(
        task_id: str,
        stream: str = "stdout",
        offset: int = Query(0, ge=0, le=MAX_LOG_OFFSET),
        length: int | None = Query(None, ge=0, le=MAX_LOG_READ),
        follow: bool = False,
    ) -> Response:
        if stream not in STREAMS:
            raise HTTPException(400, f"stream must be one of {', '.join(STREAMS)}")
        if not log_files.exists(task_id):
            raise HTTPException(404, f"no logs for task {task_id} on this host")
        if follow:
            follows.take()
            chunks: Iterator[bytes] = log_files.follow(
                task_id, stream, offset, lambda: is_running(task_id), length
            )
            return StreamingResponse(follows.around(chunks), media_type="text/plain")
        data = log_files.read(task_id, stream, offset, length or MAX_LOG_READ)
        return Response(data, media_type="text/plain")

    return router


def create_agent_app(daemon: AgentDaemon, guard: CallGuard | None = None) -> FastAPI:
    app = FastAPI(title="titus agent", version="1")
    guard = guard or CallGuard.from_settings(daemon.settings, daemon.agent_id)
    order = [Depends(guard.order)]
    polls = Slots(daemon.settings.agent_max_report_polls, "report long polls", 503)

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        info = daemon.info
        return {
            "status": "ok" if info.healthy else "unhealthy",
            "agentId": daemon.agent_id,
            "healthy": info.healthy,
            "healthReasons": list(info.health_reasons),
        }

    @app.put("/v1/tasks/claims", dependencies=order)
    async def claims(body: dict[str, list[str]]) -> dict[str, Any]:
        """The master names every task it believes runs here; the others are orphans,
        killed after the grace period unless claimed again. The answer also names the
        claimed tasks this agent has never heard of (`unknown`)."""
        ids = body.get("taskIds")
        if ids is None:
            raise HTTPException(400, "taskIds: required")
        orphans = await run_in_threadpool(daemon.claim, ids)
        return {"orphans": orphans, "unknown": daemon.unknown(ids)}

    @app.post("/v1/tasks", status_code=202, dependencies=order)
    async def launch(spec: TaskSpec) -> dict[str, str]:
        try:
            await run_in_threadpool(daemon.launch, spec)
        except ValueError as e:
            raise HTTPException(400, str(e)) from e
        except RuntimeError as e:
            raise HTTPException(503, str(e)) from e
        return {"taskId": spec.taskId}

    @app.delete("/v1/tasks/{task_id}", status_code=202, dependencies=order)
    async def kill(task_id: str, reason: str = "killed", message: str = "") -> dict[str, str]:
        if not await run_in_threadpool(daemon.kill, task_id, reason, message):
            raise HTTPException(404, f"task {task_id} is not on this agent")
        return {"taskId": task_id}

    @app.post("/v1/tasks/{task_id}/ack", dependencies=order)
    def ack(task_id: str) -> dict[str, Any]:
        return {"taskId": task_id, "acknowledged": daemon.ack(task_id)}

    @app.get("/v1/tasks", dependencies=order)
    async def reports(
        since: int = 0, wait: float = Query(0.0, ge=0.0, le=MAX_POLL_WAIT_SEC)
    ) -> TaskReportPage:
        if wait <= 0:
            return await run_in_threadpool(daemon.reports, since, wait)
        polls.take()
        try:
            return await run_in_threadpool(daemon.reports, since, wait)
        finally:
            polls.give()

    follows = daemon.settings.agent_max_log_follows
    app.include_router(logs_router(daemon.log_files, daemon.is_running, guard, follows))
    registry = daemon_registry(daemon)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        """Unsigned like the health check: a scrape orders nothing and reads no output."""
        return Response(agent_exposition(registry), media_type=CONTENT_TYPE_LATEST)

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
