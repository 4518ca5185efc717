"""Per-request access to the app's services and the caller's identity."""

from __future__ import annotations

from fastapi import Request

from titus.api.auth import Principal, access_of, principal_of
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
    """(caller id, call reason), as recorded on jobs and in logs: the token's principal
    when authentication is on, else whoever `X-Titus-CallerId` names."""
    return principal_of(request).name, request.headers.get("x-titus-callreason", "")[:1000]


READS = ("GET", "HEAD", "OPTIONS")


async def authenticated(request: Request) -> None:
    """Every route's first check: a token where one is needed (401 otherwise). The
    principal found is kept on the request for the handler (principal_of)."""
    access_of(request).check(principal_of(request), request.method in READS)


__all__ = ["Principal", "authenticated", "caller_of", "principal_of"]
