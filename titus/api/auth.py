"""Who is calling the API: bearer tokens from a configuration file, mapped to principals.

The file (`auth_tokens_file`) maps tokens to principals:
`{"<token>": {"callerId": "alice", "roles": ["user"], "email": "alice@example.com",
"teams": ["payments@example.com"]}}`. Roles are `user` (the default: may create jobs and
change its own) and `admin` (may change anything, and instance and capacity groups);
`email` and `teams` are the addresses whose jobs (by `owner.teamEmail`) the principal
owns, besides the jobs it created.

With the file set, every change needs a valid token (401 otherwise), and so does every
read unless `auth_reads` is off; the caller id comes from the token, never from
`X-Titus-CallerId`. Without the file there is no authentication (the API then listens on
loopback only): the header names the caller and every caller may do everything, as an
admin may.

What a principal may do is policy.py's; this module only says who it is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request

from titus.api.errors import ApiError

USER = "user"
ADMIN = "admin"
ROLES = (USER, ADMIN)


@dataclass(frozen=True)
class Principal:
    """A caller: its id (recorded on what it creates), roles, and the addresses
    (lowercase) of the teams it stands for. `authenticated` when a token named it."""

    caller_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    authenticated: bool = False
    emails: frozenset[str] = field(default_factory=frozenset)

    @property
    def name(self) -> str:
        return self.caller_id

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles


def open_principal(caller_id: str = "") -> Principal:
    """A caller when authentication is off: named by its own header, allowed everything."""
    return Principal(caller_id, frozenset(ROLES))


#: Whoever calls with authentication off, unnamed (the default of the service layer's
#: callers that act for the platform itself).
OPEN = open_principal()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenAuth:
    def __init__(self, tokens: dict[str, Principal]):
        # keyed by the token's digest: a lookup costs the same whatever the token, and
        # the table never holds a token a memory dump would give away
        self._tokens = {_digest(t): p for t, p in tokens.items()}

    @classmethod
    def from_file(cls, path: str) -> TokenAuth:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected an object mapping tokens to callers")
        return cls({token: _principal_of(path, token, who) for token, who in data.items()})

    def resolve(self, authorization: str) -> Principal | None:
        """The principal of an `Authorization: Bearer <token>` header, or None."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self._tokens.get(_digest(token.strip()))


def _principal_of(path: str, token: str, who: Any) -> Principal:
    if not token or not isinstance(who, dict) or not who.get("callerId"):
        raise ValueError(f"{path}: each token needs an object with a callerId")
    roles = frozenset(map(str, who.get("roles") or [USER]))
    unknown = sorted(roles - set(ROLES))
    if unknown:
        raise ValueError(
            f"{path}: unknown role(s) {unknown} for {who['callerId']}; roles: user, admin"
        )
    emails = [who.get("email") or "", *(who.get("teams") or [])]
    return Principal(
        str(who["callerId"]),
        roles | {USER},
        True,
        frozenset(str(e).strip().lower() for e in emails if e),
    )


@dataclass(frozen=True)
class Access:
    """How the API tells who calls: the token table (None: authentication off) and
    whether reads need a token too. Both transports resolve callers through it."""

    auth: TokenAuth | None
    reads_need_token: bool = True

    def principal(self, authorization: str, caller_header: str) -> Principal:
        """The token's principal; without one, the unauthenticated caller the header
        names (allowed everything when authentication is off, nothing when it is on)."""
        caller = caller_header.strip()[:200]
        if self.auth is None:
            return open_principal(caller)
        found = self.auth.resolve(authorization)
        return found if found is not None else Principal(caller)

    def check(self, principal: Principal, read: bool) -> None:
        """Refuse (401) an unauthenticated caller where a token is needed."""
        if self.auth is None or principal.authenticated:
            return
        if read and not self.reads_need_token:
            return
        what = "reads and changes" if self.reads_need_token else "changes"
        raise ApiError(
            401,
            f"a valid bearer token is required for {what} (rule: authentication)",
            headers={"WWW-Authenticate": 'Bearer realm="titus"'},
        )


def access_of(request: Request) -> Access:
    return request.app.state.access


def principal_of(request: Request) -> Principal:
    """The caller of a REST request (resolved once per request)."""
    found = getattr(request.state, "principal", None)
    if isinstance(found, Principal):
        return found
    headers = request.headers
    principal = access_of(request).principal(
        headers.get("authorization", ""), headers.get("x-titus-callerid", "")
    )
    request.state.principal = principal
    return principal


def caller_key(request: Request) -> str:
    """What rate limits key on: the authenticated principal, else the client's address,
    never a header the caller chooses (`X-Titus-CallerId` only names callers in logs)."""
    access: Access | None = getattr(request.app.state, "access", None)
    if access is not None and access.auth is not None:
        found = access.auth.resolve(request.headers.get("authorization", ""))
        if found is not None:
            return f"principal:{found.name}"
    client = request.client
    return f"address:{client.host}" if client else "address:unknown"
