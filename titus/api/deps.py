"""Per-request access to the app's services and the caller's identity."""

from __future__ import annotations

from fastapi import Request

from titus.api.cluster import ClusterService
from titus.api.service import JobService
from titus.api.view import ActiveView
from titus.settings import Settings


def service_of(request: Request) -> JobService:
    return request.app.state.jobs


def cluster_of(request: Request) -> ClusterService:
    return request.app.state.cluster


def view_of(request: Request) -> ActiveView:
    return request.app.state.view


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def caller_of(request: Request) -> tuple[str, str]:
    """(caller id, call reason), as recorded on jobs and in logs. The gate set the caller:
    from the bearer token when authentication is on, else from `X-Titus-CallerId`."""
    caller = getattr(request.state, "caller", None)
    if caller is None or caller.startswith("anonymous"):
        caller = request.headers.get("x-titus-callerid", "").strip()[:200]
    return caller, request.headers.get("x-titus-callreason", "")[:1000]
