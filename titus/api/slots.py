"""Bounds on long requests the API holds open (observe streams, proxied log streams):
how many one caller may hold at once, and how many all callers together.

A long request costs the API a connection, buffers and, for logs, a stream to a host for
as long as the client keeps it. Rate limits count arrivals, not what stays open, so a
caller within its rate could still pile up thousands; these bounds refuse the one too
many with a 429 that names the rule, and free a place the moment a stream ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from titus.api.errors import ApiError


@dataclass
class CallerSlots:
    """Places for one kind of long request. `key` is what rate limits key on
    (auth.caller_key: the principal, else the client's address); 0 means no bound."""

    what: str
    per_caller: int = 0
    total: int = 0
    per_caller_rule: str = ""
    total_rule: str = ""
    held: dict[str, int] = field(default_factory=dict)
    in_use: int = 0

    def take(self, key: str, name: str = "") -> None:
        """Hold a place for `key`, or refuse with a 429 naming the bound that is full."""
        mine = self.held.get(key, 0)
        if key and self.per_caller and mine >= self.per_caller:
            raise ApiError(
                429,
                f"caller {name or key} already holds {mine} {self.what}, the most one caller "
                f"may (rule: {self.per_caller_rule})",
                headers={"Retry-After": "5"},
            )
        if self.total and self.in_use >= self.total:
            raise ApiError(
                429,
                f"{self.in_use} {self.what} are open, the most this API serves at once "
                f"(rule: {self.total_rule}); retry later",
                headers={"Retry-After": "5"},
            )
        self.in_use += 1
        if key:
            self.held[key] = mine + 1

    def give(self, key: str) -> None:
        self.in_use = max(0, self.in_use - 1)
        if key:
            left = self.held.get(key, 1) - 1
            if left > 0:
                self.held[key] = left
            else:
                self.held.pop(key, None)
