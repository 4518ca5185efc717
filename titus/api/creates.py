"""`POST /api/v3/jobs`, the API's busiest write, served without the framework's
per-request machinery.

A create is what callers do most and what a flood is made of. Through the framework it
costs a request object, a dependency pass, four middleware layers and a worker thread
hop, together about as much again as the create itself. `CreateEndpoint` sits right
behind the gate (so a refused caller never gets here, and nothing here runs before the
gate has decided) and answers this one path itself: the same checks in the same order
(the caller's token, content type, size, depth, JSON, Idempotency-Key), the same service
call, the same answers and error shapes (errors.refusal), the same metrics label. Every
other request passes through untouched. The route declared in jobs.py documents it in the
OpenAPI schema and serves it the same way (`accept_create`) where this layer is absent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from starlette.requests import ClientDisconnect
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from titus.api.auth import Access
from titus.api.body import check_body_headers, collect_body, parse_json
from titus.api.errors import ApiError, refusal
from titus.api.service import JobService
from titus.model.job import Job

PATH = "/api/v3/jobs"
#: A body at most this large is parsed and validated on the event loop (well under a
#: millisecond); a larger one in a worker thread, so it cannot hold everyone else up.
INLINE_PARSE_BYTES = 64 * 1024
MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class RoutePath:
    """What the request metrics read from a matched route: its template."""

    path: str


async def accept_create(
    service: JobService,
    max_body_bytes: int,
    header: Callable[[str], str],
    chunks: AsyncIterator[bytes],
    caller: str,
    reason: str,
) -> Job:
    """Read, check and create: what both ways of serving the route share."""
    check_body_headers(header("content-type"), header("content-length"), max_body_bytes)
    raw = await collect_body(chunks, max_body_bytes)
    body = parse_json(raw)
    key = header("idempotency-key").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ApiError(400, f"Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY} characters")
    return await service.create_job_async(
        body, caller, reason, key, offload=len(raw) > INLINE_PARSE_BYTES
    )


class CreateEndpoint:
    """ASGI middleware answering `POST /api/v3/jobs`; everything else goes to `app`."""

    ROUTE = RoutePath(PATH)

    def __init__(
        self, app: ASGIApp, service: JobService, access: Access, max_body_bytes: int
    ) -> None:
        self.app = app
        self.service = service
        self.access = access
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.ROUTE
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        try:
            principal = self.access.principal(
                headers.get("authorization", ""), headers.get("x-titus-callerid", "")
            )
            self.access.check(principal, read=False)
            job = await accept_create(
                self.service,
                self.max_body_bytes,
                lambda name: headers.get(name, ""),
                _body_chunks(receive),
                principal.name,
                headers.get("x-titus-callreason", "")[:1000],
            )
        except ClientDisconnect:
            return  # nobody to answer
        except Exception as exc:
            answer = refusal(exc)
            if answer is None:
                # as the framework does: a plain 500 to the client, the error to the server
                await PlainTextResponse("Internal Server Error", status_code=500)(
                    scope, receive, send
                )
                raise
            await answer(scope, receive, send)
            return
        body = json.dumps({"id": job.id}, separators=(",", ":")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
