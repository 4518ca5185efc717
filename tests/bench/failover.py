"""Failover benchmark: how long the cluster goes without a leader that acts.

Run: python -m tests.bench.failover [--rounds N] [--session-timeout S] [--tasks N]

1. kill -9 of the leader to the new leader's first launch. A cluster of processes (API,
   two masters, one agent; ZooKeeper from scripts/zookeeper.sh, Docker from
   scripts/docker-engine.sh) with work pending when the leader dies: the figure is from the
   kill to the moment the successor sends its first launch to a host (it records that time
   in the store). Target: the ZooKeeper session timeout + 1 s.
2. Leader start-up with 100,000 active tasks in the store: claim the epoch, load the active
   state, take in what 1,000 hosts report they run (every running task), reconcile, and run
   the first iteration (which places pending tasks). Measured in-process against a SQLite
   store, with a driver that answers from memory so only the leader's own work is timed.
   Baseline in the same run: parsing every task as the previous start-up did
   (`load_active`). Target: under 2 s.

Lines a script can read: `failover: <s> s kill-to-first-launch (session timeout <t> s)` per
round and `failover median: <s> s`, and `startup: <n> tasks in <s> s (baseline parse-all
<b> s)`.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import signal
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from titus.coord.base import Leadership
from titus.coord.local import LocalCoordinator
from titus.master.cluster import HostReport, HostView, Placement
from titus.master.leader import Master
from titus.model.job import Job, JobStatus, Task, TaskStatus
from titus.model.launch import TaskReport
from titus.model.states import JobState, TaskState
from titus.model.validation import parse_job_descriptor
from titus.store.base import ActiveFacts
from titus.store.sqlite import SqliteJobStore

HOSTS = 1000
TASKS_PER_JOB = 50


# ---- 1. kill -9 to first launch ---------------------------------------------------------


def bench_failover(rounds: int, session_timeout: float) -> list[float]:
    import tests.support.cluster as cl  # needs pytest installed, as the tests do

    tmp = Path(tempfile.mkdtemp(prefix="titus-failover-"))
    c = cl.make_cluster(tmp, {"TITUS_MASTER_LOOP_INTERVAL_SEC": "0.5"})
    cl.SESSION_TIMEOUT = session_timeout
    figures: list[float] = []
    try:
        c.start_api()
        c.start_master("m1")
        c.wait_for("m1 to lead", lambda: c.leader() == "m1", timeout=60)
        c.start_master("m2")
        c.start_agent(f"bench-{uuid.uuid4().hex[:6]}", "zone-a", cpu=64, memory_mb=65536)
        c.wait_ready(agents=1)
        descriptor = {
            "owner": {"teamEmail": "bench@example.com"},
            "applicationName": "failover",
            "container": {
                "image": {"name": "titus/busybox", "tag": "latest"},
                "entryPoint": ["sh", "-c", "sleep 1"],
                "resources": {"cpu": 0.1, "memoryMB": 512, "diskMB": 10000, "networkMbps": 128},
            },
            "batch": {"size": 1, "retryPolicy": {"immediate": {"retries": 0}}},
        }
        for _ in range(rounds):
            leader = c.leader()
            assert leader is not None
            other = "m2" if leader == "m1" else "m1"
            c.wait_for(f"{other} to campaign", lambda o=other: c.procs[o].alive, timeout=30)
            before = c.meta("leader.lastElection") or {}
            killed_at = time.time()
            c.procs[leader].kill(signal.SIGKILL)
            # work arrives while nobody leads: the successor's first act is to launch it
            c.submit(descriptor)

            def launched(prev: dict[str, object] = before) -> dict[str, object] | None:
                rec = c.meta("leader.lastElection")
                if rec and rec.get("epoch") != prev.get("epoch") and rec.get("firstLaunchAt"):
                    return dict(rec)
                return None

            rec = c.wait_for("the successor's first launch", launched, timeout=120)
            took = float(rec["firstLaunchAt"]) - killed_at  # type: ignore[arg-type]
            figures.append(took)
            print(
                f"failover: {took:.3f} s kill-to-first-launch (session timeout "
                f"{session_timeout:g} s; elected after {float(rec['electedAt']) - killed_at:.3f}"  # type: ignore[arg-type]
                f" s, ready after {float(rec['readyAt']) - killed_at:.3f} s)",  # type: ignore[arg-type]
                flush=True,
            )
            c.start_master(leader)  # back as the standby for the next round
            time.sleep(1.0)
    finally:
        cl.cleanup(c)
        shutil.rmtree(tmp, ignore_errors=True)
    return figures


# ---- 2. start-up with many active tasks -------------------------------------------------


class MemoryDriver:
    """Hosts and what they run, from memory: the start-up figure is the leader's work."""

    def __init__(self, actual: dict[str, list[TaskReport]]) -> None:
        self.actual = actual
        self.launched: list[Placement] = []
        self.first_launch: float | None = None

    def start(self, leadership: Leadership, active: ActiveFacts) -> None:
        return None

    def stop(self) -> None:
        return None

    def hosts(self) -> list[HostView]:
        return [
            HostView(
                host_id=f"agent-{i}",
                total={
                    "cpu": 64.0,
                    "memoryMB": 262144.0,
                    "diskMB": 10_000_000.0,
                    "networkMbps": 100_000.0,
                    "gpu": 0.0,
                    "ipSlots": 2000.0,
                },
                attributes={"zone": f"zone-{i % 3}", "machineGroup": "default"},
            )
            for i in range(HOSTS)
        ]

    def launch(self, placements: Sequence[Placement]) -> None:
        if self.first_launch is None:
            self.first_launch = time.perf_counter()
        self.launched.extend(placements)

    def kill(self, task_id: str, host_id: str | None, reason: str = "killed") -> None:
        return None

    def take_reports(self, timeout: float) -> list[HostReport]:
        time.sleep(timeout)
        return []

    def acknowledge(self, report: HostReport) -> None:
        return None

    def actual_tasks(self) -> dict[str, list[TaskReport]] | None:
        return self.actual

    def lost_hosts(self) -> set[str]:
        return set()

    def wants_offers(self, pending: bool) -> None:
        return None

    def claims_due(self) -> list[str]:
        return []

    def claim(self, host_id: str, task_ids: Sequence[str]) -> None:
        return None


def fill(path: Path, tasks: int, pending_jobs: int) -> dict[str, list[TaskReport]]:
    """A store with `tasks` active tasks (jobs of 50), all running on HOSTS hosts except
    those of the last `pending_jobs` jobs, which wait for placement."""
    store = SqliteJobStore(path, synchronous="OFF")
    actual: dict[str, list[TaskReport]] = {f"agent-{i}": [] for i in range(HOSTS)}
    jobs = tasks // TASKS_PER_JOB
    for j in range(jobs):
        d = parse_job_descriptor(
            {
                "owner": {"teamEmail": "bench@example.com"},
                "applicationName": f"app{j % 40}",
                "container": {
                    "image": {"name": "img", "tag": "1"},
                    "resources": {
                        "cpu": 0.1,
                        "memoryMB": 512,
                        "diskMB": 10000,
                        "networkMbps": 128,
                    },
                },
                "service": {"capacity": {"min": 0, "desired": TASKS_PER_JOB, "max": 100}},
            }
        )
        job = Job(id=str(uuid.uuid4()), jobDescriptor=d, status=JobStatus(state=JobState.ACCEPTED))
        running = j < jobs - pending_jobs
        batch = []
        for i in range(TASKS_PER_JOB):
            tid = str(uuid.uuid4())
            t = Task(
                id=tid,
                jobId=job.id,
                originalId=tid,
                status=TaskStatus(state=TaskState.ACCEPTED),
                taskContext={
                    "task.index": str(i),
                    "task.originalId": tid,
                    "task.resubmitNumber": "0",
                    "task.systemResubmitNumber": "0",
                },
            )
            if running:
                host = f"agent-{(j * TASKS_PER_JOB + i) % HOSTS}"
                t = t.with_status(TaskState.LAUNCHED).with_status(TaskState.START_INITIATED)
                t = t.with_status(TaskState.STARTED)
                t.taskContext.update({"agent.id": host, "agent.zone": "zone-a"})
                actual[host].append(
                    TaskReport(taskId=tid, jobId=job.id, state=TaskState.STARTED, seq=1)
                )
            batch.append(t)
        store.create_job(job, batch)
    store.close()
    return actual


def settle(path: Path) -> None:
    """Bring everything in the store's write-ahead log into its file and empty the log, so
    the file alone is the store (the store's checkpointer may still hold a connection)."""
    conn = sqlite3.connect(path, timeout=60)
    try:
        for _ in range(120):  # while the store's checkpointer runs one of its own
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.5)
        raise AssertionError(f"{path}: the write-ahead log could not be emptied")
    finally:
        conn.close()


def copy_store(source: Path, target: Path) -> None:
    """A settled store's file copied over `target`, with no log of an earlier store at
    `target` left beside it (SQLite would replay it over the copy)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copy(source, target)


def bench_startup(tasks: int, cache: Path | None = None) -> tuple[float, float, float]:
    """Start-up figures; `cache` keeps the filled store (and what hosts run) between runs,
    since filling 100,000 tasks takes much longer than what is measured."""
    tmp = Path(tempfile.mkdtemp(prefix="titus-startup-"))
    try:
        path = tmp / "titus.db"
        t = time.perf_counter()
        if cache is not None and cache.exists():
            copy_store(cache, path)
            actual = pickle.loads(cache.with_suffix(".actual").read_bytes())
        else:
            actual = fill(path, tasks, pending_jobs=20)
            if cache is not None:
                settle(path)
                copy_store(path, cache)
                cache.with_suffix(".actual").write_bytes(pickle.dumps(actual))
        print(f"(store with {tasks} tasks ready in {time.perf_counter() - t:.1f} s)")
        store = SqliteJobStore(path)
        driver = MemoryDriver(actual)
        master = Master(store, LocalCoordinator(), driver, master_id="bench")
        leadership = Leadership(1)
        started = time.perf_counter()
        master.begin(leadership)
        loaded = time.perf_counter()
        master.sync_hosts(driver.actual_tasks())
        master.iterate()
        done = time.perf_counter()
        assert driver.launched, "the first iteration placed nothing"
        print(
            f"(load {loaded - started:.3f} s, hosts reconciled and first iteration "
            f"{done - loaded:.3f} s, {len(driver.launched)} launches, first at "
            f"{(driver.first_launch or done) - started:.3f} s)"
        )
        t = time.perf_counter()
        state = store.load_active()
        baseline = time.perf_counter() - t
        assert len(state.tasks) == tasks
        store.close()
        return done - started, (driver.first_launch or done) - started, baseline
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--session-timeout", type=float, default=2.0)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--store-cache", type=Path, help="keep the filled store here")
    args = parser.parse_args()
    if not args.skip_startup:
        total, first, baseline = bench_startup(args.tasks, args.store_cache)
        print(
            f"startup: {args.tasks} tasks in {total:.3f} s (first launch at {first:.3f} s; "
            f"baseline parse-all {baseline:.3f} s, {baseline / total:.1f}x)",
            flush=True,
        )
    if not args.skip_failover:
        figures = bench_failover(args.rounds, args.session_timeout)
        print(
            f"failover median: {statistics.median(figures):.3f} s (target "
            f"{args.session_timeout + 1:g} s = session timeout + 1 s)"
        )


if __name__ == "__main__":
    main()
