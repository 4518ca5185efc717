"""The API's create as one durable write: `create_job(..., mark_dirty=True)` stores the job
and its dirty mark together, in SQLite and in Cassandra (over the CQL test server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.store.conformance import make_job
from tests.support.cql.server import CqlServer
from titus.store.base import GroupNameTaken, JobStore
from titus.store.cassandra import CassandraJobStore
from titus.store.sqlite import SqliteJobStore


@pytest.fixture(params=["sqlite", "cassandra"])
def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], JobStore]]:
    if request.param == "sqlite":
        yield lambda: SqliteJobStore(tmp_path / "titus.db")
        return
    server: CqlServer = request.getfixturevalue("cql_server")
    yield lambda: CassandraJobStore(
        [server.host],
        port=server.port,
        keyspace="titus",
        local_dc="datacenter1",
        backoff_base=0.001,
        request_timeout=5.0,
    )


@pytest.fixture
def store(store_factory: Callable[[], JobStore]) -> Iterator[JobStore]:
    s = store_factory()
    try:
        yield s
    finally:
        s.close()


def test_create_with_dirty_mark(store: JobStore) -> None:
    store.take_dirty()
    job = make_job()
    store.create_job(job, mark_dirty=True)
    assert store.get_job(job.id) is not None
    assert store.take_dirty() == [job.id]
    assert store.take_dirty() == []


def test_create_without_dirty_mark_by_default(store: JobStore) -> None:
    store.take_dirty()
    job = make_job()
    store.create_job(job)
    assert store.take_dirty() == []


def test_refused_create_leaves_no_dirty_mark(store: JobStore) -> None:
    store.create_job(make_job("v001"))
    store.take_dirty()
    with pytest.raises(GroupNameTaken):
        store.create_job(make_job("v001"), mark_dirty=True)
    assert store.take_dirty() == []
