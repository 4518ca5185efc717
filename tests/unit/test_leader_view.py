"""The leader's view of a start-up: every task's facts loaded at once, documents read from
the store (a SQLite file) only for the tasks the loop looks at, and the indexes exactly as
tasks put one by one would leave them."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Collection
from pathlib import Path

import pytest

from tests.support.quarantine import fresh_quarantine  # noqa: F401 - the fixture
from tests.unit.test_leader import Hosts, host, takeover
from tests.unit.test_leader_policies import make_task, service_job
from titus.master.cluster import HostReport
from titus.master.view import LeaderView
from titus.model.job import Task
from titus.model.launch import TaskReport
from titus.model.states import TaskState
from titus.store.base import JobTaskFacts
from titus.store.quarantine import QUARANTINE
from titus.store.sqlite import SqliteJobStore

# tests that meet unreadable records leave the process-wide quarantine empty
pytestmark = pytest.mark.usefixtures("fresh_quarantine")


class Reads:
    """The store, with the document reads the view makes of it written down."""

    def __init__(self, store: SqliteJobStore) -> None:
        self.store = store
        self.reads: list[list[str]] = []

    def active_task_documents(self, task_ids: Collection[str]) -> dict[str, str]:
        self.reads.append(sorted(task_ids))
        return self.store.active_task_documents(task_ids)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


@pytest.fixture
def store(tmp_path: Path) -> SqliteJobStore:
    return SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")


def facts_of(tasks: list[Task]) -> dict[str, JobTaskFacts]:
    """The tasks' plain columns by job, as a store's `load_active_facts` reads them."""
    by_job: dict[str, JobTaskFacts] = {}
    for task in tasks:
        group = by_job.setdefault(task.jobId, JobTaskFacts([], [], [], []))
        group.ids.append(task.id)
        group.states.append(task.state.value)
        group.agent_ids.append(task.agent_id)
        group.timestamps.append(task.status.timestamp)
    return by_job


def indexes(view: LeaderView) -> dict[str, object]:
    """Everything the view keeps about its tasks, for comparing two views."""
    return {
        "tasks": {t: (view.job_of(t), view.state(t), view.agent_of(t)) for t in view._facts},
        "by_job": {j: ids for j, ids in view.by_job.items() if ids},
        "by_host": view.by_host,
        "pending": view.pending,
        "finished": view.finished,
        "transitional": view.transitional,
        "live": {j: view.live_count(j) for j in view.by_job},
        "hosts": {
            h: (u.tasks, u.launching, u.jobs, [round(v, 6) for v in u.used])
            for h, u in view.hosts.items()
        },
        "groups": {
            g: [round(v, 6) for v in used] for g, used in view.group_usage.items() if any(used)
        },
    }


def test_a_start_up_load_builds_the_indexes_tasks_put_one_by_one_build(
    store: SqliteJobStore,
) -> None:
    rng = random.Random(3)
    jobs = [service_job(f"j{i}", group=f"g{i % 3}") for i in range(6)]
    states = list(TaskState)
    tasks = []
    for i in range(400):
        job_id = rng.choice([*[j.id for j in jobs], "job-not-held"])
        state = rng.choice(states)
        on_host = rng.random() < 0.8 or state == TaskState.ACCEPTED
        tasks.append(
            make_task(f"t{i}", job_id, state, f"h{rng.randrange(12)}" if on_host else None)
        )
    one_by_one, loaded = LeaderView(), LeaderView()
    for view in (one_by_one, loaded):
        for job in jobs:
            view.put_job(job)
    for task in tasks:
        one_by_one.put_task(task)
    loaded.load(facts_of(tasks), Reads(store))
    assert indexes(loaded) == indexes(one_by_one)
    assert len(loaded) == len(tasks) and not loaded._parsed
    # and they go on alike as tasks change and go
    for task in rng.sample(tasks, 100):
        moved = make_task(task.id, task.jobId, rng.choice(states), "h3")
        for view in (one_by_one, loaded):
            view.put_task(moved)
    for task in rng.sample(tasks, 50):
        for view in (one_by_one, loaded):
            view.drop_task(task)
    loaded.drop_job("j1")
    one_by_one.drop_job("j1")
    assert indexes(loaded) == indexes(one_by_one)


def test_documents_are_read_when_a_task_is_looked_at_a_job_in_one_read(
    store: SqliteJobStore,
) -> None:
    job = store.create_job(service_job("j"))
    running = [
        store.create_task(make_task(f"t{i}", job.id, TaskState.STARTED, "h1")) for i in range(3)
    ]
    view, reads = LeaderView(), Reads(store)
    view.put_job(job)
    view.load(facts_of(running), reads)
    assert view.usage_of("h1").tasks == 3 and view.state("t1") == TaskState.STARTED
    assert sorted(view.on_host("h1")) == ["t0", "t1", "t2"]
    assert reads.reads == []  # the indexes need no document
    assert view.get("t1") == running[1]
    assert reads.reads == [["t1"]]
    assert sorted(t.id for t in view.tasks_of(job.id)) == ["t0", "t1", "t2"]
    assert reads.reads == [["t1"], ["t0", "t2"]]  # the others, in one read
    view.tasks_of(job.id)
    assert view.get("t0") == running[0] and len(reads.reads) == 2  # read once


def test_an_unreadable_document_leaves_its_job_alone_until_it_is_settled(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    job = store.create_job(service_job("j"))
    good = store.create_task(make_task("good", job.id, TaskState.STARTED, "h1"))
    bad = store.create_task(make_task("bad", job.id, TaskState.STARTED, "h1"))
    with sqlite3.connect(tmp_path / "titus.db") as db:
        db.execute("UPDATE active_tasks SET value='{\"id\": 5' WHERE task_id='bad'")
    view = LeaderView()
    view.put_job(job)
    view.load(facts_of([good, bad]), Reads(store))
    assert [t.id for t in view.tasks_of(job.id)] == ["good"]
    assert view.unreadable == {job.id: "bad"}
    assert ("task", "bad") in {(r.kind, r.id) for r in QUARANTINE.records()}
    # still where its plain columns say: its host's use counts it
    assert view.usage_of("h1").tasks == 2 and view.state("bad") == TaskState.STARTED
    assert view.get("bad") is None
    view.settle_unreadable(job.id, "bad", None)  # set aside by an operator
    assert view.unreadable == {} and view.usage_of("h1").tasks == 1


def test_a_task_the_store_no_longer_holds_leaves_the_view(store: SqliteJobStore) -> None:
    """Set aside (archived as stored) before the leader read it: it is gone, its host and
    its job no longer count it."""
    job = store.create_job(service_job("j"))
    kept = store.create_task(make_task("kept", job.id, TaskState.STARTED, "h1"))
    gone = store.create_task(make_task("gone", job.id, TaskState.STARTED, "h1"))
    view = LeaderView()
    view.put_job(job)
    view.load(facts_of([kept, gone]), Reads(store))
    store.set_aside("task", "gone")
    assert [t.id for t in view.tasks_of(job.id)] == ["kept"]
    assert view.state("gone") is None and view.usage_of("h1").tasks == 1
    assert view.live_count(job.id) == 1 and view.unreadable == {}


def test_a_new_leader_reads_the_documents_of_pending_tasks_only(store: SqliteJobStore) -> None:
    """A start-up with running tasks every host confirms reads no document of theirs: only
    the waiting tasks' documents are read, to place them."""
    running = service_job("run")  # 2 desired, 2 running
    store.create_job(
        running, [make_task(f"r{i}", "run", TaskState.STARTED, f"h{i + 1}") for i in range(2)]
    )
    waiting = service_job("wait")
    store.create_job(waiting, [make_task(f"w{i}", "wait", TaskState.ACCEPTED) for i in range(2)])
    hosts = Hosts(host("h1", cpu=16), host("h2", cpu=16))
    for i in range(2):
        report = TaskReport(taskId=f"r{i}", jobId="run", state=TaskState.STARTED)
        hosts.actual[f"h{i + 1}"].append(report)
    reads = Reads(store)
    new = takeover(reads, hosts)  # type: ignore[arg-type]
    new.iterate()
    assert sorted(p.spec.taskId for p in hosts.launched) == ["w0", "w1"]
    assert reads.reads == [["w0", "w1"]]
    assert hosts.killed == []


def test_a_report_for_a_task_that_cannot_be_read_leaves_it_and_its_job_alone(
    store: SqliteJobStore, tmp_path: Path
) -> None:
    """The host says the task ended, but its document cannot be read: the leader goes on
    (nothing written for it, nothing replaced) instead of failing its loop."""
    job = service_job("j")  # 2 desired
    store.create_job(job, [make_task(f"t{i}", "j", TaskState.STARTED, "h1") for i in range(2)])
    with sqlite3.connect(tmp_path / "titus.db") as db:
        db.execute("UPDATE active_tasks SET value='{\"id\": 5' WHERE task_id='t0'")
    hosts = Hosts(host("h1", cpu=16))
    hosts.actual["h1"] = [
        TaskReport(taskId=f"t{i}", jobId="j", state=TaskState.STARTED) for i in range(2)
    ]
    leader = takeover(store, hosts)
    ended = TaskReport(taskId="t0", jobId="j", state=TaskState.FINISHED, exitCode=0)
    leader.receive([HostReport("h1", ended)])
    leader.store.mark_dirty("j")
    for _ in range(3):
        leader.iterate()
    assert leader.view.unreadable == {"j": "t0"}
    assert leader.view.state("t0") == TaskState.STARTED
    assert sorted(t.id for t in store.list_tasks("j")) == ["t1"]  # t0 unreadable: left out
    assert hosts.launched == [] and hosts.killed == []
