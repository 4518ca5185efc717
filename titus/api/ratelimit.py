"""Token-bucket admission control per caller and endpoint pattern.

Buckets come from settings (`rate_limit_buckets`): a request is charged to the first
bucket, by `order`, whose caller and endpoint globs match it. Unless the bucket is
`shared`, each caller has its own, so one runaway caller empties only its own bucket and
everyone else keeps their latency. The check is a dict lookup and a little arithmetic
under a lock; there is no I/O.

The table of per-caller buckets is bounded: beyond `max_callers` entries, buckets that
have refilled completely (they hold no information) are forgotten.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from fnmatch import translate

from titus.settings import RateBucket


@dataclass
class Verdict:
    allowed: bool
    bucket: str = ""
    retry_after: float = 0.0


@dataclass
class _Rule:
    spec: RateBucket
    caller: re.Pattern[str]
    endpoint: re.Pattern[str]


class RateLimiter:
    def __init__(self, buckets: list[RateBucket], max_callers: int = 100_000):
        self.rules = [
            _Rule(b, re.compile(translate(b.caller)), re.compile(translate(b.endpoint)))
            for b in sorted(buckets, key=lambda b: b.order)
        ]
        self.max_callers = max_callers
        self._tokens: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    def rule_for(self, caller: str, method: str, path: str) -> RateBucket | None:
        endpoint = f"{method} {path}"
        for rule in self.rules:
            if rule.endpoint.match(endpoint) and rule.caller.match(caller):
                return rule.spec
        return None

    def admit(self, caller: str, method: str, path: str, now: float | None = None) -> Verdict:
        spec = self.rule_for(caller, method, path)
        if spec is None:
            return Verdict(True)
        now = time.monotonic() if now is None else now
        key = (spec.name, "" if spec.shared else caller)
        with self._lock:
            tokens, at = self._tokens.get(key, (spec.capacity, now))
            tokens = min(spec.capacity, tokens + (now - at) * spec.refill_per_sec)
            if tokens >= 1.0:
                self._tokens[key] = (tokens - 1.0, now)
                if len(self._tokens) > self.max_callers:
                    self._forget_full(now)
                return Verdict(True, spec.name)
            self._tokens[key] = (tokens, now)
        wait = (1.0 - tokens) / spec.refill_per_sec if spec.refill_per_sec > 0 else 3600.0
        return Verdict(False, spec.name, wait)

    def _forget_full(self, now: float) -> None:
        specs = {r.spec.name: r.spec for r in self.rules}
        for key, (tokens, at) in list(self._tokens.items()):
            spec = specs.get(key[0])
            if spec is None or tokens + (now - at) * spec.refill_per_sec >= spec.capacity:
                del self._tokens[key]


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
