"""How the platform's own processes call an agent: every request signed for that agent.

The master (launches, kills, claims, acknowledgements, report polls) and the API (task
output) call agents over HTTP. With the platform's secret configured, each request carries
a signature (titus/model/signing.py) over what it asks and the caller's leadership epoch,
under the secret of the agent it is meant for (titus/model/identity.py): that agent refuses
what is unsigned, altered, replayed, from an older leader or signed for another host, so a
host that was taken over cannot order its neighbours about. Callers name the agent of each
request in the `X-Titus-Agent` header. This is the client half, an httpx authentication
flow, shared by both callers.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import httpx

from titus.model.identity import agent_secret
from titus.model.signing import RequestSigner

#: The agent a request is meant for; the agent checks it names itself.
AGENT_HEADER = "X-Titus-Agent"
#: Signers kept for that many agents at most (a fleet's worth); beyond, made again.
MAX_SIGNERS = 20_000


class SignedCalls(httpx.Auth):
    """Signs each request of an httpx client (sync or async) with the caller's epoch, under
    the secret of the agent its `X-Titus-Agent` header names."""

    requires_request_body = True

    def __init__(self, cluster_secret: bytes, epoch: Callable[[], int] = lambda: 0):
        self._cluster_secret = cluster_secret
        self._epoch = epoch
        self._signers: dict[str, RequestSigner] = {}

    def _signer(self, agent_id: str) -> RequestSigner:
        signer = self._signers.get(agent_id)
        if signer is None:
            if len(self._signers) >= MAX_SIGNERS:
                self._signers.clear()
            signer = RequestSigner(agent_secret(self._cluster_secret, agent_id))
            self._signers[agent_id] = signer
        return signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        agent_id = request.headers.get(AGENT_HEADER)
        if not agent_id:
            raise ValueError(f"a call to an agent must name it in {AGENT_HEADER}")
        target = request.url.raw_path.decode("ascii")
        request.headers.update(
            self._signer(agent_id).header(request.method, target, request.content, self._epoch())
        )
        yield request


def agent_auth(secret: bytes | None, epoch: Callable[[], int] = lambda: 0) -> httpx.Auth | None:
    """The authentication for calls to agents: signed under `secret` (the cluster's), or
    none without one."""
    return SignedCalls(secret, epoch) if secret else None


def for_agent(agent_id: str) -> dict[str, str]:
    """The headers that address a call to `agent_id`."""
    return {AGENT_HEADER: agent_id}
