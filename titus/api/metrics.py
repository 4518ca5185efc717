"""The API's Prometheus metrics: requests by route and status, how long they take, the
rate limiter's refusals and the observe stream's watchers.

Labels stay bounded whatever callers send: a request is labelled with the template of the
route that served it (`/api/v3/jobs/{job_id}`, never a job id), a path no route knows with
`unmatched`, and a refusal with the bucket's name from settings. Latency is measured to
the start of the response, so a long-lived stream (observe, followed logs) counts as the
time it took to begin, not the hours it stayed open.

`RequestMetrics` wraps the whole application, the gate included, so refusals (401, 403,
429) are counted like every other answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from titus.api.observe import Hub
from titus.api.ratelimit import RateLimiter

REQUESTS = Counter(
    "titus_api_requests_total",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "titus_api_request_duration_seconds",
    "From a request's arrival to the start of its response, by method and route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_LIMITED = Counter(
    "titus_api_rate_limited_total",
    "Requests refused with 429 by the rate limiter, by bucket",
    ["bucket"],
)
OBSERVE_WATCHERS = Gauge(
    "titus_api_observe_watchers", "Clients currently following the observe stream"
)

UNMATCHED = "unmatched"
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteTemplates:
    """The route template of a request that never reached routing (the gate refused it),
    from the paths of the API's OpenAPI document, compiled once on first use."""

    def __init__(self, openapi: Callable[[], dict[str, Any]]):
        self.openapi = openapi
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def of(self, scope: Scope) -> str:
        path = getattr(scope.get("route"), "path", None)  # recorded by routing
        if isinstance(path, str):
            return path
        if self._compiled is None:
            paths = self.openapi().get("paths", {})
            self._compiled = [(compile_path(t)[0], t) for t in paths]
        for regex, template in self._compiled:
            if regex.match(scope["path"]):
                return template
        return UNMATCHED


class RequestMetrics:
    """ASGI middleware counting each HTTP request once its response starts."""

    def __init__(self, app: ASGIApp, templates: RouteTemplates, limiter: RateLimiter):
        self.app = app
        self.templates = templates
        self.limiter = limiter
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {}

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start" and not seen:
                seen["status"] = message["status"]
                self._record(scope, message["status"], time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except BaseException:
            if not seen:  # the framework answers 500 outside this middleware
                self._record(scope, 500, time.perf_counter() - started)
            raise

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in METHODS else "other"
        route = self.templates.of(scope)
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # labels are bounded (see the module docstring): so is this
            children = (
                REQUESTS.labels(method, route, str(status)),
                REQUEST_SECONDS.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if status == 429:
            state = scope.get("state", {})
            bucket = state.get("rate_bucket")  # the gate's verdict
            if bucket is None:
                rule = self.limiter.rule_for(
                    state.get("caller", ""), scope["method"], scope["path"]
                )
                bucket = rule.name if rule else UNMATCHED
            RATE_LIMITED.labels(bucket).inc()


def exposition(hub: Hub) -> bytes:
    """Every metric of this process, with the gauges read from this app's state now."""
    OBSERVE_WATCHERS.set(len(hub.watchers))
    return generate_latest()
