"""The store's errors: what any backend raises, so callers handle one set whichever runs."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors."""


class Conflict(StoreError):
    """The record changed since it was read (version mismatch) or already exists."""


class NotFound(StoreError):
    pass


class StaleEpoch(StoreError):
    """A master write carries an epoch older than the newest leader's."""


class StoreUnavailable(StoreError):
    """The backend cannot serve now; the caller may retry later. Whether a write that
    fails so was applied is not known (a Cassandra write that timed out may still land)."""


class StoreNotWritten(StoreUnavailable):
    """The backend cannot serve now, and the write certainly did not happen (a SQLite
    transaction rolled back, a Cassandra batch found not to have landed)."""


class StoreRefused(StoreError):
    """The backend refused a write as invalid: retrying the same request cannot help."""


class GroupNameTaken(Conflict):
    def __init__(self, name: str, job_id: str):
        super().__init__(f"job with group sequence {name} exists: {job_id}")
        self.name = name
        self.job_id = job_id
