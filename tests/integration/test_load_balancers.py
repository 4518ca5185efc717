"""Load balancer registration against a moto server (ELBv2): associations made through the
API and checked against ELBv2, and a leader keeping each target group's IP targets in
line with its job's serving tasks through starts, ends, drift and a failover."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import grpc
import pytest

from tests.integration.test_api_app import BATCH, api, service
from tests.integration.test_grpc_jobs import descriptor, grpc_api
from tests.support.poll import wait_until
from tests.unit.test_leader import Clock, Hosts, host, job, leader, tasks
from titus.api.grpc.gen import titus_job_api_pb2 as jobs_pb
from titus.api.grpc.gen import titus_loadbalancer_api_pb2 as lb_pb
from titus.api.grpc.gen import titus_loadbalancer_api_pb2_grpc as lb_grpc
from titus.coord.base import Leadership
from titus.coord.local import LocalCoordinator
from titus.master.cluster import HostReport
from titus.master.leader import Master, MasterConfig
from titus.model.launch import TaskReport
from titus.model.loadbalancer import with_load_balancers
from titus.model.states import Reason, TaskState
from titus.store.records import KillRequest
from titus.store.sqlite import SqliteJobStore


@pytest.fixture
def target_groups(aws_env: str) -> Iterator[dict[str, str]]:
    ec2, elb = boto3.client("ec2"), boto3.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]

    def make(name: str, kind: str) -> str:
        created = elb.create_target_group(
            Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType=kind
        )
        return str(created["TargetGroups"][0]["TargetGroupArn"])

    yield {"ip": make("web", "ip"), "instance": make("old", "instance")}


def targets(arn: str) -> set[str]:
    health = boto3.client("elbv2").describe_target_health(TargetGroupArn=arn)
    return {str(h["Target"]["Id"]) for h in health["TargetHealthDescriptions"]}


def test_associations_are_checked_with_elbv2_and_kept_on_the_job(
    target_groups: dict[str, str], tmp_path: Path
) -> None:
    ip, instance = target_groups["ip"], target_groups["instance"]
    with api(tmp_path) as (http, _):
        web = http.post("/api/v3/jobs", json=service()).json()["id"]
        batch = http.post("/api/v3/jobs", json=BATCH).json()["id"]
        r = http.post("/api/v3/loadBalancers", params={"jobId": web, "loadBalancerId": ip})
        assert r.status_code == 200, r.text
        again = http.post("/api/v3/loadBalancers", params={"jobId": web, "loadBalancerId": ip})
        assert again.json()["loadBalancers"] == [{"id": ip}]  # once, however often asked
        assert http.get(f"/api/v3/loadBalancers/{web}").json()["loadBalancers"] == [{"id": ip}]
        wanted = [{"jobId": web, "loadBalancers": [{"id": ip}]}]
        wait_until(
            "the listing to show it",
            lambda: http.get("/api/v3/loadBalancers").json()["items"] == wanted,
        )
        for bad in ("0", "1001", "\u0661", "ten"):  # the same rule as every listing
            r = http.get("/api/v3/loadBalancers", params={"pageSize": bad})
            assert r.status_code == 400 and "pageSize must be a number" in r.text, (bad, r.text)

        refusals = {
            "not-an-arn": "is not a target group ARN",
            ip[:-16] + "0" * 16: "does not exist",
            instance: "TargetType ip",
        }
        for arn, words in refusals.items():
            r = http.post("/api/v3/loadBalancers", params={"jobId": web, "loadBalancerId": arn})
            assert r.status_code == 400 and words in r.json()["message"], r.text
        r = http.post("/api/v3/loadBalancers", params={"jobId": batch, "loadBalancerId": ip})
        assert r.status_code == 400 and "batch job" in r.json()["message"]
        assert http.post("/api/v3/loadBalancers", params={"jobId": web}).status_code == 400

        r = http.delete("/api/v3/loadBalancers", params={"jobId": web, "loadBalancerId": ip})
        assert r.status_code == 200 and r.json()["loadBalancers"] == []


def started(m: Master, task_id: str, ip: str) -> None:
    t = m.view.get(task_id)
    assert t is not None
    report = TaskReport(
        taskId=task_id, jobId=t.jobId, state=TaskState.STARTED, context={"task.containerIp": ip}
    )
    m.receive([HostReport(t.agent_id or "", report)])


def finished(m: Master, task_id: str) -> None:
    t = m.view.get(task_id)
    assert t is not None
    report = TaskReport(taskId=task_id, jobId=t.jobId, state=TaskState.FINISHED, exitCode=0)
    m.receive([HostReport(t.agent_id or "", report)])


def settle(m: Master, clock: Clock, arn: str, wanted: set[str]) -> None:
    def there() -> bool:
        clock.advance(MasterConfig().load_balancer_interval)
        m.iterate()
        return targets(arn) == wanted

    wait_until(f"targets {sorted(wanted)}", there, timeout=30)


def balanced_job(tmp_path: Path, arn: str, tasks: int) -> tuple[SqliteJobStore, Clock, Master, str]:
    """A leader on one host, and a service job of `tasks` tasks in target group `arn`,
    its tasks created (not yet started)."""
    store = SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")
    clock = Clock()
    m = leader(store, Hosts(host("h1", cpu=16)), launching=10, clock=clock)
    job_id = job(store, service=tasks)
    j = store.get_job(job_id)
    assert j is not None
    store.update_job(with_load_balancers(j, [arn]))
    m.iterate()
    return store, clock, m, job_id


def test_targets_follow_the_jobs_serving_tasks(
    target_groups: dict[str, str], tmp_path: Path
) -> None:
    arn = target_groups["ip"]
    store, clock, m, job_id = balanced_job(tmp_path, arn, tasks=3)
    ids = sorted(t.id for t in tasks(store, job_id))
    for n, task_id in enumerate(ids):
        started(m, task_id, f"10.0.1.{n + 1}")
    settle(m, clock, arn, {"10.0.1.1", "10.0.1.2", "10.0.1.3"})

    # a target someone else registered is theirs; one taken away by hand comes back
    elb = boto3.client("elbv2")
    elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": "10.9.9.9", "Port": 8080}])
    elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "10.0.1.2", "Port": 8080}])
    settle(m, clock, arn, {"10.0.1.1", "10.0.1.2", "10.0.1.3", "10.9.9.9"})

    # a task that ends leaves the group; its replacement joins when it serves
    finished(m, ids[0])
    settle(m, clock, arn, {"10.0.1.2", "10.0.1.3", "10.9.9.9"})
    m.iterate()
    replacement = next(t.id for t in tasks(store, job_id) if t.state == TaskState.LAUNCHED)
    started(m, replacement, "10.0.1.4")
    settle(m, clock, arn, {"10.0.1.2", "10.0.1.3", "10.0.1.4", "10.9.9.9"})

    # the association goes while this leader is gone: its successor cleans up after it
    saved = store.get_meta("loadBalancerTargets")
    assert saved is not None and arn in json.loads(saved)
    m.term.registrar.stop()  # type: ignore[union-attr]
    current = store.get_job(job_id)
    assert current is not None
    store.update_job(with_load_balancers(current, []))
    successor = Master(
        store, LocalCoordinator(), Hosts(host("h1", cpu=16)), clock=clock, elapsed=clock
    )
    successor.begin(Leadership(2))
    successor.sync_hosts({"h1": []})
    settle(successor, clock, arn, {"10.9.9.9"})


def test_the_grpc_load_balancer_service_speaks_titus_contract(
    target_groups: dict[str, str], tmp_path: Path
) -> None:
    ip = target_groups["ip"]
    with grpc_api(tmp_path) as api_:
        job_id = api_.stub.CreateJob(descriptor()).id
        lbs = lb_grpc.LoadBalancerServiceStub(api_.channel)
        add = lb_pb.AddLoadBalancerRequest(jobId=job_id, loadBalancerId=lb_pb.LoadBalancerId(id=ip))
        lbs.AddLoadBalancer(add)
        got = lbs.GetJobLoadBalancers(jobs_pb.JobId(id=job_id))
        assert got.jobId == job_id and [lb.id for lb in got.loadBalancers] == [ip]
        with pytest.raises(grpc.RpcError) as refused:
            bad = lb_pb.AddLoadBalancerRequest(
                jobId=job_id, loadBalancerId=lb_pb.LoadBalancerId(id=target_groups["instance"])
            )
            lbs.AddLoadBalancer(bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "TargetType ip" in refused.value.details()

        def listed() -> bool:
            page = lbs.GetAllLoadBalancers(lb_pb.GetAllLoadBalancersRequest())
            return [r.jobId for r in page.jobLoadBalancers] == [job_id]

        wait_until("the listing to show it", listed)
        lbs.RemoveLoadBalancer(
            lb_pb.RemoveLoadBalancerRequest(
                jobId=job_id, loadBalancerId=lb_pb.LoadBalancerId(id=ip)
            )
        )
        assert list(lbs.GetJobLoadBalancers(jobs_pb.JobId(id=job_id)).loadBalancers) == []


def resize(store: SqliteJobStore, job_id: str, desired: int) -> None:
    j = store.get_job(job_id)
    assert j is not None and j.jobDescriptor.service is not None
    j.jobDescriptor.service.capacity.desired = desired
    store.update_job(j)
    store.mark_dirty(job_id)


def test_targets_follow_scale_up_scale_down_and_kills(
    target_groups: dict[str, str], tmp_path: Path
) -> None:
    arn = target_groups["ip"]
    store, clock, m, job_id = balanced_job(tmp_path, arn, tasks=1)
    addresses: dict[str, str] = {}

    def serve_new() -> None:
        for t in tasks(store, job_id):
            if t.state == TaskState.LAUNCHED and t.id not in addresses:
                addresses[t.id] = f"10.0.2.{len(addresses) + 1}"
                started(m, t.id, addresses[t.id])
        m.iterate()

    def serving() -> set[str]:
        return {addresses[t.id] for t in tasks(store, job_id) if t.state == TaskState.STARTED}

    serve_new()
    settle(m, clock, arn, {"10.0.2.1"})

    resize(store, job_id, 4)  # scale up: every new task joins once it serves
    m.iterate()
    m.iterate()
    serve_new()
    assert len(serving()) == 4
    settle(m, clock, arn, serving())

    resize(store, job_id, 2)  # scale down: the tasks let go leave, the kept ones stay
    m.iterate()
    remaining = serving()
    assert len(remaining) == 2
    settle(m, clock, arn, remaining)

    # a kill: the task leaves the group while it is being killed, before it has ended
    victim = next(t for t in tasks(store, job_id) if t.state == TaskState.STARTED)
    store.add_kill_request(KillRequest(job_id, victim.id))
    store.mark_dirty(job_id)
    m.iterate()
    killing = store.get_task(victim.id)
    assert killing is not None and killing.state == TaskState.KILL_INITIATED
    settle(m, clock, arn, remaining - {addresses[victim.id]})
    finished(m, victim.id)
    m.iterate()
    serve_new()  # its replacement joins when it serves
    settle(m, clock, arn, serving())
    assert len(serving()) == 2 and addresses[victim.id] not in targets(arn)


def test_a_task_being_killed_leaves_its_groups_at_once(
    target_groups: dict[str, str], tmp_path: Path
) -> None:
    arn = target_groups["ip"]
    store, clock, m, job_id = balanced_job(tmp_path, arn, tasks=2)
    first, second = sorted(t.id for t in tasks(store, job_id))
    started(m, first, "10.0.2.1")
    started(m, second, "10.0.2.2")
    settle(m, clock, arn, {"10.0.2.1", "10.0.2.2"})

    victim = m.view.get(first)
    assert victim is not None
    m.executor.kill(victim, Reason.KILLED, "killed by a test")

    def left() -> bool:
        m.iterate()  # no time passes: the kill alone calls the pass
        return targets(arn) == {"10.0.2.2"}

    wait_until("the killed task out of its group", left, timeout=10)
