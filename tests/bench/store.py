"""Store benchmark: job creates/s, task updates/s and the new leader's bulk load of 100,000
active tasks, per backend, in one run.

    .venv/bin/python -m tests.bench.store [--tasks 100000] [--jobs 500] [--updates 2000]
    .venv/bin/python -m tests.bench.store --only-concurrent-creates [--runs 3]

The Cassandra part ends with creates/s from 1, 8 and 32 threads at once, each create its
own logged batch (as before creates were grouped) and grouped (titus/store/cassandra/
groups.py), the median of `--runs` runs each, measured side by side in the same run.

SQLite is a file in a temporary directory (WAL, synchronous=FULL). Cassandra is the
CQL test server (tests/support/cql) in a child process on loopback, not a real cluster: its
figures measure the backend and the driver, not Cassandra.

Figures of the last run (100,000 tasks over 5,471 jobs; a 2-CPU machine shared with other
test runs, so take them as +-30%):

    backend      job creates  task updates  load_active  load_active_index
    sqlite            318/s       1,213/s       3.5 s          1.4 s
    cassandra*        543/s         556/s       4.6 s          2.3 s

    * against the CQL test server in a child process, not a real cluster. Before the bulk
      load read whole tables with paging, load_active read each task by id: 89 s.
      A Cassandra task update was three round trips: the epoch read at LOCAL_SERIAL, the
      compare-and-set, the change feed entry; the epoch is now a condition of the
      compare-and-set itself (fencing.py), so it is two.

load_active parses every document (pydantic); load_active_index, what the leader uses,
does not.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.store.conformance import make_job, make_task
from titus.model.states import TaskState
from titus.store.base import JobStore

ROOT = Path(__file__).resolve().parents[2]

SERVER = (
    "import time;"  # run in the repository root, so that `tests.*` imports
    "from tests.support.cql.server import CqlServer;"
    "s = CqlServer().start(); print(s.port, flush=True); time.sleep(10**6)"
)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def bench(name: str, open_store: Callable[[], JobStore], args: argparse.Namespace) -> None:
    store = open_store()
    try:
        # job creates, one job with one task each, as the API submits them
        t0 = time.perf_counter()
        for _ in range(args.jobs):
            job = make_job()
            store.create_job(job, [make_task(job)])
        creates = time.perf_counter() - t0

        # task updates with optimistic versions, as the master moves tasks forward
        job = store.create_job(make_job())
        tasks = [store.create_task(make_task(job, i), epoch=1) for i in range(100)]
        t0 = time.perf_counter()
        for i in range(args.updates):
            k = i % len(tasks)
            tasks[k] = store.update_task(tasks[k].with_status(TaskState.LAUNCHED), epoch=1)
        updates = time.perf_counter() - t0

        # fill up to `tasks` active tasks, 20 per job (a job and its first tasks are one
        # logged batch, and Cassandra refuses batches over 50 KB by default), then time the
        # leader's bulk load
        have = args.jobs + len(tasks)
        t0 = time.perf_counter()
        while have < args.tasks:
            job = make_job()
            n = min(20, args.tasks - have)
            store.create_job(job, [make_task(job, i) for i in range(n)])
            have += n
        fill = time.perf_counter() - t0
        t0 = time.perf_counter()
        state = store.load_active()
        load = time.perf_counter() - t0
        assert len(state.tasks) == have, (len(state.tasks), have)
        t0 = time.perf_counter()
        index = store.load_active_index()
        load_index = time.perf_counter() - t0
        assert len(index.tasks) == have, (len(index.tasks), have)
        print(
            f"{name:10s} job creates {rate(args.jobs, creates):>9s}   "
            f"task updates {rate(args.updates, updates):>9s}   "
            f"load_active {len(state.tasks):,} tasks / {len(state.jobs):,} jobs "
            f"in {load:.2f}s ({rate(len(state.tasks), load)})   "
            f"load_active_index in {load_index:.2f}s   [fill took {fill:.1f}s]",
            flush=True,
        )
    finally:
        store.close()


def creates_at(store: JobStore, clients: int, total: int) -> float:
    """Creates/s of `total` jobs (as the API submits them: the job and its dirty mark)
    from `clients` threads at once."""
    per = total // clients
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        barrier.wait()
        for _ in range(per):
            store.create_job(make_job(), mark_dirty=True)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return per * clients / (time.perf_counter() - t0)


def bench_grouped_creates(port: int, args: argparse.Namespace) -> None:
    """Cassandra creates/s at 1, 8 and 32 clients, each create its own logged batch (the
    baseline: `create_group_max=1`) and creates grouped (groups.py), median of `--runs`."""
    from titus.store.cassandra import CassandraJobStore

    def open_store(group: int) -> CassandraJobStore:
        return CassandraJobStore(
            ["127.0.0.1"], port=port, local_dc="datacenter1", create_group_max=group
        )

    print("cassandra* concurrent creates (creates/s, median of", args.runs, "runs)")
    print(f"{'clients':>8s} {'each alone':>11s} {'grouped':>9s} {'ratio':>6s}  groups")
    for clients in (1, 8, 32):
        figures: dict[str, list[float]] = {"alone": [], "grouped": []}
        mean_group = 0.0
        for _ in range(args.runs):
            for kind, group in (("alone", 1), ("grouped", 64)):
                store = open_store(group)
                try:
                    store._groups.sent.clear()
                    figures[kind].append(creates_at(store, clients, args.concurrent_jobs))
                    if kind == "grouped":
                        sent = store._groups.sent
                        mean_group = sum(sent) / max(1, len(sent))
                finally:
                    store.close()
        alone = statistics.median(figures["alone"])
        grouped = statistics.median(figures["grouped"])
        print(
            f"{clients:>8d} {alone:>11,.0f} {grouped:>9,.0f} {grouped / alone:>5.2f}x"
            f"  {mean_group:.1f} creates per batch (last run)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--backends", default="sqlite,cassandra")
    parser.add_argument(
        "--only-concurrent-creates",
        action="store_true",
        help="only the Cassandra creates at 1, 8 and 32 clients, alone vs grouped",
    )
    parser.add_argument("--concurrent-jobs", type=int, default=640)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in backends and not args.only_concurrent_creates:
            from titus.store.sqlite import SqliteJobStore

            bench("sqlite", lambda: SqliteJobStore(Path(tmp) / "bench.db"), args)
        if "cassandra" in backends:
            from titus.store.cassandra import CassandraJobStore

            server = subprocess.Popen(
                [sys.executable, "-c", SERVER], cwd=ROOT, stdout=subprocess.PIPE, text=True
            )
            try:
                assert server.stdout is not None
                port = int(server.stdout.readline())
                if not args.only_concurrent_creates:
                    bench(
                        "cassandra*",
                        lambda: CassandraJobStore(["127.0.0.1"], port=port, local_dc="datacenter1"),
                        args,
                    )
                bench_grouped_creates(port, args)
            finally:
                server.kill()
                server.wait()
            print("* Cassandra figures are against the CQL test server, not a real cluster.")


if __name__ == "__main__":
    main()
