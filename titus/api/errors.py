"""One error shape for every refusal: a status, a message, and each problem by JSON path.

{"statusCode": 400, "message": "invalid job descriptor",
 "errors": [{"path": "container.resources.cpu", "message": "must be greater than 0"}]}
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from titus.model.validation import FieldError, InvalidRequest
from titus.store.errors import StoreError, StoreRefused, StoreUnavailable

log = logging.getLogger("titus.api")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}


def error_body(status: int, message: str, errors: list[FieldError] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if errors:
        body["errors"] = [e.to_json() for e in errors]
    return body


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, f"{kind} {ident} not found")


def refusal(exc: Exception) -> JSONResponse | None:
    """The answer to an error a handler raised (None: not one of ours, a bug): the app's
    exception handlers and the endpoints served outside the framework (creates.py) answer
    through it, so every route refuses alike."""
    if isinstance(exc, ApiError):
        body = error_body(exc.status, exc.message, exc.errors)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)
    if isinstance(exc, InvalidRequest):
        return JSONResponse(error_body(400, exc.message, exc.errors), status_code=400)
    if isinstance(exc, StoreUnavailable):
        return JSONResponse(
            error_body(503, f"store unavailable: {exc}"),
            status_code=503,
            headers={"Retry-After": "2"},
        )
    if isinstance(exc, StoreRefused):
        log.error("store refused a request: %s", exc)
        return JSONResponse(error_body(500, f"store refused the request: {exc}"), status_code=500)
    if isinstance(exc, StoreError):
        return JSONResponse(
            error_body(503, f"store error: {exc}"), status_code=503, headers={"Retry-After": "1"}
        )
    return None


async def refusal_handler(request: Request, exc: Exception) -> JSONResponse:
    """`refusal` as the app's exception handler of those errors."""
    answer = refusal(exc)
    if answer is None:
        raise exc
    return answer
