"""Benchmark: one Mesos offer cycle with 1,000 agents and 5,000 pending tasks.

    .venv/bin/python -m tests.bench.mesos_offers [--agents 1000] [--tasks 5000]

The Mesos master double runs as its own process (python -m tests.support.mesos) with the
agents added over its control port; the leader (SQLite store in a temporary directory,
in-process coordination) runs with the Mesos driver in this process. Measured from the
moment the driver receives the OFFERS event (one event holding every agent's offer) to:

- hosts: the leader asked the driver for its hosts (the loop noticed the offers);
  the scheduler may launch 8 tasks per host at once (Titus's default is 1, which caps a
  cycle at one task per offer) and attempt every pending task in one iteration;
- launched: placement done, every task saved as Launched, the TaskInfos built and the
  ACCEPT calls queued (the framework's own work);
- first / last ACCEPT answered: the double answered (202) the first and the last ACCEPT of
  those offers, and how many tasks the ACCEPTs answered within 1 s of the offers launched;
- answered: the double answered the last ACCEPT or DECLINE of those offers (offers the
  cycle does not use are declined once no task is pending, or when held too long).

The double answers an ACCEPT once it has checked it, as a Mesos master does; its agents
start the executor processes afterwards (one per task; the command is `sleep 600`).

Executors that never subscribe are failed by the double after its registration timeout
(60 s), so a run longer than that sees some tasks lost and placed again: the figures above
are taken from the first cycle only.

Figures, not asserts: the platform's timing goals live here, not in the test suite.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.store.conformance import make_job, make_task
from tests.support.mesos.fixture import MesosMasterProcess
from titus.coord.local import LocalCoordinator
from titus.master.leader import Master
from titus.master.mesos import MesosConfig, MesosDriver
from titus.master.scheduler import Scheduler, SchedulerConfig
from titus.model.job import BatchJobSpec, Resources
from titus.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--per-job", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    tmp = Path(tempfile.mkdtemp(prefix="titus-mesos-bench-"))
    double = MesosMasterProcess(
        "--agents=0",
        "--heartbeat=15",
        "--allocation-interval=1",
        "--grace=1",
        "--refuse-seconds=30",
        f"--work-dir={tmp / 'mesos'}",
    )
    try:
        started = time.monotonic()
        for i in range(args.agents):
            double.add_agent(
                f"host-{i:04d}",
                cpus=4.0,
                mem=8192.0,
                attributes={"zone": f"zone-{'abc'[i % 3]}", "instanceType": "m5.xlarge"},
            )
        print(f"{args.agents} agents added in {time.monotonic() - started:.1f}s")

        store = open_store(f"sqlite:///{tmp / 'titus.db'}")
        made = 0
        while made < args.tasks:
            n = min(args.per_job, args.tasks - made)
            job = make_job()
            job.jobDescriptor.batch = BatchJobSpec(size=n)
            job.jobDescriptor.container.resources = Resources(
                cpu=0.5, memoryMB=512, diskMB=1000, networkMbps=128
            )
            store.create_job(job, [make_task(job, i) for i in range(n)])
            made += n
        print(f"{made} pending tasks stored")

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
                marks["placed"] = marks.get("placed", 0) + len(placements)
                marks["iterations"] = marks.get("iterations", 0) + 1
                if marks["placed"] >= args.tasks:
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
        accepts: list[tuple[float, int]] = []  # (answered at, tasks launched) per ACCEPT
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done: set[str] = set()
            last = 0.0
            accepts = []
            for call in list(double.calls):
                body = call["call"].get(str(call["type"]).lower()) or {}
                if call["type"] in ("ACCEPT", "DECLINE"):
                    ids = {o["value"] for o in body.get("offer_ids", [])} & offer_ids
                    if ids:
                        done |= ids
                        last = max(last, float(call["time"]))
                        if call["type"] == "ACCEPT" and call["status"] == 202:
                            launched = sum(
                                len((op.get("launch") or {}).get("task_infos") or [])
                                for op in body.get("operations") or []
                            )
                            accepts.append((float(call["time"]), launched))
            if done >= offer_ids:
                answered = last
                break
            time.sleep(0.5)
        stop.set()
        thread.join(30)

        t0 = marks["offers"]
        print(
            f"offers in the cycle: {len(offer_ids)}; tasks placed: {marks.get('placed', 0)} "
            f"in {marks.get('iterations', 0)} leader iterations"
        )
        print(f"OFFERS -> leader asks for hosts:             {marks['hosts'] - t0:8.3f} s")
        print(f"OFFERS -> first placements' ACCEPTs queued:  {marks['launched'] - t0:8.3f} s")
        if "launched_all" in marks:
            print(
                f"OFFERS -> every task's ACCEPT queued:        {marks['launched_all'] - t0:8.3f} s"
            )
        if accepts:
            accepts.sort()
            print(f"OFFERS -> first ACCEPT answered:             {accepts[0][0] - t0:8.3f} s")
            print(f"OFFERS -> last ACCEPT answered:              {accepts[-1][0] - t0:8.3f} s")
            within = sum(n for at, n in accepts if at - t0 <= 1.0)
            print(
                f"tasks accepted: {sum(n for _, n in accepts)} in {len(accepts)} ACCEPTs, "
                f"{within} within 1 s of the offers"
            )
        if answered is not None:
            print(f"OFFERS -> last ACCEPT/DECLINE answered:      {answered - t0:8.3f} s")
        else:
            print("not every offer was answered within 300 s")
        store.close()
    finally:
        double.stop()


if __name__ == "__main__":
    main()
