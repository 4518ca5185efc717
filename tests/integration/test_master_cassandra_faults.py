"""The leader on the Cassandra store over the CQL test server, under the faults the chaos
suite injects: a placement whose conditional write applied while every attempt was
answered with a write timeout is still sent to its host, once, even when the job is read
again before the leader tries anew (the chaos suite's "saved Launched, never started").
Hosts are the in-memory driver of tests/unit/test_leader.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cql.server import CqlServer
from tests.unit.test_leader import Hosts, host, job, leader, report, tasks
from tests.unit.test_leader_store_faults import ride_out
from titus.model.states import Reason, TaskState
from titus.store.base import KillRequest, StoreUnavailable
from titus.store.cassandra import CassandraJobStore


@pytest.fixture
def cstore(cql_server: CqlServer) -> Iterator[CassandraJobStore]:
    store = CassandraJobStore(
        [cql_server.host],
        port=cql_server.port,
        keyspace="titus",
        local_dc="datacenter1",
        backoff_base=0.001,
        request_timeout=5.0,
    )
    yield store
    store.close()


def test_a_placement_that_applied_behind_write_timeouts_is_launched_once(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    driver = Hosts(host("h1"))
    m = leader(cstore, driver)
    job_id = job(cstore)
    cql_server.inject("write_timeout", "UPDATE active_tasks", times=1000, applied=True)
    with pytest.raises(StoreUnavailable):
        m.iterate()  # creates the task, places it: the write lands, every answer is a timeout
    cql_server.clear_faults()
    [saved] = tasks(cstore, job_id)
    assert saved.state == TaskState.LAUNCHED and driver.launched == []
    cstore.mark_dirty(job_id)  # the job read again before the leader tries anew
    ride_out(m)
    [task] = tasks(cstore, job_id)
    assert task.state == TaskState.LAUNCHED
    assert [(p.spec.taskId, p.host_id) for p in driver.launched] == [(task.id, task.agent_id)]


def test_a_kill_that_applied_behind_write_timeouts_reaches_the_host(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    driver = Hosts(host("h1"))
    m = leader(cstore, driver)
    job_id = job(cstore)
    m.iterate()
    [task] = tasks(cstore, job_id)
    report(m, task.id, TaskState.STARTED)
    m.iterate()
    cstore.add_kill_request(KillRequest(job_id, task.id))
    cql_server.inject("write_timeout", "UPDATE active_tasks", times=1000, applied=True)
    with pytest.raises(StoreUnavailable):
        m.iterate()
    cql_server.clear_faults()
    assert tasks(cstore, job_id)[0].state == TaskState.KILL_INITIATED
    ride_out(m)
    assert driver.killed == [(task.id, Reason.KILLED)]


def test_a_task_create_that_applied_behind_write_timeouts_runs_once(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    """The create's compare-and-set landed but every answer was a timeout, so the index
    row that lists the task under its job was never written: the leader creating it again
    must take that task, not make a second one under a new name."""
    driver = Hosts(host("h1"))
    m = leader(cstore, driver)
    job_id = job(cstore)
    cql_server.inject("write_timeout", ") IF NOT EXISTS", times=1000, applied=True)
    with pytest.raises(StoreUnavailable):
        m.iterate()
    cql_server.clear_faults()
    ride_out(m)
    active = [t for t in cstore.list_active_tasks() if t.jobId == job_id]
    assert len(active) == 1, [t.id for t in active]
    assert [t.id for t in tasks(cstore, job_id)] == [active[0].id]
    assert [p.spec.taskId for p in driver.launched] == [active[0].id]
