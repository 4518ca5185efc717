"""The API application: routers per resource, the gate (auth, rate limits), the job view
and its observe hub, one error shape, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from titus.api import (
    agents,
    autoscaling_routes,
    capacity,
    dashboard,
    eviction_routes,
    jobs,
    loadbalancers,
    observe,
    quarantine,
    scheduler_results,
    tasks,
)
from titus.api.admission import Limits
from titus.api.auth import Access, TokenAuth
from titus.api.autoscaling import AutoScalingService
from titus.api.aws_admission import AwsAdmission
from titus.api.cluster import ClusterService
from titus.api.creates import CreateEndpoint
from titus.api.descriptor_schema import describe_job_rules
from titus.api.errors import ApiError, error_body, refusal_handler
from titus.api.eviction import EvictionService
from titus.api.gate import Gate
from titus.api.loadbalancers import LoadBalancerService
from titus.api.metrics import METRICS_CONTENT_TYPE, RequestMetrics, RouteTemplates, exposition
from titus.api.observe import Hub
from titus.api.openapi_links import add_links
from titus.api.quarantine import QuarantineService
from titus.api.ratelimit import RateLimiter
from titus.api.schemas import (
    CapacityGroup,
    CapacityRequest,
    Health,
    JobAttributesBody,
    TaskMoveBody,
)
from titus.api.service import JobService
from titus.api.slots import CallerSlots
from titus.api.view import ActiveView
from titus.coord.agent_calls import agent_auth
from titus.coord.base import Coordinator
from titus.model.job import DisruptionBudget, JobDescriptor, ServiceJobProcesses
from titus.model.json_schema import describe_decimal_strings
from titus.model.validation import Bounds, InvalidRequest, from_pydantic
from titus.settings import Settings
from titus.store.base import JobStore, StoreError, StoreRefused, StoreUnavailable
from titus.store.quarantine import QUARANTINE

log = logging.getLogger("titus.api")

BODY_MODELS: list[type[BaseModel]] = [
    JobDescriptor,
    CapacityRequest,
    JobAttributesBody,
    TaskMoveBody,
    CapacityGroup,
    ServiceJobProcesses,
    DisruptionBudget,
    *autoscaling_routes.BODY_MODELS,
]


#: The framework's own OpenTelemetry instrumentation, off: the API's metrics are its
#: Prometheus ones (metrics.py), and asking per request whether a tracer is configured
#: costs every request (older framework versions have neither the option nor the cost).
NO_OPENTELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


def bounds_of(settings: Settings) -> Bounds:
    return Bounds(
        cpu_min=settings.cpu_min,
        cpu_max=settings.cpu_max,
        memory_mb_min=settings.memory_mb_min,
        memory_mb_max=settings.memory_mb_max,
        disk_mb_min=settings.disk_mb_min,
        disk_mb_max=settings.disk_mb_max,
        network_mbps_min=settings.network_mbps_min,
        network_mbps_max=settings.network_mbps_max,
        gpu_max=settings.gpu_max,
    )


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method any route serves at `path` (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in app.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


class StoreProbe:
    """Whether the store answers a small read, asked at most once per PROBE_EVERY_SEC and
    for at most PROBE_TIMEOUT_SEC, so a load balancer polling /health costs the store
    nothing and a hung store cannot hang the health check."""

    PROBE_EVERY_SEC = 1.0
    PROBE_TIMEOUT_SEC = 2.0

    def __init__(self, store: Any) -> None:
        self.store = store
        self._checked = float("-inf")
        self._state = "ok"

    async def state(self) -> str:
        now = time.monotonic()
        if now - self._checked < self.PROBE_EVERY_SEC:
            return self._state
        self._checked = now
        try:
            await asyncio.wait_for(
                run_in_threadpool(self.store.current_epoch), self.PROBE_TIMEOUT_SEC
            )
            self._state = "ok"
        except TimeoutError:
            self._state = f"no answer within {self.PROBE_TIMEOUT_SEC:g} s"
        except StoreError as exc:
            self._state = f"unavailable ({exc})"
        return self._state


def create_app(settings: Settings, store: JobStore, coord: Coordinator) -> FastAPI:
    view = ActiveView(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """The one producer: follow the change feed so watchers get changes promptly."""

        async def follow() -> None:
            while True:
                try:
                    await view.refresh()
                except Exception:  # noqa: BLE001 - keep following; the store may come back
                    log.exception("reading the change feed failed")
                await asyncio.sleep(settings.change_poll_sec)

        task = asyncio.create_task(follow())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="titus",
        version="0.1.0",
        description="Batch and service jobs run as containers on a fleet of hosts.",
        lifespan=lifespan,
        **NO_OPENTELEMETRY,
    )
    app.state.settings = settings
    # calls to agents (task output) are signed with the platform's secret, when set
    app.state.agent_auth = agent_auth(settings.shared_secret())
    app.state.view = view
    app.state.hub = Hub(
        view,
        settings.observe_queue_size,
        settings.observe_history,
        max_per_caller=settings.observe_max_per_caller,
    )
    app.state.log_streams = CallerSlots(
        "log streams",
        per_caller=settings.api_max_log_streams_per_caller,
        total=settings.api_max_log_streams,
        per_caller_rule="api_max_log_streams_per_caller",
        total_rule="api_max_log_streams",
    )
    limits = Limits.from_settings(
        settings, store, active_jobs=lambda: len(view.jobs), task_demand=view.task_demand
    )
    app.state.jobs = JobService(
        store,
        coord,
        bounds=bounds_of(settings),
        limits=limits,
        idempotency_ttl_sec=settings.idempotency_ttl_sec,
        aws=AwsAdmission.from_settings(settings),
        catch_up=view.refresh,
        on_created=view.take_created,
    )
    app.state.cluster = ClusterService(store, coord)
    app.state.quarantine = QuarantineService(store)
    app.state.load_balancers = LoadBalancerService(
        app.state.jobs, loadbalancers.elbv2_client(settings.load_balancer_region)
    )
    app.state.autoscaling = AutoScalingService(
        app.state.jobs, store, settings.autoscaling_max_policies_per_job
    )
    app.state.eviction = EvictionService(
        store, view, app.state.jobs.get_job, settings.eviction_system_per_minute
    )
    auth = TokenAuth.from_file(settings.auth_tokens_file) if settings.auth_tokens_file else None
    app.state.access = Access(auth, settings.auth_reads)
    limiter = RateLimiter(settings.rate_limit_buckets)
    build_stack = app.build_middleware_stack
    templates = RouteTemplates(lambda: app.openapi())

    def build_middleware_stack() -> Any:
        """The gate outside everything else: a refused request (401, 403, 429) costs one
        dict lookup and two sends, not a pass through the framework's middleware, so a
        runaway caller's refused flood takes little from the event loop other callers
        share. Right behind it, creates are served without the framework (creates.py)."""
        creates = CreateEndpoint(
            build_stack(), app.state.jobs, app.state.access, settings.max_body_bytes
        )
        gate = Gate(
            creates,
            auth=auth,
            limiter=limiter,
            in_flight_per_caller=settings.api_in_flight_per_caller,
        )
        return RequestMetrics(gate, templates, limiter)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    app.include_router(observe.router)
    app.include_router(jobs.router)
    app.include_router(tasks.router)
    app.include_router(capacity.router)
    app.include_router(scheduler_results.router)
    app.include_router(agents.router)
    app.include_router(dashboard.router)
    app.include_router(eviction_routes.router)
    app.include_router(loadbalancers.router)
    app.include_router(quarantine.router)
    app.include_router(autoscaling_routes.router)
    for error in (ApiError, InvalidRequest, StoreUnavailable, StoreRefused, StoreError):
        app.add_exception_handler(error, refusal_handler)

    @app.exception_handler(RequestValidationError)
    async def bad_params(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = from_pydantic(exc)  # type: ignore[arg-type]
        return JSONResponse(error_body(400, "invalid request", errors), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail)),
            status_code=exc.status_code,
            headers=headers,
        )

    probe = StoreProbe(store)

    @app.get(
        "/health",
        tags=["operations"],
        response_model=Health,
        responses={503: {"model": Health, "description": "The store does not answer."}},
    )
    async def health() -> JSONResponse:
        """Cheap enough to poll: the store is asked at most once a second, briefly."""
        reasons: list[str] = []
        store_state = await probe.state()
        if store_state != "ok":
            reasons.append(f"store: {store_state}")
        leader = coord.leader_address() is not None
        if not leader:
            reasons.append("no leader is known")
        agents = coord.agents()
        healthy = sum(1 for a in agents if a.healthy)
        if not healthy:
            reasons.append("no healthy host is registered")
        quarantined = len(QUARANTINE)
        if quarantined:
            reasons.append(f"{quarantined} stored records cannot be read (/api/v3/quarantine)")
        status = "unavailable" if store_state != "ok" else "degraded" if reasons else "ok"
        body = Health(
            status=status,
            leader=leader,
            store=store_state,
            agents=len(agents),
            healthyAgents=healthy,
            quarantined=quarantined,
            reasons=reasons,
        )
        return JSONResponse(body.model_dump(), status_code=503 if status == "unavailable" else 200)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(exposition(app.state.hub), media_type=METRICS_CONTENT_TYPE)

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in BODY_MODELS:
            defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(defs.pop("$defs", {}))
            components[model.__name__] = defs
        describe_job_rules(components, bounds_of(settings))
        describe_decimal_strings(components)
        app.openapi_schema = add_links(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
