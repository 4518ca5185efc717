"""Task moves between service jobs, carried out by the leader on a real SQLite store: the
task keeps running where it is, changes job, and both jobs' sizes follow; a move half-way
through a failover is finished by the next leader, and one that no longer makes sense is
dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_leader import Hosts, host, job, leader, report, takeover, tasks
from titus.master import moves
from titus.master.leader import Master
from titus.model.launch import TaskReport
from titus.model.states import TaskState
from titus.store.base import KillRequest, MoveRequest
from titus.store.sqlite import SqliteJobStore


@pytest.fixture
def store(tmp_path: Path) -> SqliteJobStore:
    return SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")


def desired(store: SqliteJobStore, job_id: str) -> int:
    j = store.get_job(job_id)
    assert j is not None and j.jobDescriptor.service is not None
    return j.jobDescriptor.service.capacity.desired


def running(store: SqliteJobStore, driver: Hosts, m: Master, *jobs: int) -> list[str]:
    ids = [job(store, service=n) for n in jobs]
    m.iterate()
    for job_id in ids:
        for t in tasks(store, job_id):
            report(m, t.id, TaskState.STARTED)
    m.iterate()
    return ids


def test_a_moved_task_keeps_running_and_changes_job(store: SqliteJobStore) -> None:
    driver = Hosts(host("h1", cpu=8))
    m = leader(store, driver, launching=10)
    source, target = running(store, driver, m, 2, 1)
    moving = tasks(store, source)[0]
    launches = len(driver.launched)
    store.add_move_request(MoveRequest(source, target, moving.id, caller="me"))
    m.iterate()
    m.iterate()
    moved = store.get_task(moving.id)
    assert moved is not None
    assert moved.jobId == target and moved.state == TaskState.STARTED
    assert moved.agent_id == "h1"
    assert moved.taskContext["task.movedFromJob"] == source
    assert moved.statusHistory[-1].state == TaskState.STARTED
    assert "moved from job" in moved.status.reasonMessage
    # a free index of the target job (its own task holds 0)
    assert sorted(t.index for t in tasks(store, target)) == [0, 1]
    assert (desired(store, source), desired(store, target)) == (1, 2)
    # nothing started, nothing killed: the container stays as it is
    assert len(driver.launched) == launches and driver.killed == []
    assert [t.id for t in tasks(store, source)] != [moving.id]
    assert store.list_move_requests(source) == []
    assert len(tasks(store, source)) == 1 and len(tasks(store, target)) == 2


def test_a_move_left_by_a_dead_leader_is_done_once_by_the_next(store: SqliteJobStore) -> None:
    driver = Hosts(host("h1", cpu=8))
    old = leader(store, driver, launching=10)
    source, target = running(store, driver, old, 2, 1)
    moving = tasks(store, source)[0]
    store.add_move_request(MoveRequest(source, target, moving.id))
    store.take_dirty()  # the old leader took the marks, then died before moving
    driver.actual["h1"] = [
        TaskReport(taskId=t.id, jobId=t.jobId, state=TaskState.STARTED)
        for t in store.list_active_tasks()
    ]
    new = takeover(store, driver)
    new.iterate()
    new.iterate()
    assert store.get_task(moving.id).jobId == target  # type: ignore[union-attr]
    assert (desired(store, source), desired(store, target)) == (1, 2)
    # the same request again (e.g. seen twice) changes nothing more
    store.add_move_request(MoveRequest(source, target, moving.id))
    new.iterate()
    new.iterate()
    assert (desired(store, source), desired(store, target)) == (1, 2)
    assert store.list_move_requests(source) == []
    assert driver.killed == []


def test_a_move_of_a_task_that_ended_meanwhile_is_dropped(store: SqliteJobStore) -> None:
    driver = Hosts(host("h1", cpu=8))
    m = leader(store, driver, launching=10)
    source, target = running(store, driver, m, 1, 1)
    [gone] = tasks(store, source)
    report(m, gone.id, TaskState.FINISHED, "failed")
    m.iterate()
    store.add_move_request(MoveRequest(source, target, gone.id))
    m.iterate()
    assert store.list_move_requests(source) == []
    assert (desired(store, source), desired(store, target)) == (1, 1)
    assert store.get_task(gone.id).jobId == source  # type: ignore[union-attr]


def test_a_move_racing_a_user_change_is_done_with_the_fresh_job(store: SqliteJobStore) -> None:
    driver = Hosts(host("h1", cpu=8))
    m = leader(store, driver, launching=10)
    source, target = running(store, driver, m, 2, 1)
    moving = tasks(store, source)[0]
    # a user raises the target's max while the leader holds an older version of it
    t = store.get_job(target)
    assert t is not None and t.jobDescriptor.service is not None
    t.jobDescriptor.service.capacity.max = 20
    store.update_job(t)
    request = MoveRequest(source, target, moving.id)
    store.add_move_request(request)
    store.take_dirty()
    moves.apply_move_request(request, m.view, store, m.epoch, set())
    assert store.get_task(moving.id).jobId == source  # type: ignore[union-attr]
    m.iterate()  # picks up the fresh jobs and moves
    assert store.get_task(moving.id).jobId == target  # type: ignore[union-attr]
    fresh = store.get_job(target)
    assert fresh is not None and fresh.jobDescriptor.service is not None
    assert fresh.jobDescriptor.service.capacity.max == 20
    assert (desired(store, source), desired(store, target)) == (1, 2)


def test_a_kill_left_by_a_dead_leader_is_carried_out_by_the_next(store: SqliteJobStore) -> None:
    driver = Hosts(host("h1", cpu=8))
    old = leader(store, driver, launching=10)
    [job_id] = running(store, driver, old, 2)
    victim = tasks(store, job_id)[0]
    store.add_kill_request(KillRequest(job_id=job_id, task_id=victim.id))
    store.take_dirty()  # the old leader took the mark, then died before killing
    driver.actual["h1"] = [
        TaskReport(taskId=t.id, jobId=t.jobId, state=TaskState.STARTED)
        for t in store.list_active_tasks()
    ]
    new = takeover(store, driver)
    new.iterate()
    assert [k[0] for k in driver.killed] == [victim.id]
    assert store.list_kill_requests(job_id) == []
