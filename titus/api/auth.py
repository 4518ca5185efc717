"""Optional bearer-token authentication from a configuration file.

The file (`auth_tokens_file`) maps tokens to callers:
`{"<token>": {"callerId": "alice", "roles": ["admin"]}}`. When it is set, every mutation
needs a valid token (401 otherwise), capacity group changes need the `admin` role (403
otherwise), and the caller id comes from the token, never from `X-Titus-CallerId`. Reads
stay open. Without the file there is no authentication and the header names the caller.

With it, a job is changed only by its owners: the caller that created it (its
`titus.createdBy` attribute), its team (`owner.teamEmail`, when a token's callerId is that
address), or an admin. The gates (REST and gRPC) put the request's principal in
`CURRENT_PRINCIPAL`; the service layer asks `may_change` before every change.
"""

from __future__ import annotations

import hmac
import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Principal:
    caller_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    authenticated: bool = False


class TokenAuth:
    def __init__(self, tokens: dict[str, Principal]):
        self._tokens = tokens

    @classmethod
    def from_file(cls, path: str) -> TokenAuth:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected an object mapping tokens to callers")
        tokens = {}
        for token, who in data.items():
            if not token or not isinstance(who, dict) or not who.get("callerId"):
                raise ValueError(f"{path}: each token needs an object with a callerId")
            tokens[token] = Principal(
                str(who["callerId"]), frozenset(map(str, who.get("roles", []))), True
            )
        return cls(tokens)

    def resolve(self, authorization: str) -> Principal | None:
        """The principal of an `Authorization: Bearer <token>` header, or None."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        token = token.strip()
        for known, principal in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return principal
        return None


#: The authenticated caller of the request being served; None when authentication is off.
CURRENT_PRINCIPAL: ContextVar[Principal | None] = ContextVar("titus_principal", default=None)

#: The attribute a create records its caller in.
CREATED_BY = "titus.createdBy"


def may_change(principal: Principal | None, created_by: str, team_email: str) -> str | None:
    """None when `principal` may change a job created by `created_by` for `team_email`,
    else why not (authentication off: anyone may)."""
    if principal is None or "admin" in principal.roles:
        return None
    if principal.caller_id and principal.caller_id in (created_by, team_email):
        return None
    return (
        f"caller {principal.caller_id} may not change a job of {created_by or team_email}: "
        f"only its creator, its team ({team_email}) or an admin may"
    )
