"""Signed requests between the platform's own processes: the master (and the API, for task
output) calling an agent.

An agent's HTTP API launches and kills containers, so it must know that a request comes
from the platform and from the leader of now, not from a container on the same host or a
deposed leader. Each request carries `X-Titus-Signature: v1 t=<ms>,n=<nonce>,e=<epoch>,s=<mac>`:
an HMAC-SHA256, under the secret of the agent called (titus/model/identity.py), of the
method, the path with its query, the time, a one-time nonce, the caller's leadership epoch
and a digest of the body. The receiver refuses a bad MAC, a time outside the allowed skew,
and a nonce it has already seen within that window (a replay); it learns the epoch from a
request it has verified, so the agent can refuse orders from an epoch older than one it has
obeyed.

Pure functions of their inputs and an injected clock: no I/O, so both ends and the tests
share one definition.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

HEADER = "X-Titus-Signature"
VERSION = "v1"
#: How far apart the caller's and the receiver's clocks may be, and so how long a nonce is
#: remembered.
MAX_SKEW_SEC = 30.0
#: Nonces remembered at once. A verified request costs an entry for MAX_SKEW_SEC; beyond
#: this many in one window the receiver refuses rather than grow (or forget too early).
MAX_NONCES = 200_000
MIN_SECRET_BYTES = 16
#: A header is a few short fields: anything longer is not one.
MAX_HEADER_CHARS = 256


class SignatureError(Exception):
    """A request the receiver refuses; the message says why (never the expected MAC)."""


def check_secret(secret: bytes) -> bytes:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the platform's shared secret must be at least {MIN_SECRET_BYTES} bytes")
    return secret


def _mac(
    secret: bytes, method: str, target: str, ms: int, nonce: str, epoch: int, body: bytes
) -> str:
    message = "\n".join(
        (
            VERSION,
            method.upper(),
            target,
            str(ms),
            nonce,
            str(epoch),
            hashlib.sha256(body).hexdigest(),
        )
    )
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


class RequestSigner:
    """Signs the requests of one caller (a master, or the API)."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time):
        self._secret = check_secret(secret)
        self._clock = clock

    def header(self, method: str, target: str, body: bytes = b"", epoch: int = 0) -> dict[str, str]:
        """The header for one request; `target` is the path with its query string, as sent."""
        ms = int(self._clock() * 1000)
        nonce = secrets.token_hex(12)
        mac = _mac(self._secret, method, target, ms, nonce, epoch, body)
        return {HEADER: f"{VERSION} t={ms},n={nonce},e={epoch},s={mac}"}


@dataclass(frozen=True)
class Verified:
    epoch: int


class ClockKeeper(Protocol):
    """A clock that can be set right by a signed time (see RequestVerifier)."""

    def agree_with(self, signed_time: float, tolerance: float) -> bool: ...

    def confirm(self) -> None: ...


class RequestVerifier:
    """Checks the requests an agent receives. Thread-safe enough for one event loop: the
    nonce book is touched only by `verify`."""

    def __init__(
        self,
        secret: bytes,
        clock: Callable[[], float] = time.time,
        max_skew_sec: float = MAX_SKEW_SEC,
        max_nonces: int = MAX_NONCES,
        keeper: ClockKeeper | None = None,
    ):
        """`keeper` (the agent's clock, titus/agent/clock.py) hears of each request whose
        time is in the window, and is asked about a correctly signed one whose time is
        not: when it sets `clock` right, the time is checked once more."""
        self._secret = check_secret(secret)
        self._clock = clock
        self._keeper = keeper
        self._skew_ms = int(max_skew_sec * 1000)
        self._max_nonces = max_nonces
        self._seen: OrderedDict[str, int] = OrderedDict()  # nonce -> when it may be forgotten

    def verify(self, method: str, target: str, body: bytes, header: str | None) -> Verified:
        if not header:
            raise SignatureError(f"unsigned request: {HEADER} is missing")
        if len(header) > MAX_HEADER_CHARS:
            raise SignatureError(f"{HEADER} is too long")
        version, _, rest = header.partition(" ")
        if version != VERSION:
            raise SignatureError(f"{HEADER} version must be {VERSION}")
        fields: dict[str, str] = {}
        for part in rest.split(","):
            key, sep, value = part.partition("=")
            if not sep or key in fields:
                raise SignatureError(f"{HEADER} is malformed")
            fields[key] = value
        try:
            ms, nonce, epoch, mac = int(fields["t"]), fields["n"], int(fields["e"]), fields["s"]
        except (KeyError, ValueError):
            raise SignatureError(f"{HEADER} needs t, n, e and s") from None
        if not nonce.isalnum() or not mac.isalnum() or epoch < 0:
            raise SignatureError(f"{HEADER} is malformed")
        expected = _mac(self._secret, method, target, ms, nonce, epoch, body)
        if not hmac.compare_digest(expected, mac):
            raise SignatureError("bad signature")
        now = int(self._clock() * 1000)
        if (
            abs(now - ms) > self._skew_ms
            and self._keeper is not None
            and self._keeper.agree_with(ms / 1000, self._skew_ms / 1000)
        ):
            now = int(self._clock() * 1000)
        if abs(now - ms) > self._skew_ms:
            raise SignatureError(
                f"request time is {abs(now - ms) / 1000:.0f} s away from this host's clock "
                f"(at most {self._skew_ms / 1000:.0f} s allowed)"
            )
        if self._keeper is not None:
            self._keeper.confirm()
        self._forget(now)
        if nonce in self._seen:
            raise SignatureError("replayed request")
        if len(self._seen) >= self._max_nonces:
            raise SignatureError("too many signed requests in the skew window")
        self._seen[nonce] = now + 2 * self._skew_ms
        return Verified(epoch=epoch)

    def _forget(self, now: int) -> None:
        """Drop nonces whose request time can no longer pass the skew check. Insertion order
        is arrival order, so the expired ones are at the front."""
        while self._seen:
            nonce, until = next(iter(self._seen.items()))
            if until > now:
                return
            del self._seen[nonce]


class EpochGate:
    """The highest leadership epoch an agent has obeyed: orders from an older one come from
    a deposed leader that has not noticed yet, and are refused."""

    def __init__(self) -> None:
        self.highest = 0

    def admit(self, epoch: int) -> bool:
        if epoch < self.highest:
            return False
        self.highest = epoch
        return True
