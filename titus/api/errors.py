"""One error shape for every refusal: a status, a message, and each problem by JSON path.

{"statusCode": 400, "message": "invalid job descriptor",
 "errors": [{"path": "container.resources.cpu", "message": "must be greater than 0"}]}
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from titus.model.validation import FieldError, InvalidRequest


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


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.status, exc.message, exc.errors), status_code=exc.status, headers=exc.headers
    )


async def invalid_request_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidRequest)
    return JSONResponse(error_body(400, exc.message, exc.errors), status_code=400)
