"""IMDSv2 session tokens, bound to one task and signed by the agent.

A token says which task asked for it and until when it holds, signed with a key kept in
the agent's data directory: the agent keeps no table of tokens (nothing a caller can
fill), a restarted agent still honours the tokens it gave out, and a token taken from one
task's namespace is worthless in another's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

MIN_TTL_SEC = 1
MAX_TTL_SEC = 21600
#: Longest token accepted for checking (a bound on work done for a bad one).
MAX_TOKEN_CHARS = 256


class TokenError(ValueError):
    """A TTL the service refuses."""


def parse_ttl(value: str | None) -> int:
    """The TTL a token PUT asks for: an integer within AWS's bounds, else TokenError."""
    if value is None or not value.strip():
        raise TokenError("X-aws-ec2-metadata-token-ttl-seconds is required")
    text = value.strip()
    if len(text) > 6 or not text.isdigit():
        raise TokenError("X-aws-ec2-metadata-token-ttl-seconds must be an integer")
    ttl = int(text)
    if not MIN_TTL_SEC <= ttl <= MAX_TTL_SEC:
        raise TokenError(
            f"X-aws-ec2-metadata-token-ttl-seconds must be within {MIN_TTL_SEC}..{MAX_TTL_SEC}"
        )
    return ttl


def load_key(path: Path) -> bytes:
    """The signing key, made (readable by root only) the first time."""
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    os.replace(tmp, path)
    return key


class TokenSigner:
    def __init__(self, key: bytes):
        self._key = key

    def _mac(self, body: bytes) -> str:
        digest = hmac.new(self._key, body, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, task_id: str, ttl: int, now: float) -> str:
        body = f"{task_id}|{int(now) + ttl}".encode()
        return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + self._mac(body)

    def valid(self, token: str, task_id: str, now: float) -> bool:
        """Whether `token` was issued to `task_id` and has not expired."""
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            return False
        encoded, mac = token.split(".")
        try:
            body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError:
            return False
        if not hmac.compare_digest(mac, self._mac(body)):
            return False
        owner, _, expiry = body.decode(errors="replace").rpartition("|")
        return owner == task_id and expiry.isdigit() and now < int(expiry)
