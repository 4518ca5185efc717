"""Optional bearer-token authentication from a configuration file.

The file (`auth_tokens_file`) maps tokens to callers:
`{"<token>": {"callerId": "alice", "roles": ["admin"]}}`. When it is set, every mutation
needs a valid token (401 otherwise), capacity group changes need the `admin` role (403
otherwise), and the caller id comes from the token, never from `X-Titus-CallerId`. Reads
stay open. Without the file there is no authentication and the header names the caller.
"""

from __future__ import annotations

import hmac
import json
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
