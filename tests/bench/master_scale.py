"""Master scale benchmark: memory per active task and leader start-up with many tasks.

Run: python -m tests.bench.master_scale [--tasks 100000] [--startup-tasks 1000000]
         [--store-cache DIR] [--runs 3]

A SQLite store is filled through the store's own bulk path (`create_job` with its tasks,
one transaction per job of 100): all tasks running (Started) on hosts, except the last
10 jobs, which wait for placement. A leader term then starts in process, as after an
election: claim the epoch, read the whole active state (`Master.begin`), take in what
every host reports it runs (every running task; `sync_hosts`), and run its first
iteration, which reconciles and places the pending tasks. The driver answers from memory
(hosts of 64 cpus; what they run), so only the leader's own work is measured.

1. Memory: with `--tasks` active tasks, what the term holds once its first iteration is
   done (tracemalloc: Python allocations still alive, after a full collection; the
   host reports given to it are allocated before tracing starts), divided by the task
   count; and the process's resident set growth over the same span (RSS, which also
   counts freed memory the allocator keeps). Target: at most 2 KiB per active task.
2. Start-up: with `--startup-tasks` active tasks, election (begin) to the end of the first
   scheduling pass, median of `--runs` (without tracemalloc). Target: under 10 s at
   1,000,000.

Filling a store takes much longer than what is measured: `--store-cache DIR` keeps the
filled stores (and what their hosts run) between runs.

Lines a script can read: `memory: <n> tasks, <b> bytes per task (traced), <r> bytes per
task (RSS)` and `startup: <n> tasks, median <s> s (runs: ...)`.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import resource
import shutil
import statistics
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from tests.bench.failover import MemoryDriver, copy_store, settle
from titus.coord.base import Leadership
from titus.coord.local import LocalCoordinator
from titus.master.leader import Master
from titus.model.job import Job, JobStatus, Task, TaskStatus
from titus.model.launch import TaskReport
from titus.model.states import JobState, TaskState
from titus.model.validation import parse_job_descriptor
from titus.store.sqlite import SqliteJobStore

TASKS_PER_JOB = 100
PENDING_JOBS = 10


def hosts_for(tasks: int) -> int:
    """Hosts of the cluster: 100 running tasks per host, at least 1,000 hosts."""
    return max(1_000, tasks // 100)


class Driver(MemoryDriver):
    """The failover benchmark's in-memory driver, with as many hosts as the case needs."""

    def __init__(self, actual: dict[str, list[TaskReport]]) -> None:
        super().__init__(actual)
        self.count = len(actual)

    def hosts(self):  # type: ignore[no-untyped-def]
        views = []
        template = super().hosts()[0]
        for i in range(self.count):
            views.append(
                template.__class__(
                    host_id=f"agent-{i}",
                    total=dict(template.total),
                    attributes={"zone": f"zone-{i % 3}", "machineGroup": "default"},
                )
            )
        return views


def fill(path: Path, tasks: int) -> dict[str, list[TaskReport]]:
    """A store with `tasks` active tasks (service jobs of 100); all Started on hosts except
    those of the last PENDING_JOBS jobs. Documents are copies of one template task with
    their own ids, so filling costs the store's writes, not building models."""
    store = SqliteJobStore(path, synchronous="OFF")
    hosts = hosts_for(tasks)
    actual: dict[str, list[TaskReport]] = {f"agent-{i}": [] for i in range(hosts)}
    jobs = max(tasks // TASKS_PER_JOB, PENDING_JOBS + 1)
    accepted = Task(id="t", jobId="j", originalId="t", status=TaskStatus(state=TaskState.ACCEPTED))
    started = (
        accepted.with_status(TaskState.LAUNCHED)
        .with_status(TaskState.START_INITIATED)
        .with_status(TaskState.STARTED)
    )
    n = 0
    for j in range(jobs):
        descriptor = parse_job_descriptor(
            {
                "owner": {"teamEmail": "bench@example.com"},
                "applicationName": f"app{j % 40}",
                "capacityGroup": f"group{j % 20}",
                "container": {
                    "image": {"name": "img", "tag": "1"},
                    "resources": {"cpu": 0.1, "memoryMB": 512, "diskMB": 1000, "networkMbps": 10},
                },
                "service": {"capacity": {"min": 0, "desired": TASKS_PER_JOB, "max": 200}},
            }
        )
        job = Job(
            id=str(uuid.uuid4()),
            jobDescriptor=descriptor,
            status=JobStatus(state=JobState.ACCEPTED),
        )
        running = j < jobs - PENDING_JOBS
        batch = []
        for i in range(TASKS_PER_JOB):
            tid = str(uuid.uuid4())
            context = {
                "task.index": str(i),
                "task.originalId": tid,
                "task.resubmitNumber": "0",
                "task.systemResubmitNumber": "0",
            }
            template = started if running else accepted
            if running:
                host = f"agent-{n % hosts}"
                context.update({"agent.id": host, "agent.zone": f"zone-{n % hosts % 3}"})
                actual[host].append(
                    TaskReport(taskId=tid, jobId=job.id, state=TaskState.STARTED, seq=1)
                )
            batch.append(
                template.model_copy(
                    update={"id": tid, "jobId": job.id, "originalId": tid, "taskContext": context}
                )
            )
            n += 1
        store.create_job(job, batch)
    store.close()
    return actual


def prepared(tasks: int, cache: Path | None, tmp: Path) -> tuple[Path, dict[str, list[TaskReport]]]:
    path = tmp / "titus.db"
    cached = cache / f"scale-{tasks}.db" if cache is not None else None
    started = time.perf_counter()
    if cached is not None and cached.exists():
        copy_store(cached, path)
        actual = pickle.loads(cached.with_suffix(".actual").read_bytes())
    else:
        actual = fill(path, tasks)
        settle(path)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            copy_store(path, cached)
            cached.with_suffix(".actual").write_bytes(pickle.dumps(actual))
    print(f"(store with {tasks} tasks ready in {time.perf_counter() - started:.1f} s)", flush=True)
    return path, actual


def start_term(path: Path, actual: dict[str, list[TaskReport]]) -> tuple[Master, Driver, float]:
    """A leader term from election to the end of its first iteration; its duration."""
    store = SqliteJobStore(path)
    driver = Driver(actual)
    master = Master(store, LocalCoordinator(), driver, master_id="bench")
    started = time.perf_counter()
    master.begin(Leadership(1))
    master.sync_hosts(driver.actual_tasks())
    master.iterate()
    took = time.perf_counter() - started
    assert driver.launched, "the first iteration placed nothing"
    return master, driver, took


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def bench_memory(tasks: int, cache: Path | None) -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp(prefix="titus-scale-"))
    try:
        path, actual = prepared(tasks, cache, tmp)
        gc.collect()
        rss = rss_bytes()
        tracemalloc.start()
        master, driver, _ = start_term(path, actual)
        gc.collect()
        traced, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        grown = rss_bytes() - rss
        held = len(master.view)
        assert held == tasks, (held, tasks)
        master.store.close()
        return traced / tasks, grown / tasks
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_startup(tasks: int, cache: Path | None, runs: int) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="titus-scale-"))
    figures = []
    try:
        pristine, actual = prepared(tasks, cache, tmp)
        for i in range(runs):
            # every run starts from the same store, in a file of its own (a store's
            # checkpointer of the run before may still hold its file open)
            path = tmp / f"run-{i}.db"
            copy_store(pristine, path)
            gc.collect()
            master, driver, took = start_term(path, actual)
            print(
                f"(start-up {took:.3f} s: {len(master.view)} tasks, "
                f"{len(driver.launched)} launches)",
                flush=True,
            )
            figures.append(took)
            master.store.close()
            del master, driver
            path.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--startup-tasks", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store-cache", type=Path)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args()
    if not args.skip_memory:
        traced, rss = bench_memory(args.tasks, args.store_cache)
        print(
            f"memory: {args.tasks} tasks, {traced:.0f} bytes per task (traced), "
            f"{rss:.0f} bytes per task (RSS); target 2048",
            flush=True,
        )
    if not args.skip_startup:
        figures = bench_startup(args.startup_tasks, args.store_cache, args.runs)
        print(
            f"startup: {args.startup_tasks} tasks, median {statistics.median(figures):.3f} s "
            f"(runs: {', '.join(f'{f:.3f}' for f in figures)}); target 10 s"
        )


if __name__ == "__main__":
    main()
