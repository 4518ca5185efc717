"""The leader across store errors that cut a step in two: a write that applied but was
reported failed (a Cassandra write timeout after its replicas wrote), a placement chunk
half written (one conditional write per task on Cassandra), a clean-up write failing
between a write and the host command it calls for. Whatever the store took, the
platform converges: a task saved Launched is sent to its host, a task saved being killed
has its kill sent, a finished job is archived, a user's change is picked up, each
without waiting for a stuck-task timeout or a new leader.

The store is the real SQLite store with faults injected around its calls (`FaultyStore`);
the hosts are the in-memory driver of test_leader.py."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.unit.test_leader import Hosts, host, job, leader, report, takeover, tasks
from titus.master.leader import Master
from titus.model.job import Job, Task
from titus.model.states import JobState, Reason, TaskState
from titus.store.base import KillRequest, StoreUnavailable
from titus.store.sqlite import SqliteJobStore

T = TypeVar("T")


class FaultyStore(SqliteJobStore):
    """A real SQLite store whose next call of a method can fail as a Cassandra store's
    does under its faults: before it ran (`applied=False`), after it ran (`applied=True`:
    the write is in the store, the caller hears `StoreUnavailable`), or, for
    `update_tasks`, half-way (the first task written, the rest not)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="OFF")
        self.faults: dict[str, str] = {}

    def fail(self, method: str, *, applied: bool) -> None:
        self.faults[method] = "after" if applied else "before"

    def fail_half_way(self) -> None:
        self.faults["update_tasks"] = "half"

    def _call(self, method: str, run: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        mode = self.faults.pop(method, None)
        if mode == "before":
            raise StoreUnavailable(f"injected: {method} failed")
        result = run(*args, **kwargs)
        if mode == "after":
            raise StoreUnavailable(f"injected: {method} applied, its answer lost")
        return result

    def update_task(self, task: Task, *, epoch: int | None = None) -> Task:
        return self._call("update_task", super().update_task, task, epoch=epoch)

    def update_tasks(self, tasks: list[Task], *, epoch: int | None = None) -> list[Task | None]:
        if self.faults.get("update_tasks") == "half":
            del self.faults["update_tasks"]
            super().update_tasks(tasks[: len(tasks) // 2], epoch=epoch)
            raise StoreUnavailable("injected: update_tasks wrote half its tasks")
        return self._call("update_tasks", super().update_tasks, tasks, epoch=epoch)

    def delete_scheduler_result(self, task_id: str, *, epoch: int | None = None) -> None:
        self._call("delete_scheduler_result", super().delete_scheduler_result, task_id, epoch=epoch)

    def archive_job(self, job: Job, *, epoch: int | None = None) -> None:
        self._call("archive_job", super().archive_job, job, epoch=epoch)

    def get_job(self, job_id: str) -> Job | None:
        return self._call("get_job", super().get_job, job_id)

    def delete_kill_request(self, request: KillRequest, *, epoch: int | None = None) -> None:
        self._call("delete_kill_request", super().delete_kill_request, request, epoch=epoch)


@pytest.fixture
def store(tmp_path: Path) -> FaultyStore:
    return FaultyStore(tmp_path / "titus.db")


def ride_out(m: Master, iterations: int = 3) -> None:
    """Iterations of the leader's loop, each store error ridden out as the loop does."""
    for _ in range(iterations):
        with contextlib.suppress(StoreUnavailable):
            m.iterate()


def launched(driver: Hosts) -> list[tuple[str, str]]:
    return [(p.spec.taskId, p.host_id) for p in driver.launched]


def test_a_placement_the_store_took_but_reported_failed_is_sent_to_its_host(
    store: FaultyStore,
) -> None:
    """The open chaos finding: the Launched write applied and its answer was lost, then
    the job was read again (a user's change, or a dirty mark written twice by a retry):
    the leader took the stored Launched state into its view and nobody ever sent it."""
    driver = Hosts(host("h1"))
    m = leader(store, driver)
    job_id = job(store)
    store.fail("update_tasks", applied=True)
    with pytest.raises(StoreUnavailable):
        m.iterate()  # creates the task, places it: the write lands, the leader hears an error
    [saved] = tasks(store, job_id)
    assert saved.state == TaskState.LAUNCHED and driver.launched == []
    store.mark_dirty(job_id)
    ride_out(m)
    [task] = tasks(store, job_id)
    assert launched(driver) == [(task.id, task.agent_id)]
    assert task.state == TaskState.LAUNCHED


def test_a_placement_chunk_half_written_is_sent_whole(store: FaultyStore) -> None:
    driver = Hosts(host("h1"))
    m = leader(store, driver, launching=4)
    job_id = job(store, size=4)
    store.fail_half_way()
    with pytest.raises(StoreUnavailable):
        m.iterate()
    assert sorted(t.state for t in tasks(store, job_id)).count(TaskState.LAUNCHED) == 2
    store.mark_dirty(job_id)
    ride_out(m)
    stored = tasks(store, job_id)
    assert all(t.state == TaskState.LAUNCHED for t in stored)
    assert sorted(launched(driver)) == sorted((t.id, t.agent_id) for t in stored)


def test_a_placement_is_sent_even_when_the_clean_up_after_its_write_fails(
    store: FaultyStore,
) -> None:
    """A task that waited (its "why pending" in the store) is placed: its Launched state is
    written, then deleting its summary fails. The launch still goes out."""
    driver = Hosts(host("small", cpu=0.5))
    m = leader(store, driver)
    job_id = job(store)
    m.iterate()
    [waiting] = tasks(store, job_id)
    assert waiting.state == TaskState.ACCEPTED and store.get_scheduler_result(waiting.id)
    driver.views.append(host("big"))
    driver.actual["big"] = []
    store.fail("delete_scheduler_result", applied=False)
    ride_out(m)
    [task] = tasks(store, job_id)
    assert task.state == TaskState.LAUNCHED
    assert launched(driver) == [(task.id, "big")]


def test_a_kill_the_store_took_but_reported_failed_reaches_the_host(store: FaultyStore) -> None:
    driver = Hosts(host("h1"))
    m = leader(store, driver)
    job_id = job(store)
    m.iterate()
    [task] = tasks(store, job_id)
    report(m, task.id, TaskState.STARTED)
    m.iterate()
    store.add_kill_request(KillRequest(job_id, task.id))
    store.fail("update_task", applied=True)
    with pytest.raises(StoreUnavailable):
        m.iterate()  # KillInitiated lands, the leader hears an error
    assert tasks(store, job_id)[0].state == TaskState.KILL_INITIATED
    assert driver.killed == []
    ride_out(m)
    assert (task.id, Reason.KILLED) in driver.killed
    report(m, task.id, TaskState.FINISHED, Reason.KILLED)
    ride_out(m)
    ended = store.get_task(task.id)
    assert ended is not None and ended.state == TaskState.FINISHED


def test_user_changes_taken_before_a_store_error_are_picked_up_after_it(
    store: FaultyStore,
) -> None:
    driver = Hosts(host("h1"))
    m = leader(store, driver, launching=2)
    first, second = job(store), job(store)
    store.fail("get_job", applied=False)
    with pytest.raises(StoreUnavailable):
        m.iterate()  # both dirty marks taken, the first job's read fails
    ride_out(m)
    placed = {t.jobId for t in store.list_active_tasks() if t.state == TaskState.LAUNCHED}
    assert placed == {first, second}


def _finished_but_archive_failed(store: FaultyStore, driver: Hosts) -> tuple[Master, str]:
    """A leader whose one-task job finished: Finished is written, the archive fails."""
    m = leader(store, driver)
    job_id = job(store)
    m.iterate()
    [task] = tasks(store, job_id)
    report(m, task.id, TaskState.FINISHED)
    store.fail("archive_job", applied=False)
    with pytest.raises(StoreUnavailable):
        m.iterate()
    return m, job_id


def test_a_finished_job_whose_archive_failed_is_archived(store: FaultyStore) -> None:
    m, job_id = _finished_but_archive_failed(store, Hosts(host("h1")))
    stored = store.get_job(job_id)
    assert stored is not None and stored.status.state == JobState.FINISHED
    ride_out(m)
    assert job_id not in {j.id for j in store.list_active_jobs()}


def test_a_finished_job_left_active_by_a_dead_leader_is_archived_by_the_next(
    store: FaultyStore,
) -> None:
    driver = Hosts(host("h1"))
    _, job_id = _finished_but_archive_failed(store, driver)  # the leader dies there
    successor = takeover(store, driver)
    successor.iterate()
    assert job_id not in {j.id for j in store.list_active_jobs()}


def test_every_task_of_a_lost_host_ends_though_a_store_error_cut_in(store: FaultyStore) -> None:
    """The driver says once that a host is gone; ending its tasks one by one, a write
    fails: the tasks not ended yet end next time rather than staying on a host that is
    gone for good."""
    driver = Hosts(host("h1"))
    m = leader(store, driver, launching=2)
    job_id = job(store, service=2)
    m.iterate()
    for t in tasks(store, job_id):
        report(m, t.id, TaskState.STARTED)
    m.iterate()
    running = {t.id for t in tasks(store, job_id)}
    driver.lost, driver.views = {"h1"}, []
    store.fail("update_task", applied=False)
    with pytest.raises(StoreUnavailable):
        m.iterate()
    ride_out(m)
    ended = [store.get_task(t) for t in running]
    assert all(t is not None and t.state == TaskState.FINISHED for t in ended)
    assert {t.status.reasonCode for t in ended if t is not None} == {Reason.LOST}


def test_requests_a_predecessor_left_are_all_carried_out_though_a_store_error_cut_in(
    store: FaultyStore,
) -> None:
    """A new leader carries out the kill requests its predecessor left queued (their dirty
    marks went with it); a store error part-way must not drop the rest."""
    driver = Hosts(host("h1"))
    old = leader(store, driver, launching=2)
    job_id = job(store, service=2)
    old.iterate()
    first, second = (t.id for t in tasks(store, job_id))
    for task_id in (first, second):
        report(old, task_id, TaskState.STARTED)
    old.iterate()
    for task_id in (first, second):
        store.add_kill_request(KillRequest(job_id, task_id))
    store.take_dirty()  # the old leader took the marks and died
    new = takeover(store, driver)
    store.fail("delete_kill_request", applied=False)
    with pytest.raises(StoreUnavailable):
        new.iterate()
    ride_out(new)
    assert {task_id for task_id, _ in driver.killed} >= {first, second}
    assert store.list_kill_requests(job_id) == []
