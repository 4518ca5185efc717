"""Benchmark: one Mesos offer cycle with 1,000 agents and 5,000 pending tasks.

    .venv/bin/python -m tests.bench.mesos_offers [--agents 1000] [--tasks 5000] [--runs 3]

The Mesos master double runs as its own process (python -m tests.support.mesos) with the
agents added over its control port; the leader (SQLite store in a temporary directory,
in-process coordination) runs with the Mesos driver in this process. Each run starts anew
(double, store, leader); the figures of every run are printed, then their medians.
Measured from the moment the driver receives the OFFERS event (one event holding every
agent's offer):

The framework's own work (what the platform controls):
- hosts: the leader asked the driver for its hosts (the loop noticed the offers);
  the scheduler may launch 8 tasks per host at once (Titus's default is 1, which caps a
  cycle at one task per offer) and attempt every pending task in one iteration;
- first / every launch handed over: placement done, the tasks saved as Launched, the
  TaskInfos built and the ACCEPT calls queued;
- first / last ACCEPT sent: when the double received the first and the last ACCEPT of
  those offers, and how many tasks were sent within 1 s of the offers.

The Mesos master's answers (the double's cost per call, which a real master makes small):
- the time the double took to answer each ACCEPT (median and longest);
- first / last ACCEPT answered, and how many tasks the ACCEPTs answered within 1 s of the
  offers launched (the goal: all of them);
- answered: the last ACCEPT or DECLINE of those offers (offers the cycle does not use are
  declined once no task is pending, or when held too long).

The agents' work (the double's cost, not the platform's): a Mesos master answers an ACCEPT
once it has checked it, and each agent starts its executors on its own machine. The
double's agents all start theirs on this one, one process per task (the command is
`sleep 600`), after answering: the run reports when the last one started.

`sleep 600` never subscribes as an executor. A Mesos agent fails an executor that has not
subscribed within its registration timeout (1 min by default) and with it its task, which
the platform then replaces: runs that lasted over a minute once placed 6,000 and more tasks
for 5,000, every extra one replacing a task failed with REASON_EXECUTOR_REGISTRATION_TIMEOUT.
The double here gets a registration timeout longer than a run, so a run places each task
once, and the run checks it: tasks that ended during the run, and task ids launched more
than once, are printed (both should be none).

Figures, not asserts: the platform's timing goals live here, not in the test suite.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.store.conformance import make_job, make_task
from tests.support.mesos.fixture import MesosMasterProcess
from titus import collector
from titus.coord.local import LocalCoordinator
from titus.master.leader import Master
from titus.master.mesos import MesosConfig, MesosDriver
from titus.master.scheduler import Scheduler, SchedulerConfig
from titus.model.job import BatchJobSpec, Resources
from titus.model.states import TaskState
from titus.store import open_store

#: Longer than any run: the executors (`sleep 600`) never subscribe (see the docstring).
REGISTRATION_TIMEOUT = 3600
#: How long a run waits for every offer of the cycle to be answered.
ANSWER_WAIT = 300.0
#: How long a run waits, after that, for the double's agents to start every executor.
AGENTS_WAIT = 300.0


def run(args: argparse.Namespace) -> dict[str, float]:
    """One offer cycle; its figures (seconds after the OFFERS event, and counts)."""
    tmp = Path(tempfile.mkdtemp(prefix="titus-mesos-bench-"))
    double = MesosMasterProcess(
        "--agents=0",
        "--heartbeat=15",
        "--allocation-interval=1",
        "--grace=1",
        "--refuse-seconds=30",
        f"--executor-registration-timeout={REGISTRATION_TIMEOUT}",
        f"--work-dir={tmp / 'mesos'}",
    )
    out: dict[str, float] = {}
    try:
        for i in range(args.agents):
            double.add_agent(
                f"host-{i:04d}",
                cpus=4.0,
                mem=8192.0,
                attributes={"zone": f"zone-{'abc'[i % 3]}", "instanceType": "m5.xlarge"},
            )
        store = open_store(f"sqlite:///{tmp / 'titus.db'}")
        made = 0
        job_ids = []
        while made < args.tasks:
            n = min(args.per_job, args.tasks - made)
            job = make_job()
            job.jobDescriptor.batch = BatchJobSpec(size=n)
            job.jobDescriptor.container.resources = Resources(
                cpu=0.5, memoryMB=512, diskMB=1000, networkMbps=128
            )
            store.create_job(job, [make_task(job, i) for i in range(n)])
            job_ids.append(job.id)
            made += n

        driver = MesosDriver(
            store,
            MesosConfig(
                url=f"mesos://{double.address}",
                executor_command="sleep 600",
                offer_hold_seconds=60.0,
                refuse_seconds=30.0,
            ),
        )
        marks: dict[str, float] = {}
        launched: Counter[str] = Counter()
        offer_ids: set[str] = set()
        seen = threading.Event()
        on_offers, hosts, launch = driver.on_offers, driver.hosts, driver.launch

        def timed_offers(offers: list[Any]) -> None:
            if not seen.is_set() and driver.offer_book.pending and len(offers) >= args.agents:
                marks["offers"] = time.time()
                offer_ids.update(o["id"]["value"] for o in offers)
                seen.set()
            on_offers(offers)

        def timed_hosts() -> Any:
            if seen.is_set() and "hosts" not in marks:
                marks["hosts"] = time.time()
            return hosts()

        def timed_launch(placements: Any) -> None:
            launch(placements)
            if seen.is_set():
                marks.setdefault("launched", time.time())
                launched.update(p.spec.taskId for p in placements)
                if len(launched) >= args.tasks:
                    marks.setdefault("launched_all", time.time())

        driver.on_offers = timed_offers  # type: ignore[method-assign]
        driver.hosts = timed_hosts  # type: ignore[method-assign]
        driver.launch = timed_launch  # type: ignore[method-assign]
        # Titus's default lets one task launch per host at a time (max_launching_per_host=1),
        # which caps a cycle at one task per offer; the cycle here may place all 5,000
        scheduler = Scheduler(
            SchedulerConfig(max_launching_per_host=8, tasks_per_iteration=args.tasks)
        )
        master = Master(store, LocalCoordinator(), driver, scheduler=scheduler, loop_interval=0.05)
        stop = threading.Event()
        thread = threading.Thread(target=master.run, args=(stop,), daemon=True)
        thread.start()
        if not seen.wait(120):
            raise SystemExit("no OFFERS event with every agent while tasks were pending")

        answered: float | None = None
        # (received, answered, tasks) per ACCEPT of the cycle's offers
        accepts: list[tuple[float, float, int]] = []
        deadline = time.monotonic() + ANSWER_WAIT
        while time.monotonic() < deadline:
            done: set[str] = set()
            last = 0.0
            accepts = []
            # the calls without their bodies: the whole log holds every TaskInfo (megabytes),
            # and reading it while the cycle runs took the double's lock and the leader's
            # interpreter from the work measured
            for call in double.call_times():
                if call["type"] not in ("ACCEPT", "DECLINE"):
                    continue
                ids = set(call["offer_ids"]) & offer_ids
                if not ids:
                    continue
                done |= ids
                last = max(last, float(call["time"]))
                if call["type"] == "ACCEPT" and call["status"] == 202:
                    accepts.append(
                        (float(call["received"]), float(call["time"]), int(call["tasks"]))
                    )
            if done >= offer_ids:
                answered = last
                break
            time.sleep(0.5)
        stop.set()
        thread.join(30)

        t0 = marks["offers"]
        accepted = sum(n for _, _, n in accepts)
        starts: list[tuple[str, float]] = []
        wait_agents = time.monotonic() + AGENTS_WAIT
        while time.monotonic() < wait_agents:
            starts = double.executor_starts
            if len(starts) >= accepted:
                break
            time.sleep(1.0)

        out["offers"] = len(offer_ids)
        out["placed"] = sum(launched.values())
        out["launched twice"] = sum(1 for n in launched.values() if n > 1)
        out["hosts"] = marks["hosts"] - t0
        out["first handed over"] = marks["launched"] - t0
        if "launched_all" in marks:
            out["all handed over"] = marks["launched_all"] - t0
        if accepts:
            received = sorted(r for r, _, _ in accepts)
            done_at = sorted(a for _, a, _ in accepts)
            took = sorted(a - r for r, a, _ in accepts)
            out["ACCEPTs"] = len(accepts)
            out["first sent"] = received[0] - t0
            out["last sent"] = received[-1] - t0
            out["sent within 1 s"] = sum(n for r, _, n in accepts if r - t0 <= 1.0)
            out["answer median ms"] = 1000 * statistics.median(took)
            out["answer max ms"] = 1000 * took[-1]
            out["first answered"] = done_at[0] - t0
            out["last answered"] = done_at[-1] - t0
            out["accepted"] = accepted
            out["accepted within 1 s"] = sum(n for _, a, n in accepts if a - t0 <= 1.0)
        if answered is not None:
            out["all offers answered"] = answered - t0
        if starts:
            out["executors started"] = len(starts)
            out["last executor started"] = max(t for _, t in starts) - t0
        ended: Counter[str] = Counter()
        for job_id in job_ids:
            for task in store.list_tasks(job_id, include_archived=True):
                if task.state == TaskState.FINISHED:
                    ended[f"{task.status.reasonCode}: {task.status.reasonMessage[:80]}"] += 1
        out["ended during the run"] = sum(ended.values())
        for why, count in ended.most_common(5):
            print(f"  ended during the run: {count} x {why}")
        store.close()
    finally:
        double.stop()
    return out


LINES = [
    ("offers", "offers in the cycle", "{:.0f}"),
    ("placed", "tasks placed", "{:.0f}"),
    ("launched twice", "task ids launched more than once", "{:.0f}"),
    ("ended during the run", "tasks ended during the run", "{:.0f}"),
    ("hosts", "OFFERS -> leader asks for hosts", "{:.3f} s"),
    ("first handed over", "OFFERS -> first launch handed to the driver", "{:.3f} s"),
    ("all handed over", "OFFERS -> every task's launch handed over", "{:.3f} s"),
    ("first sent", "OFFERS -> first ACCEPT sent", "{:.3f} s"),
    ("last sent", "OFFERS -> last ACCEPT sent", "{:.3f} s"),
    ("sent within 1 s", "tasks sent within 1 s of the offers", "{:.0f}"),
    ("ACCEPTs", "ACCEPT calls", "{:.0f}"),
    ("answer median ms", "the double's answer to an ACCEPT, median", "{:.1f} ms"),
    ("answer max ms", "the double's answer to an ACCEPT, longest", "{:.1f} ms"),
    ("first answered", "OFFERS -> first ACCEPT answered", "{:.3f} s"),
    ("last answered", "OFFERS -> last ACCEPT answered", "{:.3f} s"),
    ("accepted", "tasks accepted", "{:.0f}"),
    ("accepted within 1 s", "tasks accepted within 1 s of the offers", "{:.0f}"),
    ("all offers answered", "OFFERS -> last ACCEPT/DECLINE answered", "{:.3f} s"),
    ("executors started", "executor processes the double's agents started", "{:.0f}"),
    ("last executor started", "OFFERS -> last executor process started", "{:.3f} s"),
]


def report(title: str, figures: dict[str, float]) -> None:
    print(title)
    for key, label, fmt in LINES:
        if key in figures:
            print(f"  {label + ':':48} {fmt.format(figures[key])}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--per-job", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    collector.install()  # as `titus master` does

    runs = []
    for i in range(args.runs):
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        figures = run(args)
        runs.append(figures)
        report(f"run {i + 1} of {args.runs} (load average {load} at its start)", figures)
    medians = {
        key: statistics.median(r[key] for r in runs)
        for key, _, _ in LINES
        if all(key in r for r in runs)
    }
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    report(f"median of {len(runs)} runs (load average {load} now)", medians)


if __name__ == "__main__":
    main()
