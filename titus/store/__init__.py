"""Job storage: the role protocols, JobStore (all of them), and the backends, chosen by URL."""

from __future__ import annotations

from urllib.parse import urlparse

from titus.store.base import JobStore


def open_store(url: str) -> JobStore:
    """`sqlite:///path/to/file.db` (the embedded default) or `cassandra://h1,h2:9042/ks`."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        from titus.store.sqlite import SqliteJobStore

        path = url[len("sqlite://") :]
        if path.startswith("/") and path != "/:memory:":
            return SqliteJobStore(path)
        return SqliteJobStore(path.lstrip("/") or ":memory:")
    if parsed.scheme == "cassandra":
        from titus.store.cassandra import CassandraJobStore

        return CassandraJobStore.from_url(url)
    raise ValueError(f"unknown store URL scheme '{parsed.scheme}' in {url!r}")
