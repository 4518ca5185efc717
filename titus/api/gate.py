"""The gate every request passes before any handler: who is calling, may they, and are
they within their rate.

A plain ASGI middleware (no per-request task or body buffering, so streaming responses
and the observe stream pass through untouched). It records the caller on the request's
scope state (`caller`, `roles`) for handlers and logs, and answers 401, 403 or 429 itself
in the API's one error shape. Rate limits are kept per authenticated principal, or per
client address without a token (`rate_key`). A 429 is held back a moment
(REFUSAL_HOLD_SEC, longer for a caller refused again and again: RefusalHolds) before it
is sent, so a caller hammering past its limit slows itself down, not everyone else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from titus.api.auth import Principal, TokenAuth
from titus.api.errors import error_body
from titus.api.policy import admin_refusal
from titus.api.ratelimit import RateLimiter, retry_after_header

log = logging.getLogger("titus.api.gate")

#: Changes under these paths are for admins: capacity groups, and instance group lifecycles
#: (phasing a group out moves everyone's tasks).
ADMIN_PATHS = ("/api/v2/management/", "/api/v3/instanceGroups/")
READS = ("GET", "HEAD", "OPTIONS")


#: A rate-limited request's 429 is sent this late (seconds): a caller that ignores
#: Retry-After and retries at once gets at most one refusal per connection this often,
#: instead of a flood of cheap refusals that still take event-loop time from everyone.
REFUSAL_HOLD_SEC = 0.25
#: ... and this late once it has been refused more than RUNAWAY_REFUSALS times within a
#: second (it ignores Retry-After): each of its connections then costs one refusal a second.
RUNAWAY_HOLD_SEC = 1.0
RUNAWAY_REFUSALS = 50
#: Each hold is drawn within this fraction either side of its length: a runaway's
#: connections, refused together, would otherwise all come back in the same instant, a
#: burst every other caller's request waits behind.
JITTER = 0.5
#: At most this many refusals are held at once (beyond, they are sent at once), so holding
#: them costs bounded memory whatever a caller does.
MAX_HELD = 1000


class Gate:
    def __init__(
        self,
        app: ASGIApp,
        auth: TokenAuth | None,
        limiter: RateLimiter,
        hold_sec: float = REFUSAL_HOLD_SEC,
        max_held: int = MAX_HELD,
        in_flight_per_caller: int = 0,
    ):
        self.app = app
        self.turns = Turns(in_flight_per_caller) if in_flight_per_caller > 0 else None
        self.auth = auth
        self.limiter = limiter
        self.holds = RefusalHolds.around(hold_sec)
        self.max_held = max_held
        self.held = 0
        self.refusals = RefusalLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        authorization = caller_header = ""
        for name, value in scope["headers"]:  # the two headers this needs, nothing more
            lowered = name.lower()
            if lowered == b"authorization" and not authorization:
                authorization = value.decode("latin-1")
            elif lowered == b"x-titus-callerid" and not caller_header:
                caller_header = value.decode("latin-1")
        principal = self._principal(authorization, caller_header, scope)
        state = scope.setdefault("state", {})
        state["caller"] = principal.caller_id
        state["roles"] = principal.roles
        if self.auth is not None and method not in READS and path.startswith("/api/"):
            if not principal.authenticated:
                await _refuse(
                    send,
                    401,
                    "a valid bearer token is required for changes",
                    {"WWW-Authenticate": 'Bearer realm="titus"'},
                )
                return
            if path.startswith(ADMIN_PATHS) and not principal.is_admin:
                await _refuse(send, 403, admin_refusal(principal, f"{method} {path}"))
                return
        if self.limiter.enabled and path.startswith("/api/"):
            client = scope.get("client")
            key = rate_key(principal, client[0] if client else None)
            verdict = self.limiter.admit(key, method, path)
            if not verdict.allowed:
                state["rate_bucket"] = verdict.bucket
                hold = self.holds.hold_sec(key, time.monotonic())
                if hold > 0 and self.held < self.max_held:
                    self.held += 1
                    try:
                        await asyncio.sleep(hold)
                    finally:
                        self.held -= 1
                retry = retry_after_header(verdict.retry_after - hold)
                self.refusals.note(principal.caller_id, verdict.bucket, method, path)
                await _refuse(
                    send,
                    429,
                    f"rate limit of bucket '{verdict.bucket}' exceeded for caller "
                    f"{principal.caller_id}; retry after {retry}s",
                    {"Retry-After": retry},
                )
                return
        if self.turns is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        await self.turns.serve(
            rate_key(principal, client[0] if client else None), self.app, scope, receive, send
        )

    def _principal(self, authorization: str, caller_header: str, scope: Scope) -> Principal:
        if self.auth is not None and authorization:
            found = self.auth.resolve(authorization)
            if found is not None:
                return found
        caller = caller_header.strip()[:200]
        if not caller:
            client = scope.get("client")
            caller = f"anonymous@{client[0]}" if client else "anonymous"
        return Principal(caller)


class Turns:
    """At most `per_caller` requests of one caller worked on at once; the others wait,
    parked (no CPU), in arrival order. Without it, a caller on hundreds of connections has
    hundreds of requests in the event loop's queue, each within its rate limit, and every
    other caller's request waits behind all of them; with it, behind at most `per_caller`
    of each caller. Over HTTP/1.1 a waiting request also holds back that connection's next
    one. A turn ends when the answer starts, so a stream (observe, followed logs) holds
    none while it runs. Entries of callers with nothing in flight are dropped. The line is
    bounded too: beyond `WAITING_PER_TURN` waiting requests per turn, a caller's next one is
    refused with a 429 at once rather than parked."""

    #: Requests of one caller that may wait per place it may hold.
    WAITING_PER_TURN = 32

    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._callers: dict[str, list[Any]] = {}  # key -> [semaphore, requests holding or waiting]

    async def serve(
        self, key: str, app: ASGIApp, scope: Scope, receive: Receive, send: Send
    ) -> None:
        entry = self._callers.get(key)
        if entry is None:
            entry = self._callers[key] = [asyncio.Semaphore(self.per_caller), 0]
        if entry[1] >= self.per_caller * (1 + self.WAITING_PER_TURN):
            await _refuse(
                send,
                429,
                f"{entry[1]} requests of this caller are in flight or waiting, the most it may "
                f"have (rule: api_in_flight_per_caller, {self.per_caller} at once)",
                {"Retry-After": "1"},
            )
            return
        entry[1] += 1
        semaphore: asyncio.Semaphore = entry[0]
        turn: asyncio.Semaphore | None = None  # held from acquire to the answer's start

        async def send_and_end_turn(message: Message) -> None:
            nonlocal turn
            if turn is not None and message["type"] == "http.response.start":
                turn.release()
                turn = None
            await send(message)

        try:
            await semaphore.acquire()
            turn = semaphore
            await app(scope, receive, send_and_end_turn)
        finally:
            if turn is not None:
                turn.release()  # an answer never started (an error, a disconnect)
            entry[1] -= 1
            if entry[1] == 0:
                self._callers.pop(key, None)


class RefusalHolds:
    """How long a rate-limited request's refusal is held back: about `base_sec` for a
    caller refused now and then (a burst past its limit), about `runaway_sec` for one
    refused more than RUNAWAY_REFUSALS times within the current or the last second (each
    drawn within JITTER of it). Holding costs a timer, and over HTTP/1.1 a connection
    waiting for its answer sends nothing else: a runaway on 256 connections that retries
    at once was refused 700 times a second with the short hold, each refusal a pass
    through the event loop every other caller waits behind. The table is bounded (beyond
    `max_entries` it starts anew)."""

    def __init__(self, base_sec: float, runaway_sec: float, max_entries: int = 10_000) -> None:
        self.base_sec = base_sec
        self.runaway_sec = runaway_sec
        self.max_entries = max_entries
        self._seen: dict[str, tuple[float, int, int]] = {}  # window start, now, last second

    @classmethod
    def around(cls, base_sec: float) -> RefusalHolds:
        """Holds of `base_sec` and, for a runaway, RUNAWAY_HOLD_SEC (none when 0)."""
        return cls(base_sec, max(base_sec, RUNAWAY_HOLD_SEC) if base_sec else 0.0)

    def hold_sec(self, key: str, now: float) -> float:
        start, current, last = self._seen.get(key, (now, 0, 0))
        if now - start >= 2.0:
            start, current, last = now, 0, 0
        elif now - start >= 1.0:
            start, current, last = now, 0, current
        current += 1
        if key not in self._seen and len(self._seen) >= self.max_entries:
            self._seen.clear()
        self._seen[key] = (start, current, last)
        hold = self.runaway_sec if max(current, last) > RUNAWAY_REFUSALS else self.base_sec
        return hold * random.uniform(1 - JITTER, 1 + JITTER)


class RefusalLog:
    """Rate-limit refusals in the log without a line per refusal: a runaway refused
    thousands of times a second would otherwise pay for (and flood) the log with each. The
    first refusal of a caller and bucket is logged at once; later ones are counted and
    logged as one line per caller and bucket every `every_sec` while they go on. The
    table is bounded like the limiter's (beyond `max_entries` it starts anew)."""

    def __init__(self, every_sec: float = 10.0, max_entries: int = 10_000) -> None:
        self.every_sec = every_sec
        self.max_entries = max_entries
        self._seen: dict[tuple[str, str], list[float]] = {}  # [window start, count]

    def note(self, caller: str, bucket: str, method: str, path: str) -> None:
        now = time.monotonic()
        key = (caller, bucket)
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.every_sec:
            if entry is not None and entry[1]:
                log.info(
                    "rate limited caller=%s bucket=%s: %d more refusals in %.0f s",
                    caller,
                    bucket,
                    entry[1],
                    now - entry[0],
                )
            else:
                log.info("rate limited caller=%s bucket=%s %s %s", caller, bucket, method, path)
            if len(self._seen) >= self.max_entries:
                self._seen.clear()
            self._seen[key] = [now, 0]
        else:
            entry[1] += 1


def rate_key(principal: Principal, client_host: str | None) -> str:
    """Whose budget a request spends (REST and gRPC alike): the authenticated principal's,
    else its client address's. Never a header the caller chooses: rotating
    X-Titus-CallerId per request would otherwise buy a fresh budget each time."""
    if principal.authenticated:
        return principal.caller_id
    return f"address:{client_host or 'unknown'}"


async def _refuse(
    send: Send, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(error_body(status, message)).encode()
    raw: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
