"""Per-request access to the app's services and the caller's identity."""

from __future__ import annotations

from fastapi import Request

from titus.api.service import JobService
from titus.settings import Settings


def service_of(request: Request) -> JobService:
    return request.app.state.jobs  # type: ignore[no-any-return]


def settings_of(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def caller_of(request: Request) -> tuple[str, str]:
    """(caller id, call reason) from the Titus headers, as recorded on jobs and in logs."""
    return (
        request.headers.get("x-titus-callerid", ""),
        request.headers.get("x-titus-callreason", ""),
    )
