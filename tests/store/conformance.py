"""The JobStore conformance suite: written once, run against every backend.

A backend's test module provides a `store_factory` fixture (a callable that opens a new
JobStore on the same data, as a second process would) and imports everything from here:

    from tests.store.conformance import *  # noqa: F401,F403

The tests state what the rest of the platform relies on: the API on group-name uniqueness
and on reading archived jobs; the master on versions, dirty marks and epoch fencing. A
backend that passes them can replace another without the callers noticing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from titus.model.autoscaling import PolicyRecord, PolicyState, parse_policy
from titus.model.job import (
    BatchJobSpec,
    Container,
    Image,
    Job,
    JobDescriptor,
    JobGroupInfo,
    JobStatus,
    Owner,
    Task,
    TaskStatus,
)
from titus.model.states import JobState, TaskState
from titus.store.base import (
    Conflict,
    GroupNameTaken,
    JobStore,
    KillRequest,
    MoveRequest,
    StaleEpoch,
)

__all__ = [
    "store",
    "make_job",
    "make_task",
    "test_create_and_get_job",
    "test_get_unknown_job_and_task_is_none",
    "test_create_job_with_first_tasks",
    "test_create_existing_job_id_conflicts",
    "test_archived_job_still_readable",
    "test_group_name_unique_among_active_jobs",
    "test_group_name_freed_after_archive",
    "test_racing_creates_for_one_group_name",
    "test_update_job_versions",
    "test_update_job_with_stale_version_conflicts",
    "test_count_and_list_active_jobs",
    "test_task_lifecycle",
    "test_update_task_with_stale_version_conflicts",
    "test_update_tasks_writes_each_and_leaves_the_changed_one",
    "test_update_tasks_with_a_stale_epoch_writes_none",
    "test_list_tasks_include_archived",
    "test_archive_job_moves_its_tasks",
    "test_set_aside_moves_records_to_the_archive_as_stored",
    "test_load_active",
    "test_dirty_marks_returned_once",
    "test_kill_requests",
    "test_claim_epoch",
    "test_stale_epoch_writes_refused",
    "test_newer_epoch_writes_accepted",
    "test_meta",
    "test_second_handle_sees_writes",
    "test_load_active_index",
    "test_load_active_facts_reads_no_document",
    "test_active_task_documents",
    "test_change_feed_records_every_write",
    "test_change_feed_pages_and_resumes",
    "test_change_feed_seen_by_another_handle",
    "test_active_tasks_leave_with_archiving",
    "test_capacity_groups",
    "test_scaling_policies",
    "test_scaling_policy_updates_are_versioned_and_fenced",
    "test_idempotency_keys",
    "test_idempotency_key_expires",
    "test_task_attributes",
    "test_move_requests",
    "test_instance_groups",
    "test_scheduler_results",
    "test_new_writes_fenced_by_epoch",
    "test_move_task",
    "test_move_task_refused_writes_nothing",
    "test_list_all_move_requests",
    "test_list_all_kill_requests",
]


@pytest.fixture
def store(store_factory: Callable[[], JobStore]) -> Iterator[JobStore]:
    s = store_factory()
    try:
        yield s
    finally:
        s.close()


def make_job(group_sequence: str = "", app: str = "app", job_id: str | None = None) -> Job:
    return Job(
        id=job_id or str(uuid.uuid4()),
        jobDescriptor=JobDescriptor(
            owner=Owner(teamEmail="team@example.com"),
            applicationName=app,
            jobGroupInfo=JobGroupInfo(stack="main", detail="d", sequence=group_sequence),
            container=Container(image=Image(name="titus/busybox", tag="latest")),
            batch=BatchJobSpec(size=1),
        ),
        status=JobStatus(state=JobState.ACCEPTED),
    )


def make_task(job: Job, index: int = 0) -> Task:
    tid = str(uuid.uuid4())
    return Task(
        id=tid,
        jobId=job.id,
        originalId=tid,
        status=TaskStatus(state=TaskState.ACCEPTED),
        taskContext={"task.index": str(index)},
    )


def finish(job: Job) -> Job:
    return job.with_status(JobState.FINISHED)


# ---- jobs ---------------------------------------------------------------------------------
def test_create_and_get_job(store: JobStore) -> None:
    job = make_job()
    created = store.create_job(job)
    assert created.version == 1
    got = store.get_job(job.id)
    assert got is not None
    assert got.id == job.id
    assert got.version == 1
    assert got.jobDescriptor == job.jobDescriptor
    assert got.status.state == JobState.ACCEPTED


def test_get_unknown_job_and_task_is_none(store: JobStore) -> None:
    assert store.get_job("no-such-job") is None
    assert store.get_task("no-such-task") is None


def test_create_job_with_first_tasks(store: JobStore) -> None:
    job = make_job()
    tasks = [make_task(job, i) for i in range(3)]
    store.create_job(job, tasks)
    listed = store.list_tasks(job.id)
    assert sorted(t.id for t in listed) == sorted(t.id for t in tasks)
    assert all(t.version == 1 for t in listed)
    got = store.get_task(tasks[1].id)
    assert got is not None and got.index == 1


def test_create_existing_job_id_conflicts(store: JobStore) -> None:
    job = make_job()
    store.create_job(job)
    with pytest.raises(Conflict):
        store.create_job(job)


def test_archived_job_still_readable(store: JobStore) -> None:
    job = store.create_job(make_job())
    done = store.update_job(finish(job))
    store.archive_job(done)
    got = store.get_job(job.id)
    assert got is not None
    assert got.status.state == JobState.FINISHED
    assert job.id not in {j.id for j in store.list_active_jobs()}
    assert store.count_active_jobs() == 0


def test_group_name_unique_among_active_jobs(store: JobStore) -> None:
    first = store.create_job(make_job("v001"))
    with pytest.raises(GroupNameTaken) as info:
        store.create_job(make_job("v001"))
    message = str(info.value)
    assert "job with group sequence" in message
    assert "exists" in message
    assert first.id in message
    assert info.value.job_id == first.id
    # Another sequence, or another application, is a different name.
    store.create_job(make_job("v002"))
    store.create_job(make_job("v001", app="other"))
    # Jobs without a sequence have no group name and never collide.
    store.create_job(make_job(""))
    store.create_job(make_job(""))
    assert store.count_active_jobs() == 5


def test_group_name_freed_after_archive(store: JobStore) -> None:
    first = store.create_job(make_job("v001"))
    store.archive_job(finish(first))
    second = store.create_job(make_job("v001"))
    assert store.get_job(second.id) is not None
    with pytest.raises(GroupNameTaken) as info:
        store.create_job(make_job("v001"))
    assert second.id in str(info.value)


def _race_once(stores: list[JobStore], name: str) -> tuple[list[str], list[BaseException]]:
    barrier = threading.Barrier(len(stores))
    won: list[str] = []
    lost: list[BaseException] = []

    def create(s: JobStore) -> None:
        job = make_job(name)
        barrier.wait()
        try:
            s.create_job(job)
            won.append(job.id)
        except GroupNameTaken as e:
            lost.append(e)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return won, lost


def test_racing_creates_for_one_group_name(store_factory: Callable[[], JobStore]) -> None:
    """Two API processes creating the same job group at the same time: never both win."""
    for round_ in range(5):
        stores = [store_factory() for _ in range(2)]
        try:
            won, lost = _race_once(stores, f"race{round_}")
        finally:
            for s in stores:
                s.close()
        assert len(won) == 1, f"round {round_}: {len(won)} creates succeeded"
        assert len(lost) == 1


def test_update_job_versions(store: JobStore) -> None:
    job = store.create_job(make_job())
    v2 = store.update_job(job.with_status(JobState.KILL_INITIATED))
    assert v2.version == 2
    got = store.get_job(job.id)
    assert got is not None
    assert got.version == 2
    assert got.status.state == JobState.KILL_INITIATED
    assert [s.state for s in got.statusHistory] == [JobState.ACCEPTED]


def test_update_job_with_stale_version_conflicts(store: JobStore) -> None:
    job = store.create_job(make_job())
    store.update_job(job.with_status(JobState.KILL_INITIATED))
    with pytest.raises(Conflict):
        store.update_job(job.with_status(JobState.FINISHED))
    got = store.get_job(job.id)
    assert got is not None and got.status.state == JobState.KILL_INITIATED


def test_count_and_list_active_jobs(store: JobStore) -> None:
    jobs = [store.create_job(make_job()) for _ in range(7)]
    assert store.count_active_jobs() == 7
    assert {j.id for j in store.list_active_jobs()} == {j.id for j in jobs}
    store.archive_job(finish(jobs[0]))
    assert store.count_active_jobs() == 6


# ---- tasks --------------------------------------------------------------------------------
def test_task_lifecycle(store: JobStore) -> None:
    job = store.create_job(make_job())
    task = store.create_task(make_task(job))
    assert task.version == 1
    with pytest.raises(Conflict):
        store.create_task(task)
    launched = store.update_task(task.with_status(TaskState.LAUNCHED))
    assert launched.version == 2
    got = store.get_task(task.id)
    assert got is not None and got.state == TaskState.LAUNCHED and got.version == 2
    assert [t.id for t in store.list_tasks(job.id)] == [task.id]
    done = store.update_task(launched.with_status(TaskState.FINISHED, "failed", "exit 3"))
    store.archive_task(done)
    assert store.list_tasks(job.id) == []
    archived = store.get_task(task.id)
    assert archived is not None
    assert archived.state == TaskState.FINISHED
    assert archived.status.reasonMessage == "exit 3"
    assert task.id not in {t.id for t in store.list_active_tasks()}


def test_update_task_with_stale_version_conflicts(store: JobStore) -> None:
    job = store.create_job(make_job())
    task = store.create_task(make_task(job))
    store.update_task(task.with_status(TaskState.LAUNCHED))
    with pytest.raises(Conflict):
        store.update_task(task.with_status(TaskState.STARTED))
    got = store.get_task(task.id)
    assert got is not None and got.state == TaskState.LAUNCHED


def test_update_tasks_writes_each_and_leaves_the_changed_one(store: JobStore) -> None:
    job = store.create_job(make_job())
    a, b, c = (store.create_task(make_task(job, i)) for i in range(3))
    store.update_task(b.with_status(TaskState.LAUNCHED))  # b moved on since it was read
    written = store.update_tasks(
        [t.with_status(TaskState.LAUNCHED, "normal", "placed") for t in (a, b, c)], epoch=None
    )
    assert [w is None for w in written] == [False, True, False]
    assert written[0] is not None and written[0].version == a.version + 1
    for task in (a, c):
        got = store.get_task(task.id)
        assert got is not None and got.status.reasonMessage == "placed"
    got_b = store.get_task(b.id)
    assert got_b is not None and got_b.status.reasonMessage != "placed"
    assert store.update_tasks([], epoch=None) == []


def test_update_tasks_with_a_stale_epoch_writes_none(store: JobStore) -> None:
    job = store.create_job(make_job())
    tasks = [store.create_task(make_task(job, i)) for i in range(2)]
    store.claim_epoch(2)
    with pytest.raises(StaleEpoch):
        store.update_tasks([t.with_status(TaskState.LAUNCHED) for t in tasks], epoch=1)
    assert all(store.get_task(t.id).state == TaskState.ACCEPTED for t in tasks)  # type: ignore[union-attr]


def test_list_tasks_include_archived(store: JobStore) -> None:
    job = store.create_job(make_job())
    old = store.create_task(make_task(job, 0))
    store.archive_task(old.with_status(TaskState.FINISHED, "failed"))
    new = store.create_task(make_task(job, 0))
    assert [t.id for t in store.list_tasks(job.id)] == [new.id]
    both = store.list_tasks(job.id, include_archived=True)
    assert sorted(t.id for t in both) == sorted([old.id, new.id])


def test_archive_job_moves_its_tasks(store: JobStore) -> None:
    job = store.create_job(make_job())
    tasks = [store.create_task(make_task(job, i)) for i in range(3)]
    other = store.create_job(make_job())
    other_task = store.create_task(make_task(other))
    store.archive_job(finish(job))
    assert store.list_tasks(job.id) == []
    assert {t.id for t in store.list_tasks(job.id, include_archived=True)} == {t.id for t in tasks}
    assert all(store.get_task(t.id) is not None for t in tasks)
    assert {t.id for t in store.list_active_tasks()} == {other_task.id}


def test_set_aside_moves_records_to_the_archive_as_stored(store: JobStore) -> None:
    """What an operator does with a record nobody can read: the store moves it unread."""
    job = store.create_job(make_job())
    first, second = (store.create_task(make_task(job, i)) for i in range(2))
    store.take_dirty()
    assert store.raw_record("task", first.id) is not None
    assert '"jobId"' in (store.raw_record("task", first.id) or "")
    assert store.set_aside("task", first.id) == [first.id]
    assert store.raw_record("task", first.id) is None
    assert [t.id for t in store.list_tasks(job.id)] == [second.id]
    assert store.get_task(first.id) is not None  # kept in the archive
    assert job.id in store.take_dirty()  # the leader looks at the job again
    assert store.set_aside("task", first.id) == []  # no longer active: nothing to move

    assert store.set_aside("job", job.id) == [job.id, second.id]
    assert store.raw_record("job", job.id) is None
    assert job.id not in {j.id for j in store.list_active_jobs()}
    assert store.get_job(job.id) is not None and store.get_task(second.id) is not None
    assert store.list_active_tasks() == []
    with pytest.raises(ValueError, match="job or task"):
        store.set_aside("widget", job.id)


def test_load_active(store: JobStore) -> None:
    jobs = [store.create_job(make_job()) for _ in range(5)]
    tasks = [store.create_task(make_task(j, i)) for j in jobs for i in range(4)]
    store.archive_job(finish(jobs[0]))
    gone = store.create_task(make_task(jobs[1], 9))
    store.archive_task(gone)
    state = store.load_active()
    assert {j.id for j in state.jobs} == {j.id for j in jobs[1:]}
    assert {t.id for t in state.tasks} == {t.id for t in tasks if t.jobId != jobs[0].id}
    assert {t.id for t in store.list_active_tasks()} == {t.id for t in state.tasks}


# ---- the API's requests to the master -------------------------------------------------------
def test_dirty_marks_returned_once(store: JobStore) -> None:
    assert store.take_dirty() == []
    store.mark_dirty("a")
    store.mark_dirty("b")
    store.mark_dirty("a")
    assert sorted(store.take_dirty()) == ["a", "b"]
    assert store.take_dirty() == []
    store.mark_dirty("c")
    assert store.take_dirty() == ["c"]
    assert store.take_dirty() == []


def test_kill_requests(store: JobStore) -> None:
    job = store.create_job(make_job())
    t1, t2 = (store.create_task(make_task(job, i)) for i in range(2))
    store.take_dirty()
    r1 = KillRequest(job.id, t1.id, shrink=True, reason="killed", message="by user")
    store.add_kill_request(r1)
    store.add_kill_request(KillRequest(job.id, t2.id, eviction=True))
    assert job.id in store.take_dirty(), "a kill request wakes the master for its job"
    listed = {r.task_id: r for r in store.list_kill_requests(job.id)}
    assert set(listed) == {t1.id, t2.id}
    assert listed[t1.id] == r1
    assert listed[t2.id].eviction and not r1.eviction  # an eviction stays one
    store.delete_kill_request(r1)
    assert [r.task_id for r in store.list_kill_requests(job.id)] == [t2.id]
    assert store.list_kill_requests("other-job") == []


# ---- leadership fencing -------------------------------------------------------------------
def test_claim_epoch(store: JobStore) -> None:
    assert store.current_epoch() == 0
    store.claim_epoch(3)
    assert store.current_epoch() == 3
    store.claim_epoch(3)  # the same leader claiming again is fine
    store.claim_epoch(5)
    assert store.current_epoch() == 5
    with pytest.raises(StaleEpoch):
        store.claim_epoch(4)
    assert store.current_epoch() == 5


def test_stale_epoch_writes_refused(store: JobStore) -> None:
    job = store.create_job(make_job())
    task = store.create_task(make_task(job), epoch=1)
    store.claim_epoch(2)
    with pytest.raises(StaleEpoch):
        store.update_job(job.with_status(JobState.KILL_INITIATED), epoch=1)
    with pytest.raises(StaleEpoch):
        store.create_task(make_task(job, 1), epoch=1)
    with pytest.raises(StaleEpoch):
        store.update_task(task.with_status(TaskState.LAUNCHED), epoch=1)
    with pytest.raises(StaleEpoch):
        store.archive_task(task.with_status(TaskState.FINISHED), epoch=1)
    with pytest.raises(StaleEpoch):
        store.archive_job(finish(job), epoch=1)
    store.add_kill_request(KillRequest(job.id, task.id))
    with pytest.raises(StaleEpoch):
        store.delete_kill_request(KillRequest(job.id, task.id), epoch=1)
    with pytest.raises(StaleEpoch):
        store.set_meta("framework", "old", epoch=1)
    # Nothing the deposed leader tried was written.
    got_job = store.get_job(job.id)
    assert got_job is not None and got_job.version == 1
    assert got_job.status.state == JobState.ACCEPTED
    assert [t.id for t in store.list_tasks(job.id)] == [task.id]
    got_task = store.get_task(task.id)
    assert got_task is not None and got_task.state == TaskState.ACCEPTED
    assert len(store.list_kill_requests(job.id)) == 1
    assert store.get_meta("framework") is None


def test_newer_epoch_writes_accepted(store: JobStore) -> None:
    job = store.create_job(make_job())
    store.claim_epoch(2)
    task = store.create_task(make_task(job), epoch=2)
    task = store.update_task(task.with_status(TaskState.LAUNCHED), epoch=2)
    job = store.update_job(job.with_status(JobState.KILL_INITIATED), epoch=3)
    store.set_meta("framework", "f-1", epoch=3)
    assert store.get_meta("framework") == "f-1"
    store.archive_job(finish(job), epoch=3)
    got = store.get_job(job.id)
    assert got is not None and got.status.state == JobState.FINISHED
    assert store.get_task(task.id) is not None


def test_meta(store: JobStore) -> None:
    assert store.get_meta("framework-id") is None
    store.set_meta("framework-id", "abc")
    assert store.get_meta("framework-id") == "abc"
    store.set_meta("framework-id", "def")
    assert store.get_meta("framework-id") == "def"


def test_second_handle_sees_writes(store_factory: Callable[[], JobStore]) -> None:
    """The API and the master open the store separately; each sees the other's writes."""
    a, b = store_factory(), store_factory()
    try:
        job = a.create_job(make_job("v001"))
        got = b.get_job(job.id)
        assert got is not None and got.version == 1
        b.update_job(got.with_status(JobState.KILL_INITIATED))
        with pytest.raises(Conflict):
            a.update_job(job.with_status(JobState.FINISHED))
        with pytest.raises(GroupNameTaken):
            b.create_job(make_job("v001"))
    finally:
        a.close()
        b.close()


# ---- the leader's index load ----------------------------------------------------------------
def _placed_and_waiting(store: JobStore) -> tuple[Job, Task, Task]:
    """A job with a task Launched on agent-7 and one still waiting."""
    job = store.create_job(make_job())
    placed = store.create_task(make_task(job, 0))
    placed = store.update_task(
        placed.model_copy(
            update={"taskContext": {**placed.taskContext, "agent.id": "agent-7"}}
        ).with_status(TaskState.LAUNCHED)
    )
    return job, placed, store.create_task(make_task(job, 1))


def test_load_active_index(store: JobStore) -> None:
    job, placed, waiting = _placed_and_waiting(store)
    gone = store.create_job(make_job())
    store.archive_job(finish(gone))
    index = store.load_active_index()
    assert [j.id for j in index.jobs] == [job.id]
    rows = {r.id: r for r in index.tasks}
    assert set(rows) == {placed.id, waiting.id}
    row = rows[placed.id]
    assert (row.job_id, row.version, row.state, row.agent_id) == (
        job.id,
        2,
        TaskState.LAUNCHED,
        "agent-7",
    )
    assert row.timestamp == placed.status.timestamp
    assert Task.model_validate_json(row.raw).id == placed.id
    assert rows[waiting.id].agent_id is None
    assert rows[waiting.id].state == TaskState.ACCEPTED


def test_load_active_facts_reads_no_document(store: JobStore) -> None:
    """The leader's start-up read: every active task's plain columns, no document."""
    job, placed, waiting = _placed_and_waiting(store)
    done = store.create_task(make_task(job, 2))
    store.archive_task(done.with_status(TaskState.FINISHED))
    gone = store.create_job(make_job())
    store.create_task(make_task(gone, 0))
    store.archive_job(finish(gone))
    facts = store.load_active_facts()
    assert [j.id for j in facts.jobs] == [job.id]
    rows = {r.id: r for r in facts.tasks}
    assert set(rows) == {placed.id, waiting.id}
    assert rows[placed.id] == (
        placed.id,
        job.id,
        TaskState.LAUNCHED,
        "agent-7",
        placed.status.timestamp,
    )
    assert (rows[waiting.id].state, rows[waiting.id].agent_id) == (TaskState.ACCEPTED, None)
    assert rows[waiting.id].timestamp == waiting.status.timestamp
    assert all(len(row) == 5 for row in facts.tasks)  # the columns, and nothing else
    # by job, a list per column in one order
    [(job_id, group)] = facts.tasks_by_job.items()
    assert job_id == job.id and len(group) == 2
    for i, task_id in enumerate(group.ids):
        row = rows[task_id]
        assert (group.states[i], group.agent_ids[i], group.timestamps[i]) == row[2:]


def test_active_task_documents(store: JobStore) -> None:
    """A task's document as stored, read later by id; ids that are not active are left
    out, and many are read at once."""
    job = store.create_job(make_job())
    tasks = [store.create_task(make_task(job, i)) for i in range(3)]
    moved = store.update_task(tasks[0].with_status(TaskState.LAUNCHED))
    store.archive_task(tasks[2].with_status(TaskState.FINISHED))
    documents = store.active_task_documents([moved.id, tasks[1].id, tasks[2].id, "no-such"])
    assert set(documents) == {moved.id, tasks[1].id}
    assert Task.model_validate_json(documents[moved.id]) == moved
    assert Task.model_validate_json(documents[tasks[1].id]) == tasks[1]
    assert store.active_task_documents([]) == {}
    many = []  # more than one read's worth of ids, in jobs a batch can take
    for _ in range(26):
        other = make_job()
        tasks_of_other = [make_task(other, i) for i in range(20)]
        store.create_job(other, tasks_of_other)
        many += tasks_of_other
    assert set(store.active_task_documents([t.id for t in many])) == {t.id for t in many}


# ---- change feed ----------------------------------------------------------------------------
def _feed(store: JobStore, after: int) -> list[tuple[str, str, str]]:
    return [(c.kind, c.entity_id, c.op) for c in store.changes_since(after, 10_000).changes]


def test_change_feed_records_every_write(store: JobStore) -> None:
    assert store.last_change_seq() == 0
    job = make_job()
    first = make_task(job, 0)
    job = store.create_job(job, [first])
    head = store.last_change_seq()
    assert head > 0
    task = store.create_task(make_task(job, 1))
    task = store.update_task(task.with_status(TaskState.LAUNCHED))
    store.update_task_attributes(task.id, job.id, {"owner": "me"})
    store.archive_task(task.with_status(TaskState.FINISHED))
    job = store.update_job(job.with_status(JobState.KILL_INITIATED))
    store.archive_job(finish(job))
    entries = _feed(store, head)
    assert entries == [
        ("task", task.id, "put"),
        ("task", task.id, "put"),
        ("task", task.id, "put"),
        ("task", task.id, "archive"),
        ("job", job.id, "put"),
        ("task", first.id, "archive"),
        ("job", job.id, "archive"),
    ]
    batch = store.changes_since(0, 10_000)
    assert {("job", job.id, "put"), ("task", first.id, "put")} <= {
        (c.kind, c.entity_id, c.op) for c in batch.changes
    }
    seqs = [c.seq for c in batch.changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(c.job_id == job.id for c in batch.changes)
    assert batch.last_seq == store.last_change_seq() == seqs[-1]
    assert batch.first_seq <= seqs[0]


def test_change_feed_pages_and_resumes(store: JobStore) -> None:
    jobs = [store.create_job(make_job()) for _ in range(7)]
    seen: list[str] = []
    after = 0
    while True:
        batch = store.changes_since(after, limit=3)
        assert len(batch.changes) <= 3
        if not batch.changes:
            break
        seen += [c.entity_id for c in batch.changes]
        after = batch.changes[-1].seq
    assert seen == [j.id for j in jobs]
    assert store.changes_since(after).changes == []


def test_change_feed_seen_by_another_handle(store_factory: Callable[[], JobStore]) -> None:
    """The API follows the feed in its own process while the master writes in another."""
    writer, reader = store_factory(), store_factory()
    try:
        head = reader.last_change_seq()
        job = writer.create_job(make_job())
        task = writer.create_task(make_task(job), epoch=1)
        writer.update_task(task.with_status(TaskState.LAUNCHED), epoch=1)
        got = [(c.kind, c.entity_id) for c in reader.changes_since(head).changes]
        assert got == [("job", job.id), ("task", task.id), ("task", task.id)]
    finally:
        writer.close()
        reader.close()


def test_active_tasks_leave_with_archiving(store: JobStore) -> None:
    assert store.list_active_tasks() == []
    job = make_job()
    store.create_job(job, [make_task(job, i) for i in range(3)])
    extra = store.create_task(make_task(job, 3))
    assert len(store.list_active_tasks()) == 4
    store.archive_task(extra)
    assert len(store.list_active_tasks()) == 3
    store.archive_job(finish(job))
    assert store.list_active_tasks() == []


# ---- capacity groups --------------------------------------------------------------------------
def test_capacity_groups(store: JobStore) -> None:
    assert store.list_capacity_groups() == {}
    assert store.get_capacity_group("web") is None
    store.create_capacity_group("web", '{"instances": 10}')
    with pytest.raises(Conflict):
        store.create_capacity_group("web", '{"instances": 20}')
    assert store.get_capacity_group("web") == '{"instances": 10}'
    store.put_capacity_group("web", '{"instances": 30}')
    store.put_capacity_group("batch", '{"instances": 5}')
    assert store.list_capacity_groups() == {
        "web": '{"instances": 30}',
        "batch": '{"instances": 5}',
    }
    assert store.delete_capacity_group("web") is True
    assert store.delete_capacity_group("web") is False
    assert store.get_capacity_group("web") is None
    assert list(store.list_capacity_groups()) == ["batch"]
    store.create_capacity_group("web", "{}")  # a deleted name can be created again


# ---- scaling policies -------------------------------------------------------------------------
def make_policy(job_id: str, target: float = 50.0) -> PolicyRecord:
    policy = parse_policy(
        {
            "targetPolicyDescriptor": {
                "targetValue": target,
                "customizedMetricSpecification": {"namespace": "app", "metricName": "rps"},
            }
        }
    )
    return PolicyRecord(id=str(uuid.uuid4()), jobId=job_id, policy=policy)


def test_scaling_policies(store: JobStore) -> None:
    assert store.list_scaling_policies() == []
    a, b, c = make_policy("job-a"), make_policy("job-a", 70.0), make_policy("job-b")
    for record in (a, b, c):
        assert store.create_scaling_policy(record).version == 1
    with pytest.raises(Conflict):
        store.create_scaling_policy(a)
    got = store.get_scaling_policy(b.id)
    assert got is not None and got.jobId == "job-a" and got.version == 1
    assert got.policy.targetPolicyDescriptor is not None
    assert got.policy.targetPolicyDescriptor.targetValue == 70.0
    assert got.state == PolicyState.PENDING
    assert {r.id for r in store.list_scaling_policies("job-a")} == {a.id, b.id}
    assert {r.id for r in store.list_scaling_policies()} == {a.id, b.id, c.id}
    assert store.list_scaling_policies("job-none") == []
    store.delete_scaling_policy(a.id)
    assert store.get_scaling_policy(a.id) is None
    assert [r.id for r in store.list_scaling_policies("job-a")] == [b.id]
    store.delete_scaling_policy(a.id)  # gone already: nothing to do


def test_scaling_policy_updates_are_versioned_and_fenced(store: JobStore) -> None:
    record = store.create_scaling_policy(make_policy("job-a"))
    applied = store.update_scaling_policy(record.model_copy(update={"state": PolicyState.APPLIED}))
    assert applied.version == 2
    with pytest.raises(Conflict):  # written from the version read before
        store.update_scaling_policy(record.model_copy(update={"reason": "stale"}))
    got = store.get_scaling_policy(record.id)
    assert got is not None and got.state == PolicyState.APPLIED and got.version == 2
    store.claim_epoch(5)
    with pytest.raises(StaleEpoch):
        store.update_scaling_policy(got, epoch=4)
    with pytest.raises(StaleEpoch):
        store.delete_scaling_policy(got.id, epoch=4)
    deleting = store.update_scaling_policy(
        got.model_copy(update={"state": PolicyState.DELETING}), epoch=5
    )
    assert deleting.version == 3
    store.delete_scaling_policy(got.id, epoch=5)
    assert store.get_scaling_policy(got.id) is None
    with pytest.raises(Conflict):  # gone: an update has nothing to change
        store.update_scaling_policy(deleting)


# ---- idempotency keys -------------------------------------------------------------------------
def test_idempotency_keys(store: JobStore) -> None:
    before = time.time()
    won = store.claim_idempotency_key("k1", "fp-a", "job-a", 600)
    assert (won.fingerprint, won.job_id) == ("fp-a", "job-a")
    assert before + 599 <= won.expires_at <= time.time() + 601
    held = store.claim_idempotency_key("k1", "fp-b", "job-b", 600)
    assert (held.fingerprint, held.job_id) == ("fp-a", "job-a")
    assert abs(held.expires_at - won.expires_at) < 1.0
    other = store.claim_idempotency_key("k2", "fp-b", "job-b", 600)
    assert other.job_id == "job-b"
    # Releasing on behalf of another job does nothing; the holder's release frees the key.
    store.release_idempotency_key("k1", "job-b")
    assert store.claim_idempotency_key("k1", "fp-c", "job-c", 600).job_id == "job-a"
    store.release_idempotency_key("k1", "job-a")
    assert store.claim_idempotency_key("k1", "fp-c", "job-c", 600).job_id == "job-c"


def test_idempotency_key_expires(store: JobStore) -> None:
    store.claim_idempotency_key("k", "fp-a", "job-a", 1)
    assert store.claim_idempotency_key("k", "fp-b", "job-b", 1).job_id == "job-a"
    time.sleep(1.2)
    assert store.claim_idempotency_key("k", "fp-b", "job-b", 60).job_id == "job-b"


# ---- task attributes ----------------------------------------------------------------------------
def test_task_attributes(store: JobStore) -> None:
    job = store.create_job(make_job())
    t1, t2 = (store.create_task(make_task(job, i)) for i in range(2))
    assert store.get_task_attributes(t1.id) == {}
    head = store.last_change_seq()
    store.update_task_attributes(t1.id, job.id, {"a": "1", "b": "2"})
    store.update_task_attributes(t2.id, job.id, {"a": "x"})
    store.update_task_attributes(t1.id, job.id, {"b": "3", "c": "4"}, delete=["a"])
    assert store.get_task_attributes(t1.id) == {"b": "3", "c": "4"}
    assert store.list_task_attributes(job.id) == {t1.id: {"b": "3", "c": "4"}, t2.id: {"a": "x"}}
    assert store.list_task_attributes("other-job") == {}
    assert [c.entity_id for c in store.changes_since(head).changes] == [t1.id, t2.id, t1.id]
    # The master's task writes never touch the user's attributes.
    store.update_task(t1.with_status(TaskState.LAUNCHED))
    assert store.get_task_attributes(t1.id) == {"b": "3", "c": "4"}


# ---- task moves -------------------------------------------------------------------------------
def test_move_requests(store: JobStore) -> None:
    source = store.create_job(make_job())
    target = store.create_job(make_job())
    t1, t2 = (store.create_task(make_task(source, i)) for i in range(2))
    store.take_dirty()
    move = MoveRequest(source.id, target.id, t1.id, caller="alice")
    store.add_move_request(move)
    store.add_move_request(MoveRequest(source.id, target.id, t2.id))
    assert set(store.take_dirty()) == {source.id, target.id}
    listed = {m.task_id: m for m in store.list_move_requests(source.id)}
    assert set(listed) == {t1.id, t2.id}
    assert listed[t1.id] == move
    assert store.list_move_requests(target.id) == []
    store.delete_move_request(move)
    assert [m.task_id for m in store.list_move_requests(source.id)] == [t2.id]
    store.archive_job(finish(source))
    assert store.list_move_requests(source.id) == []


# ---- instance groups --------------------------------------------------------------------------
def test_instance_groups(store: JobStore) -> None:
    assert store.list_instance_groups() == {}
    store.set_instance_group("ig-1", "active")
    store.set_instance_group("ig-2", "phasedOut")
    store.set_instance_group("ig-1", "removable")
    assert store.list_instance_groups() == {"ig-1": "removable", "ig-2": "phasedOut"}


# ---- scheduler results ------------------------------------------------------------------------
def test_scheduler_results(store: JobStore) -> None:
    assert store.get_scheduler_result("t-1") is None
    store.put_scheduler_result("t-1", "j-1", '{"reason": "no host"}')
    store.put_scheduler_result("t-1", "j-1", '{"reason": "no cpu"}')
    store.put_scheduler_result("t-2", "j-1", '{"reason": "no ip"}', epoch=1)
    assert store.get_scheduler_result("t-1") == '{"reason": "no cpu"}'
    store.delete_scheduler_result("t-1")
    assert store.get_scheduler_result("t-1") is None
    assert store.get_scheduler_result("t-2") == '{"reason": "no ip"}'


def test_new_writes_fenced_by_epoch(store: JobStore) -> None:
    job = store.create_job(make_job())
    task = store.create_task(make_task(job))
    move = MoveRequest(job.id, "other", task.id)
    store.add_move_request(move)
    store.put_scheduler_result(task.id, job.id, "{}", epoch=1)
    store.claim_epoch(2)
    with pytest.raises(StaleEpoch):
        store.put_scheduler_result(task.id, job.id, '{"old": true}', epoch=1)
    with pytest.raises(StaleEpoch):
        store.delete_scheduler_result(task.id, epoch=1)
    with pytest.raises(StaleEpoch):
        store.delete_move_request(move, epoch=1)
    assert store.get_scheduler_result(task.id) == "{}"
    assert store.list_move_requests(job.id) == [move]
    store.delete_move_request(move, epoch=2)
    store.delete_scheduler_result(task.id, epoch=2)
    assert store.list_move_requests(job.id) == []
    assert store.get_scheduler_result(task.id) is None


# ---- moving a task between jobs -------------------------------------------------------------
def _two_jobs(store: JobStore) -> tuple[Job, Job, Task, Task]:
    source = store.create_job(make_job())
    target = store.create_job(make_job())
    t1, t2 = (store.create_task(make_task(source, i)) for i in range(2))
    return source, target, t1, t2


def test_move_task(store: JobStore) -> None:
    source, target, t1, t2 = _two_jobs(store)
    store.update_task_attributes(t1.id, source.id, {"owner": "alice"})
    store.add_move_request(MoveRequest(source.id, target.id, t1.id))
    store.claim_epoch(1)
    head = store.last_change_seq()
    moved, new_source, new_target = store.move_task(
        t1.model_copy(update={"jobId": target.id}), source, target, epoch=1
    )
    assert (moved.version, new_source.version, new_target.version) == (2, 2, 2)
    got = store.get_task(t1.id)
    assert got is not None and got.jobId == target.id and got.version == 2
    assert [t.id for t in store.list_tasks(source.id)] == [t2.id]
    assert [t.id for t in store.list_tasks(target.id)] == [t1.id]
    got_source, got_target = store.get_job(source.id), store.get_job(target.id)
    assert got_source is not None and got_source.version == 2
    assert got_target is not None and got_target.version == 2
    assert store.list_move_requests(source.id) == []
    assert store.list_task_attributes(target.id) == {t1.id: {"owner": "alice"}}
    assert store.list_task_attributes(source.id) == {}
    assert store.get_task_attributes(t1.id) == {"owner": "alice"}
    rows = {r.id: r for r in store.load_active_index().tasks}
    assert rows[t1.id].job_id == target.id
    changes = {(c.kind, c.entity_id, c.job_id) for c in store.changes_since(head).changes}
    assert changes == {
        ("job", source.id, source.id),
        ("job", target.id, target.id),
        ("task", t1.id, target.id),
    }
    # the moved task is the target's now: moving it on from the source is refused
    with pytest.raises(Conflict):
        store.move_task(moved, new_source, new_target, epoch=1)


def test_move_task_refused_writes_nothing(store: JobStore) -> None:
    source, target, t1, t2 = _two_jobs(store)
    store.add_move_request(MoveRequest(source.id, target.id, t1.id))
    moving = t1.model_copy(update={"jobId": target.id})
    with pytest.raises(ValueError):
        store.move_task(t1, source, target)  # the task must name its target job
    stale_task = store.update_task(t1.with_status(TaskState.LAUNCHED))
    with pytest.raises(Conflict):
        store.move_task(moving, source, target)  # the task changed since it was read
    moving = stale_task.model_copy(update={"jobId": target.id})
    store.update_job(target.with_status(JobState.ACCEPTED))
    with pytest.raises(Conflict):
        store.move_task(moving, source, target)  # the target job changed
    with pytest.raises(Conflict):
        store.move_task(t2.model_copy(update={"jobId": source.id}), target, source)
    store.claim_epoch(5)
    fresh_target = store.get_job(target.id)
    assert fresh_target is not None
    with pytest.raises(StaleEpoch):
        store.move_task(moving, source, fresh_target, epoch=4)
    assert {t.id for t in store.list_tasks(source.id)} == {t1.id, t2.id}
    assert store.list_tasks(target.id) == []
    got = store.get_task(t1.id)
    assert got is not None and got.jobId == source.id
    assert len(store.list_move_requests(source.id)) == 1


def test_list_all_move_requests(store: JobStore) -> None:
    assert store.list_all_move_requests() == []
    a, b = store.create_job(make_job()), store.create_job(make_job())
    moves = [
        MoveRequest(a.id, b.id, "t1"),
        MoveRequest(a.id, b.id, "t2"),
        MoveRequest(b.id, a.id, "t3"),
    ]
    for m in moves:
        store.add_move_request(m)
    assert sorted(store.list_all_move_requests(), key=lambda m: m.task_id) == moves


def test_list_all_kill_requests(store: JobStore) -> None:
    """A new leader finishes the kills its predecessor took the dirty marks of."""
    assert store.list_all_kill_requests() == []
    a, b = store.create_job(make_job()), store.create_job(make_job())
    kills = [KillRequest(a.id, "t1", shrink=True), KillRequest(b.id, "t2", message="by user")]
    for k in kills:
        store.add_kill_request(k)
    store.take_dirty()
    assert sorted(store.list_all_kill_requests(), key=lambda k: k.task_id) == kills
    store.archive_job(finish(a))
    assert store.list_all_kill_requests() == [kills[1]]
