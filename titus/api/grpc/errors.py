"""The service layer's refusals as gRPC statuses, the way Titus's clients expect them.

REST answers with an HTTP status and a list of field errors; the same refusal over gRPC
is a status code with google.rpc error details in `grpc-status-details-bin`: a
BadRequest listing every field violation (the same paths and messages as REST's
`errors`), and RetryInfo when waiting helps (rate limits, full capacity groups, a store
that is down).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from titus.api.errors import ApiError
from titus.model.validation import FieldError, InvalidRequest
from titus.store.base import StoreError, StoreRefused, StoreUnavailable

log = logging.getLogger("titus.api.grpc")

#: HTTP statuses of the service layer's refusals and their gRPC codes.
CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


@dataclass
class Refusal:
    """A status to end a call with: code, message, field violations, retry delay."""

    code: grpc.StatusCode
    message: str
    violations: list[FieldError] = field(default_factory=list)
    retry_after_sec: float | None = None

    def status(self) -> grpc.Status:
        details: list[any_pb2.Any] = []
        if self.violations:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=e.path, description=e.message)
                    for e in self.violations
                ]
            )
            details.append(_pack(bad))
        if self.retry_after_sec is not None:
            delay = duration_pb2.Duration()
            delay.FromMilliseconds(int(self.retry_after_sec * 1000))
            details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
        code: int = getattr(code_pb2, self.code.name)
        return rpc_status.to_status(
            status_pb2.Status(code=code, message=self.message, details=details)
        )


def _pack(message: error_details_pb2.BadRequest | error_details_pb2.RetryInfo) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _retry_after(headers: dict[str, str]) -> float | None:
    raw = headers.get("Retry-After")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def refusal_of(exc: Exception, conflict: grpc.StatusCode | None = None) -> Refusal | None:
    """The status for an exception the service layer raises (None: not one of its
    refusals, a bug to log). `conflict` is the code a 409 means for this call: a taken
    job group sequence on create is ALREADY_EXISTS, elsewhere a 409 is a state that
    forbids the change (FAILED_PRECONDITION)."""
    if isinstance(exc, InvalidRequest):
        return Refusal(grpc.StatusCode.INVALID_ARGUMENT, exc.message, exc.errors)
    if isinstance(exc, ApiError):
        code = CODES.get(exc.status, grpc.StatusCode.UNKNOWN)
        if exc.status == 409 and conflict is not None:
            code = conflict
        return Refusal(code, exc.message, exc.errors, _retry_after(exc.headers))
    if isinstance(exc, StoreUnavailable):
        return Refusal(grpc.StatusCode.UNAVAILABLE, f"store unavailable: {exc}", [], 2.0)
    if isinstance(exc, StoreRefused):
        log.error("store refused a request: %s", exc)
        return Refusal(grpc.StatusCode.INTERNAL, f"store refused the request: {exc}")
    if isinstance(exc, StoreError):
        return Refusal(grpc.StatusCode.UNAVAILABLE, f"store error: {exc}", [], 1.0)
    return None
