"""Load balancer targets follow a task that moves between jobs (it leaves its old job's
target group and joins its new job's, keeping its address and never restarting), and a
leader failover: the new leader repairs drift left while no leader acted, deregisters
what its predecessor registered that is no longer wanted, leaves others' targets alone,
and never drops a target it should keep, not even for one pass. Against a moto server
(ELBv2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.integration.test_load_balancers import started, targets
from tests.support.poll import wait_until
from tests.unit.test_leader import Clock, Hosts, host, job, leader, tasks
from titus.coord.base import Leadership
from titus.coord.local import LocalCoordinator
from titus.master.leader import Master, MasterConfig
from titus.model.launch import TaskReport
from titus.model.loadbalancer import with_load_balancers
from titus.model.states import TaskState
from titus.store.records import MoveRequest
from titus.store.sqlite import SqliteJobStore


@pytest.fixture
def groups(aws_env: str) -> Iterator[tuple[str, str]]:
    ec2, elb = boto3.client("ec2"), boto3.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]

    def make(name: str) -> str:
        created = elb.create_target_group(
            Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip"
        )
        return str(created["TargetGroups"][0]["TargetGroupArn"])

    yield make("blue"), make("green")


def associate(store: SqliteJobStore, job_id: str, arn: str) -> None:
    j = store.get_job(job_id)
    assert j is not None
    store.update_job(with_load_balancers(j, [arn]))
    store.mark_dirty(job_id)


def settle(
    m: Master, clock: Clock, wanted: dict[str, set[str]], keep: frozenset[str] = frozenset()
) -> None:
    """Iterate an interval at a time until each group holds `wanted`; every address in
    `keep` must be in its group at every look on the way."""

    def there() -> bool:
        clock.advance(MasterConfig().load_balancer_interval)
        m.iterate()
        now = {arn: targets(arn) for arn in wanted}
        for arn, held in now.items():
            lost = (keep & wanted[arn]) - held
            assert not lost, f"{sorted(lost)} left {arn} on the way"
        return now == wanted

    wait_until(f"targets {wanted}", there, timeout=30)


def test_targets_follow_a_task_moved_to_another_job(
    groups: tuple[str, str], tmp_path: Path
) -> None:
    blue, green = groups
    store = SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")
    clock = Clock()
    m = leader(store, Hosts(host("h1", cpu=16)), launching=10, clock=clock)
    source, target = job(store, service=2), job(store, service=1)
    associate(store, source, blue)
    associate(store, target, green)
    m.iterate()
    addresses = {}
    for n, t in enumerate(
        sorted(tasks(store, source) + tasks(store, target), key=lambda t: t.jobId != source)
    ):
        addresses[t.id] = f"10.0.3.{n + 1}"
        started(m, t.id, addresses[t.id])
    settle(m, clock, {blue: {"10.0.3.1", "10.0.3.2"}, green: {"10.0.3.3"}})

    moving = next(t for t in tasks(store, source) if addresses[t.id] == "10.0.3.2")
    store.add_move_request(MoveRequest(source, target, moving.id))
    m.iterate()
    moved = store.get_task(moving.id)
    assert moved is not None and moved.jobId == target and moved.state == TaskState.STARTED
    # it leaves the old job's group and joins the new one's; the others never move
    settle(
        m,
        clock,
        {blue: {"10.0.3.1"}, green: {"10.0.3.2", "10.0.3.3"}},
        keep=frozenset({"10.0.3.1", "10.0.3.3"}),
    )
    assert len(tasks(store, source)) == 1 and len(tasks(store, target)) == 2  # no restart


def test_a_new_leader_repairs_drift_and_keeps_what_it_should(
    groups: tuple[str, str], tmp_path: Path
) -> None:
    blue, _ = groups
    store = SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")
    clock = Clock()
    hosts = Hosts(host("h1", cpu=16))
    first = leader(store, hosts, launching=10, clock=clock)
    job_id = job(store, service=3)
    associate(store, job_id, blue)
    first.iterate()
    ids = sorted(t.id for t in tasks(store, job_id))
    ips = {task_id: f"10.0.4.{n + 1}" for n, task_id in enumerate(ids)}
    for task_id, ip in ips.items():
        started(first, task_id, ip)
    settle(first, clock, {blue: set(ips.values())})

    # the leader dies; while none acts, its group drifts and one of its tasks ends
    assert first.term.registrar is not None
    first.term.registrar.stop()
    elb = boto3.client("elbv2")
    elb.deregister_targets(TargetGroupArn=blue, Targets=[{"Id": ips[ids[1]], "Port": 8080}])
    elb.register_targets(TargetGroupArn=blue, Targets=[{"Id": "10.9.9.9", "Port": 8080}])
    hosts.actual = {
        "h1": [
            TaskReport(taskId=ids[0], jobId=job_id, state=TaskState.FINISHED, exitCode=0),
            *(
                TaskReport(
                    taskId=task_id,
                    jobId=job_id,
                    state=TaskState.STARTED,
                    context={"task.containerIp": ips[task_id]},
                )
                for task_id in ids[1:]
            ),
        ]
    }

    successor = Master(store, LocalCoordinator(), hosts, clock=clock, elapsed=clock)
    successor.begin(Leadership(2))
    successor.sync_hosts(hosts.actual_tasks())
    # the ended task's target goes (its predecessor registered it), the one taken away by
    # hand comes back, the running one stays throughout, and someone else's is left alone
    settle(
        successor,
        clock,
        {blue: {ips[ids[1]], ips[ids[2]], "10.9.9.9"}},
        keep=frozenset({ips[ids[2]], "10.9.9.9"}),
    )
