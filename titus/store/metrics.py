"""The store's Prometheus metrics, shared by every backend.

A store that cannot answer is what users feel first (503s at the API, a leader that rides
the failure out and falls behind), so each backend counts, at the one place it turns a
driver failure into the store's error, which store failed and whether a read or a write.
Both labels are bounded: the backend's name and `read`, `write` or `connect`.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import Counter

Operation = Literal["read", "write", "connect"]

STORE_ERRORS = Counter(
    "titus_store_errors_total",
    "Store operations that failed after the backend's retries (StoreUnavailable) or were "
    "refused as invalid, by backend (sqlite, cassandra) and operation (read, write, connect)",
    ["store", "operation"],
)


def count_error(store: Literal["sqlite", "cassandra"], operation: Operation) -> None:
    """One failed store operation, as its caller is about to see it."""
    STORE_ERRORS.labels(store, operation).inc()
