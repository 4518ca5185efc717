"""The store conformance suite against the embedded SQLite backend, plus its durability."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.store.conformance import *  # noqa: F401,F403
from tests.store.conformance import make_job, make_task
from titus.model.states import JobState
from titus.store.base import JobStore
from titus.store.sqlite import SqliteJobStore


@pytest.fixture
def store_factory(tmp_path: Path) -> Callable[[], JobStore]:
    path = tmp_path / "titus.db"
    return lambda: SqliteJobStore(path)


CHILD = textwrap.dedent(
    """
    import sys, uuid
    from titus.model.job import *
    from titus.model.states import JobState
    from titus.store.sqlite import SqliteJobStore

    import threading

    store = SqliteJobStore(sys.argv[1])
    out = threading.Lock()

    def create_forever():
        while True:
            job = Job(
                id=str(uuid.uuid4()),
                jobDescriptor=JobDescriptor(
                    owner=Owner(teamEmail="t@example.com"), applicationName="app",
                    container=Container(image=Image(name="busybox", tag="latest")),
                    batch=BatchJobSpec(size=1),
                ),
                status=JobStatus(state=JobState.ACCEPTED),
            )
            store.create_job(job)  # committed in groups with the other threads' creates
            with out:
                print(job.id, flush=True)  # acknowledged only once create_job returned

    for _ in range(8):
        threading.Thread(target=create_forever, daemon=True).start()
    threading.Event().wait()
    """
)


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """A process killed right after acknowledging creates (8 threads at once, committed in
    groups) keeps every acknowledged job."""
    path = tmp_path / "durable.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    acked: list[str] = []
    assert child.stdout is not None
    try:
        while len(acked) < 200:
            line = child.stdout.readline()
            assert line, "the child stopped before acknowledging 200 jobs"
            acked.append(line.strip())
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    store = SqliteJobStore(path)
    try:
        missing = [job_id for job_id in acked if store.get_job(job_id) is None]
        assert missing == []
        assert store.count_active_jobs() >= len(acked)
    finally:
        store.close()


SUBMITTING_CHILD = textwrap.dedent(
    """
    import sys, uuid
    from concurrent.futures import wait
    from titus.model.job import *
    from titus.model.states import JobState
    from titus.store.sqlite import SqliteJobStore

    store = SqliteJobStore(sys.argv[1])

    def job():
        return Job(
            id=str(uuid.uuid4()),
            jobDescriptor=JobDescriptor(
                owner=Owner(teamEmail="t@example.com"), applicationName="app",
                container=Container(image=Image(name="busybox", tag="latest")),
                batch=BatchJobSpec(size=1),
            ),
            status=JobStatus(state=JobState.ACCEPTED),
        )

    while True:  # as the API's event loop does: many in flight, none waited for alone
        futures = [store.submit_create_job(job(), mark_dirty=True) for _ in range(16)]
        for future in wait(futures).done:
            print(future.result().job.id, flush=True)  # acknowledged once resolved
    """
)


def test_kill_9_loses_nothing_acknowledged_through_submitted_creates(tmp_path: Path) -> None:
    """Creates handed to the writer thread (the API's way) are acknowledged only once on
    disk too: a kill -9 right after keeps every one of them."""
    path = tmp_path / "submitted.db"
    child = subprocess.Popen(
        [sys.executable, "-c", SUBMITTING_CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    acked: list[str] = []
    assert child.stdout is not None
    try:
        while len(acked) < 200:
            line = child.stdout.readline()
            assert line, "the child stopped before acknowledging 200 jobs"
            acked.append(line.strip())
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    store = SqliteJobStore(path)
    try:
        assert [job_id for job_id in acked if store.get_job(job_id) is None] == []
        assert set(acked) <= set(store.take_dirty())  # each with the mark the master reads
    finally:
        store.close()


def test_submitted_and_waited_creates_share_commits_each_with_its_own_answer(
    tmp_path: Path,
) -> None:
    """Submitted creates join the same group commits as creates from threads; each gets its
    own answer (a taken group name fails that one alone), and each names the change feed
    entry it wrote."""
    from concurrent.futures import ThreadPoolExecutor, wait

    from titus.store.base import GroupNameTaken

    store = SqliteJobStore(tmp_path / "mixed.db")
    jobs = [make_job(group_sequence="v002" if i % 10 == 0 else "") for i in range(200)]
    submitted = [store.submit_create_job(job) for job in jobs[:100]]

    def create(job: Any) -> str:
        try:
            store.create_job(job)
            return "created"
        except GroupNameTaken:
            return "taken"

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(create, jobs[100:]))
    wait(submitted)
    for future in submitted:
        if future.exception() is None:
            answers.append("created")
        else:
            assert isinstance(future.exception(), GroupNameTaken)
            answers.append("taken")
    assert answers.count("taken") == 19 and answers.count("created") == 181
    seqs = {f.result().job.id: f.result().seq for f in submitted if f.exception() is None}
    feed = {c.entity_id: c.seq for c in store.changes_since(0, 1000).changes}
    assert seqs == {job_id: feed[job_id] for job_id in seqs}
    assert all(f.result().job.version == 1 for f in submitted if f.exception() is None)


def test_concurrent_creates_share_commits_and_each_gets_its_own_answer(tmp_path: Path) -> None:
    """Creates from many threads commit in groups, yet each caller hears only about its
    own: the one whose group name is taken is refused, the others in its group land."""
    from concurrent.futures import ThreadPoolExecutor

    from titus.store.base import GroupNameTaken

    store = SqliteJobStore(tmp_path / "g.db")
    commits = 0
    original = store._commit_group

    def counting(batch: Any) -> None:
        nonlocal commits
        commits += 1
        original(batch)

    store._commit_group = counting  # type: ignore[method-assign]
    jobs = [make_job(group_sequence="v001" if i % 10 == 0 else "") for i in range(200)]

    def create(job: Any) -> str:
        try:
            store.create_job(job)
            return "created"
        except GroupNameTaken:
            return "taken"

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(create, jobs))
    assert answers.count("taken") == 19 and answers.count("created") == 181
    assert store.count_active_jobs() == 181
    assert commits < 200  # fewer commits (and fsyncs) than creates


def _open_at_once(path: str, barrier: Any, out: Any) -> None:
    barrier.wait()
    try:
        store = SqliteJobStore(path)
        store.get_meta("x")
        out.put("ok")
    except Exception as exc:  # reported to the test
        out.put(repr(exc))


def test_processes_opening_a_new_store_file_at_once_all_succeed(tmp_path: Path) -> None:
    # the api and two masters of a cluster start together on one new file
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(8), ctx.Queue()
    path = str(tmp_path / "new.db")
    procs = [ctx.Process(target=_open_at_once, args=(path, barrier, out)) for _ in range(8)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    assert results == ["ok"] * 8


def test_the_archive_is_pruned_after_its_ttl(tmp_path: Path) -> None:
    """Finished work is kept as long as Cassandra's archive keeps it, then goes, so an
    embedded store that runs for years does not grow with every job it ever ran."""
    store = SqliteJobStore(tmp_path / "t.db", synchronous="OFF")
    old = store.create_job(make_job(), [])
    old_task = store.create_task(make_task(old))
    store.archive_job(old.with_status(JobState.FINISHED))
    conn = sqlite3.connect(tmp_path / "t.db")
    with conn:  # as if archived 31 days ago
        for table in ("archived_jobs", "archived_tasks"):
            conn.execute(f"UPDATE {table} SET archived_at = archived_at - ?", (31 * 86_400_000,))
    conn.close()
    recent = store.create_job(make_job(), [])
    store.archive_job(recent.with_status(JobState.FINISHED))
    assert store.get_job(old.id) is not None  # not pruned on every write
    store.prune_archive()
    assert store.get_job(old.id) is None and store.get_task(old_task.id) is None
    assert store.get_job(recent.id) is not None


def test_a_file_archived_before_archive_times_keeps_its_archive(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE archived_jobs (job_id TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "CREATE TABLE archived_tasks (task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, "
            "value TEXT NOT NULL)"
        )
        job = make_job()
        conn.execute("INSERT INTO archived_jobs VALUES (?, ?)", (job.id, job.model_dump_json()))
    conn.close()
    store = SqliteJobStore(path, synchronous="OFF")
    store.prune_archive()
    assert store.get_job(job.id) is not None  # counts as archived at the upgrade


def test_the_wal_is_checkpointed_off_the_commit_path_and_stays_bounded(tmp_path: Path) -> None:
    """Automatic checkpoints are off (they would stall a commit); the store's own
    checkpointer copies the write-ahead log back, so that it starts over and is cut back to
    its limit however far a burst of writes made it grow."""
    from tests.support.poll import wait_until
    from titus.store.sqlite.connection import CHECKPOINT_EVERY_COMMITS, WAL_SIZE_LIMIT

    store = SqliteJobStore(tmp_path / "wal.db")
    burst = 5 * CHECKPOINT_EVERY_COMMITS
    for _ in range(burst):
        store.create_job(make_job())
    assert store._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    wal = tmp_path / "wal.db-wal"
    written = burst

    def cut_back() -> bool:
        # writes go on (a few at a time): once a checkpoint caught up, the log starts over
        nonlocal written
        for _ in range(CHECKPOINT_EVERY_COMMITS // 10):
            store.create_job(make_job())
        written += CHECKPOINT_EVERY_COMMITS // 10
        return wal.stat().st_size <= WAL_SIZE_LIMIT

    wait_until("the log to start over within its limit", cut_back, 60)
    assert store.count_active_jobs() == written
    store.close()
