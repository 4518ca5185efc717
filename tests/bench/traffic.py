"""Load balancer benchmark: time from a task Started to its IP target registered, and from
a kill request to its target deregistered, p50 and p95 over --tasks tasks, against an
ELBv2 target group on a moto server on loopback.

    .venv/bin/python -m tests.bench.traffic [--tasks 100]

The leader runs on a test clock (tests/unit/test_leader.py's `leader`): the clock is moved
by load_balancer_interval before each loop iteration, so the figures are the platform's
own work per task (report taken, view, registrar pass, ELBv2 calls) and leave out the wait
for the next pass, which adds at most load_balancer_interval_sec in a real deployment.
Baseline, same run: one register_targets and one deregister_targets call made directly
with boto3 against the same group.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from tests.integration.test_load_balancers import finished, started
from tests.unit.test_leader import Clock, Hosts, host, job, leader, tasks
from titus.master.leader import Master, MasterConfig
from titus.master.stuck import StuckTimeouts
from titus.model.loadbalancer import with_load_balancers
from titus.model.states import TaskState
from titus.store.records import KillRequest
from titus.store.sqlite import SqliteJobStore


def targets(elb: object, arn: str) -> set[str]:
    health = elb.describe_target_health(TargetGroupArn=arn)  # type: ignore[attr-defined]
    return {str(h["Target"]["Id"]) for h in health["TargetHealthDescriptions"]}


def until(m: Master, clock: Clock, began: float, done: Callable[[], bool]) -> float:
    """Seconds since `began` until `done`, the leader's loop run a pass at a time."""
    while not done():
        clock.advance(MasterConfig().load_balancer_interval)
        m.iterate()
        time.sleep(0.001)
    return time.perf_counter() - began


def present(elb: object, arn: str, ip: str, wanted: bool) -> Callable[[], bool]:
    return lambda: (ip in targets(elb, arn)) == wanted


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100)
    n = parser.parse_args().tasks
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    address, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{address}:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        ec2, elb = boto3.client("ec2"), boto3.client("elbv2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        arn = elb.create_target_group(
            Name="bench", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        baseline_reg, baseline_dereg = [], []
        for i in range(n):
            t = [{"Id": f"10.1.0.{i % 250}", "Port": 8080}]
            began = time.perf_counter()
            elb.register_targets(TargetGroupArn=arn, Targets=t)
            baseline_reg.append(time.perf_counter() - began)
            began = time.perf_counter()
            elb.deregister_targets(TargetGroupArn=arn, Targets=t)
            baseline_dereg.append(time.perf_counter() - began)

        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteJobStore(Path(tmp) / "titus.db", synchronous="OFF")
            clock = Clock()
            never = StuckTimeouts(launched=1e9, kill_initiated=1e9)  # the test clock runs fast
            m = leader(store, Hosts(host("h1", cpu=4 * n)), launching=n, clock=clock, stuck=never)
            job_id = job(store, service=n)
            j = store.get_job(job_id)
            assert j is not None
            store.update_job(with_load_balancers(j, [arn]))
            m.iterate()
            m.iterate()
            ids = [t.id for t in tasks(store, job_id) if t.state == TaskState.LAUNCHED]
            register, deregister = [], []
            for i, task_id in enumerate(ids):
                ip = f"10.0.{i // 250}.{i % 250 + 1}"
                began = time.perf_counter()
                started(m, task_id, ip)
                register.append(until(m, clock, began, present(elb, arn, ip, True)))
            for i, task_id in enumerate(ids):
                ip = f"10.0.{i // 250}.{i % 250 + 1}"
                began = time.perf_counter()
                store.add_kill_request(KillRequest(job_id, task_id, shrink=True))
                store.mark_dirty(job_id)
                gone = until(m, clock, began, present(elb, arn, ip, False))
                deregister.append(gone)
                finished(m, task_id)
            m.term.registrar.stop()  # type: ignore[union-attr]
    finally:
        server.stop()
    for name, values in (
        ("Started -> registered", register),
        ("kill request -> deregistered", deregister),
        ("baseline register_targets", baseline_reg),
        ("baseline deregister_targets", baseline_dereg),
    ):
        print(f"{name:30s} p50 {pct(values, 0.5):7.1f} ms  p95 {pct(values, 0.95):7.1f} ms")
    print(
        f"tasks: {n}; medians {statistics.median(register) * 1000:.1f} ms (register),"
        f" {statistics.median(deregister) * 1000:.1f} ms (deregister)"
    )


if __name__ == "__main__":
    main()
