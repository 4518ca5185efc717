"""Autoscaling benchmark: what scaling policies cost the leader, with --jobs service jobs
each under a target tracking policy on the tasks' own published metric (the `local`
executor with no AWS), on a SQLite store.

    .venv/bin/python -m tests.bench.autoscaling [--jobs 1000] [--runs 5]

Figures, each the median of --runs:
- the leader loop's iteration with the autoscaling tick due (read every policy, snapshot
  their jobs, hand it to the worker, apply what the previous pass asked for), against a
  baseline measured in the same run: the same iteration with autoscaling turned off;
- the worker's pass over every policy (read each job's task attributes, decide), on its
  own thread, and how many desired sizes it changed;
- the time from a metric crossing its target to the job's new desired size written,
  through a whole pass and the loop's next iteration.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from tests.unit.test_leader import Clock, Hosts, host, job, leader
from titus.master.autoscaling.metrics import TASK_METRIC_PREFIX
from titus.master.leader import Master
from titus.model.autoscaling import PolicyRecord, parse_policy
from titus.model.states import TaskState
from titus.store.sqlite import SqliteJobStore

INTERVAL = 10.0
POLICY = {
    "targetPolicyDescriptor": {
        "targetValue": 50.0,
        "scaleOutCooldownSec": 0,
        "scaleInCooldownSec": 0,
        "customizedMetricSpecification": {"namespace": "web", "metricName": "rps"},
    }
}


def setup(directory: Path, jobs: int) -> tuple[SqliteJobStore, list[str]]:
    store = SqliteJobStore(directory / "titus.db", synchronous="OFF")
    ids = [job(store, service=2) for _ in range(jobs)]
    policy = parse_policy(POLICY)
    for n, job_id in enumerate(ids):
        store.create_scaling_policy(PolicyRecord(id=f"p-{n:05d}", jobId=job_id, policy=policy))
    return store, ids


def serve_all(m: Master, store: SqliteJobStore, ids: list[str], value: float) -> None:
    """Every task of every job Started (in the store and the view), publishing `value`."""
    for job_id in ids:
        for t in store.list_tasks(job_id):
            if t.state != TaskState.STARTED:
                m.save_task(t.with_status(TaskState.STARTED))
            store.update_task_attributes(t.id, job_id, {TASK_METRIC_PREFIX + "rps": str(value)})


def one_iteration(m: Master, clock: Clock) -> float:
    clock.advance(INTERVAL)
    began = time.perf_counter()
    m.iterate()
    return time.perf_counter() - began


def wait_pass(m: Master, before: int) -> float:
    term = m.term.autoscaling
    assert term is not None and term.worker is not None
    began = time.perf_counter()
    while term.worker.passes <= before:
        time.sleep(0.001)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="titus-bench-as-") as tmp:
        store, ids = setup(Path(tmp), args.jobs)
        clock = Clock()
        hosts = Hosts(host("h1", cpu=10_000))
        m = leader(
            store,
            hosts,
            launching=100_000,
            clock=clock,
            autoscaling_interval=INTERVAL,
            autoscaling_metrics="tasks",
            load_balancer_interval=0.0,
        )
        m.iterate()
        m.iterate()
        serve_all(m, store, ids, 50.0)  # at the target: no change wanted
        baseline, ticked, passes = [], [], []
        scaling, m.term.autoscaling = m.term.autoscaling, None  # the same leader, without
        for _ in range(args.runs):
            baseline.append(one_iteration(m, clock))
        m.term.autoscaling = scaling
        for _ in range(args.runs):
            term = m.term.autoscaling
            before = term.worker.passes if term is not None and term.worker is not None else 0
            ticked.append(one_iteration(m, clock))
            passes.append(wait_pass(m, before))

        # the metric doubles on every job: each wants more tasks (the minute's average
        # moves toward the new value, so the first step is the part of it seen so far)
        serve_all(m, store, ids, 100.0)
        term = m.term.autoscaling
        assert term is not None and term.worker is not None
        began = time.perf_counter()
        before = term.worker.passes
        clock.advance(INTERVAL)
        m.iterate()
        wait_pass(m, before)
        m.iterate()
        reaction = time.perf_counter() - began
        scaled = 0
        for job_id in ids:
            j = store.get_job(job_id)
            if j is not None and j.jobDescriptor.service is not None:
                scaled += j.jobDescriptor.service.capacity.desired > 2

    base, tick = statistics.median(baseline), statistics.median(ticked)
    print(f"jobs with a policy:                 {args.jobs}")
    print(f"loop iteration, autoscaling off:    {base * 1000:8.1f} ms (baseline)")
    print(f"loop iteration, autoscaling due:    {tick * 1000:8.1f} ms ({tick / base:.2f}x)")
    print(f"worker pass over every policy:      {statistics.median(passes) * 1000:8.1f} ms")
    print(
        f"metric over target -> desired set:  {reaction * 1000:8.1f} ms ({scaled} jobs scaled out)"
    )


if __name__ == "__main__":
    main()
