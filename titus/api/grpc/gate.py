"""Who is calling over gRPC, may they, and are they within their rate: the REST gate's
rules and state, applied to gRPC calls.

The gRPC server is handed the REST gate's own token table and rate limiter, so a caller
has one budget whatever transport it uses: ten creates over gRPC and ten over REST draw
from the same `job-create` bucket. Each method is charged as the REST request that does
the same thing (CreateJob as `POST /api/v3/jobs`, FindJobs as `GET /api/v3/jobs`, ...),
so the configured bucket patterns apply unchanged. Identity comes from the call
metadata as Titus's clients send it: `authorization: Bearer <token>`,
`x-titus-callerid` and `x-titus-callreason`; rate limits key on the token's principal or the
client address (the REST gate's `rate_key`), never on that header.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import grpc

from titus.api.auth import Principal, TokenAuth
from titus.api.gate import REFUSAL_HOLD_SEC, RefusalHolds, rate_key
from titus.api.grpc.errors import Refusal
from titus.api.ratelimit import RateLimiter

log = logging.getLogger("titus.api.grpc.gate")

#: Each method as the REST request it matches: (method, path) for auth and rate buckets.
ROUTES: dict[str, tuple[str, str]] = {
    "CreateJob": ("POST", "/api/v3/jobs"),
    "UpdateJobCapacity": ("PUT", "/api/v3/jobs/{id}/instances"),
    "UpdateJobCapacityWithOptionalAttributes": ("PUT", "/api/v3/jobs/{id}/capacityAttributes"),
    "UpdateJobStatus": ("POST", "/api/v3/jobs/{id}/enable"),
    "UpdateJobStatus/disable": ("POST", "/api/v3/jobs/{id}/disable"),
    "UpdateJobProcesses": ("PUT", "/api/v3/jobs/{id}/jobprocesses"),
    "UpdateJobDisruptionBudget": ("PUT", "/api/v3/jobs/{id}/disruptionBudget"),
    "FindJobs": ("GET", "/api/v3/jobs"),
    "FindJob": ("GET", "/api/v3/jobs/{id}"),
    "ObserveJob": ("GET", "/api/v3/jobs/observe"),
    "ObserveJobs": ("GET", "/api/v3/jobs/observe"),
    "ObserveJobsWithKeepAlive": ("GET", "/api/v3/jobs/observe"),
    "KillJob": ("DELETE", "/api/v3/jobs/{id}"),
    "UpdateJobAttributes": ("PUT", "/api/v3/jobs/{id}/attributes"),
    "DeleteJobAttributes": ("DELETE", "/api/v3/jobs/{id}/attributes"),
    "FindTask": ("GET", "/api/v3/tasks/{id}"),
    "FindTasks": ("GET", "/api/v3/tasks"),
    "KillTask": ("DELETE", "/api/v3/tasks/{id}"),
    "UpdateTaskAttributes": ("PUT", "/api/v3/tasks/{id}/attributes"),
    "DeleteTaskAttributes": ("DELETE", "/api/v3/tasks/{id}/attributes"),
    "MoveTask": ("POST", "/api/v3/tasks/move"),
    "GetJobLoadBalancers": ("GET", "/api/v3/loadBalancers/{id}"),
    "GetAllLoadBalancers": ("GET", "/api/v3/loadBalancers"),
    "AddLoadBalancer": ("POST", "/api/v3/loadBalancers"),
    "RemoveLoadBalancer": ("DELETE", "/api/v3/loadBalancers"),
    "GetAllScalingPolicies": ("GET", "/api/v3/autoscaling/scalingPolicies"),
    "GetScalingPolicy": ("GET", "/api/v3/autoscaling/scalingPolicy/{id}"),
    "GetJobScalingPolicies": ("GET", "/api/v3/autoscaling/scalingPolicies/{id}"),
    "SetAutoScalingPolicy": ("POST", "/api/v3/autoscaling/scalingPolicy"),
    "UpdateAutoScalingPolicy": ("PUT", "/api/v3/autoscaling/scalingPolicy"),
    "DeleteAutoScalingPolicy": ("DELETE", "/api/v3/autoscaling/scalingPolicy/{id}"),
}


class Refused(Exception):
    """A call the gate turns away, with the status to end it with."""

    def __init__(self, refusal: Refusal):
        super().__init__(refusal.message)
        self.refusal = refusal


@dataclass(frozen=True)
class Caller:
    """The caller id and call reason recorded on jobs and in logs, and the call's
    `idempotency-key` (a create retried with the same key returns the first job)."""

    id: str
    reason: str
    idempotency_key: str = ""


class CallGate:
    def __init__(
        self,
        auth: TokenAuth | None,
        limiter: RateLimiter,
        holds: RefusalHolds | None = None,
    ):
        self.auth = auth
        self.limiter = limiter
        # shared with the REST gate when there is one: a caller refused on either
        # transport is counted once
        self.holds = holds or RefusalHolds.around(REFUSAL_HOLD_SEC)

    async def admit(self, rpc: str, context: grpc.aio.ServicerContext) -> Caller:
        """The caller of an admitted call; raises Refused otherwise. A rate-limited call
        is refused a moment late, as REST's are (longer for a caller refused again and
        again: RefusalHolds), so a caller retrying at once slows itself down rather than
        everyone."""
        metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ())}
        principal = self._principal(metadata, context.peer() or "")
        method, path = ROUTES[rpc]
        if self.auth is not None and method != "GET" and not principal.authenticated:
            raise Refused(
                Refusal(
                    grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required for changes"
                )
            )
        if self.limiter.enabled:
            key = rate_key(principal, peer_host(context.peer() or ""))
            verdict = self.limiter.admit(key, method, path)
            if not verdict.allowed:
                hold = self.holds.hold_sec(key, time.monotonic())
                if hold > 0:
                    await asyncio.sleep(hold)
                wait = max(1.0, verdict.retry_after - hold)
                log.info(
                    "rate limited caller=%s bucket=%s %s",
                    principal.caller_id,
                    verdict.bucket,
                    rpc,
                )
                raise Refused(
                    Refusal(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"rate limit of bucket '{verdict.bucket}' exceeded for caller "
                        f"{principal.caller_id}; retry after {wait:.0f}s",
                        retry_after_sec=wait,
                    )
                )
        caller = principal.caller_id
        if not principal.authenticated and caller.startswith("anonymous"):
            caller = ""
        return Caller(
            caller,
            _text(metadata.get("x-titus-callreason"))[:1000],
            _text(metadata.get("idempotency-key")).strip(),
        )

    def _principal(self, metadata: dict[str, str | bytes], peer: str) -> Principal:
        if self.auth is not None:
            found = self.auth.resolve(_text(metadata.get("authorization")))
            if found is not None:
                return found
        caller = _text(metadata.get("x-titus-callerid")).strip()[:200]
        if not caller:
            host = peer.split(":")[1] if peer.count(":") >= 2 else peer
            caller = f"anonymous@{host}" if host else "anonymous"
        return Principal(caller)


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def peer_host(peer: str) -> str | None:
    """The client's address in a gRPC peer string ("ipv4:10.0.0.1:5000",
    "ipv6:[::1]:5000"), as REST sees it; None for other transports."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or None
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or None
    return None
