"""How the platform's own processes call an agent: every request signed.

The master (launches, kills, claims, acknowledgements, report polls) and the API (task
output) call agents over HTTP. With the platform's shared secret configured, each request
carries a signature (titus/model/signing.py) over what it asks and the caller's leadership
epoch, and the agent refuses what is unsigned, altered, replayed or from an older leader.
This is the client half, an httpx authentication flow, shared by both callers.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import httpx

from titus.model.signing import RequestSigner


class SignedCalls(httpx.Auth):
    """Signs each request of an httpx client (sync or async) with the caller's epoch."""

    requires_request_body = True

    def __init__(self, secret: bytes, epoch: Callable[[], int] = lambda: 0):
        self._signer = RequestSigner(secret)
        self._epoch = epoch

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("ascii")
        request.headers.update(
            self._signer.header(request.method, target, request.content, self._epoch())
        )
        yield request


def agent_auth(secret: bytes | None, epoch: Callable[[], int] = lambda: 0) -> httpx.Auth | None:
    """The authentication for calls to agents: signed with `secret`, or none without one."""
    return SignedCalls(secret, epoch) if secret else None
