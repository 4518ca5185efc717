"""The API application: routers per resource, one error shape, health and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from titus.api import jobs, tasks
from titus.api.errors import ApiError, api_error_handler, error_body, invalid_request_handler
from titus.api.service import JobService
from titus.coord.base import Coordinator
from titus.model.job import JobDescriptor
from titus.model.validation import InvalidRequest, from_pydantic
from titus.settings import Settings
from titus.store.base import StoreUnavailable


def create_app(settings: Settings, store: Any, coord: Coordinator) -> FastAPI:
    app = FastAPI(
        title="titus",
        version="0.1.0",
        description="Batch and service jobs run as containers on a fleet of hosts.",
    )
    app.state.settings = settings
    app.state.jobs = JobService(store, coord)
    app.include_router(jobs.router)
    app.include_router(tasks.router)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(InvalidRequest, invalid_request_handler)

    @app.exception_handler(StoreUnavailable)
    async def unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse(
            error_body(503, f"store unavailable: {exc}"),
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(RequestValidationError)
    async def bad_params(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = from_pydantic(exc)  # type: ignore[arg-type]
        return JSONResponse(error_body(400, "invalid request", errors), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "leader": coord.leader_address() is not None}

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original_openapi()
        defs = JobDescriptor.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(defs.pop("$defs", {}))
        components["JobDescriptor"] = defs
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
