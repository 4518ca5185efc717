"""What operators see of the cluster through the API, on a real SQLite store and a
LocalCoordinator: hosts with the usage of the tasks placed on them, instance group
lifecycles, capacity groups that cannot go while jobs name them, and why a task waits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.integration.test_api_app import service
from titus.api.app import create_app
from titus.coord.base import AgentInfo
from titus.coord.local import LocalCoordinator
from titus.model.job import Task, TaskStatus
from titus.model.names import AgentContext, TaskContextKey
from titus.model.states import TaskState
from titus.settings import Settings
from titus.store.sqlite import SqliteJobStore

HOST = {"cpu": 8.0, "memoryMB": 16384.0, "diskMB": 100000.0, "networkMbps": 1000.0, "gpu": 0.0}


class Cluster:
    def __init__(self, http: TestClient, store: SqliteJobStore, coord: LocalCoordinator):
        self.http = http
        self.store = store
        self.coord = coord

    def host(self, host_id: str, **attributes: str) -> None:
        self.coord.register_agent(
            AgentInfo(host_id, f"http://{host_id}:7102", dict(HOST), attributes=attributes)
        )

    def place(self, job_id: str, host_id: str | None) -> str:
        """A task of `job_id` running on `host_id` (None: still waiting for a host), as the
        leader would have written it."""
        context = {TaskContextKey.INDEX: "0"}
        if host_id is not None:
            context[AgentContext.ID] = host_id
        state = TaskState.STARTED if host_id else TaskState.ACCEPTED
        task = Task(
            id=f"{job_id}-0",
            jobId=job_id,
            originalId=f"{job_id}-0",
            status=TaskStatus(state=state, reasonMessage="waiting for a host"),
            taskContext=context,
        )
        return self.store.create_task(task).id


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    store = SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")
    coord = LocalCoordinator()
    app = create_app(Settings(data_dir=str(tmp_path), rate_limit_buckets=[]), store, coord)
    with TestClient(app) as http:
        yield Cluster(http, store, coord)
    store.close()


def test_hosts_show_the_usage_and_tasks_placed_on_them(cluster: Cluster) -> None:
    cluster.host("h1", machineGroup="asg1")
    cluster.host("h2")
    job = cluster.http.post("/api/v3/jobs", json=service()).json()
    task_id = cluster.place(job["id"], "h1")
    items = {a["id"]: a for a in cluster.http.get("/api/v3/agents").json()["items"]}
    assert list(items) == ["h1", "h2"]
    busy, idle = items["h1"], items["h2"]
    assert busy["tasks"] == [task_id]
    assert busy["usage"] == {
        "cpu": 1.0,
        "memoryMB": 512.0,
        "diskMB": 10000.0,
        "networkMbps": 128.0,
        "gpu": 0.0,
    }
    assert busy["free"]["cpu"] == 7.0 and busy["free"]["memoryMB"] == 16384.0 - 512.0
    assert (busy["instanceGroup"], idle["instanceGroup"]) == ("asg1", "default")
    assert idle["tasks"] == [] and idle["usage"]["cpu"] == 0.0
    assert {a["lifecycleState"] for a in items.values()} == {"active"}


def test_an_instance_group_lifecycle_is_kept_and_shown_on_its_hosts(cluster: Cluster) -> None:
    cluster.host("h1", machineGroup="asg1")
    cluster.host("h2", machineGroup="asg1")
    cluster.host("h3")
    r = cluster.http.put("/api/v3/instanceGroups/asg1/lifecycle", json={"state": "phasedOut"})
    assert r.status_code == 200 and r.json() == {"id": "asg1", "lifecycleState": "phasedOut"}
    r = cluster.http.put("/api/v3/instanceGroups/asg0/lifecycle", json={"state": "removable"})
    assert r.status_code == 200
    groups = cluster.http.get("/api/v3/instanceGroups").json()["items"]
    assert groups == [
        {"id": "asg0", "lifecycleState": "removable", "hosts": 0},
        {"id": "asg1", "lifecycleState": "phasedOut", "hosts": 2},
        {"id": "default", "lifecycleState": "active", "hosts": 1},
    ]
    states = {
        a["id"]: a["lifecycleState"] for a in cluster.http.get("/api/v3/agents").json()["items"]
    }
    assert states == {"h1": "phasedOut", "h2": "phasedOut", "h3": "active"}
    long_name = "g" * 201
    r = cluster.http.put(f"/api/v3/instanceGroups/{long_name}/lifecycle", json={"state": "active"})
    assert r.status_code == 400 and "name" in r.json()["message"]
    r = cluster.http.put("/api/v3/instanceGroups/asg1/lifecycle", json={"state": "gone"})
    assert r.status_code == 400
    assert cluster.store.list_instance_groups() == {"asg0": "removable", "asg1": "phasedOut"}


def test_a_capacity_group_named_by_an_active_job_cannot_be_deleted(cluster: Cluster) -> None:
    base = "/api/v2/management/applications"
    assert cluster.http.post(base, json={"appName": "batchy"}).status_code == 201
    assert cluster.http.post(base, json={"appName": "batchy"}).status_code == 409
    job = cluster.http.post("/api/v3/jobs", json=service(capacityGroup="batchy")).json()
    r = cluster.http.delete(f"{base}/batchy")
    assert r.status_code == 409 and "1 active job" in r.json()["message"]
    assert cluster.http.delete(f"{base}/DEFAULT").status_code == 409
    names = [g["appName"] for g in cluster.http.get(base).json()]
    assert names == ["DEFAULT", "batchy"]
    stored = cluster.store.get_job(job["id"])
    assert stored is not None
    cluster.store.archive_job(stored)
    assert cluster.http.delete(f"{base}/batchy").status_code == 204
    assert cluster.http.get(f"{base}/batchy").status_code == 404
    assert cluster.http.get(f"{base}/DEFAULT").json()["appName"] == "DEFAULT"


def test_a_task_that_waits_says_why_and_a_placed_one_says_where(cluster: Cluster) -> None:
    waiting = cluster.place(cluster.http.post("/api/v3/jobs", json=service()).json()["id"], None)
    r = cluster.http.get(f"/api/v3/scheduler/results/{waiting}")
    assert r.status_code == 200
    assert (r.json()["placed"], r.json()["message"]) == (False, "waiting for a host")
    summary = json.dumps({"taskId": waiting, "hostsConsidered": 3, "refusedBy": {"resources": 3}})
    cluster.store.put_scheduler_result(waiting, "job", summary)
    r = cluster.http.get(f"/api/v3/scheduler/results/{waiting}").json()
    assert (r["hostsConsidered"], r["refusedBy"], r["state"]) == (3, {"resources": 3}, "Accepted")
    placed = cluster.place(cluster.http.post("/api/v3/jobs", json=service()).json()["id"], "h1")
    r = cluster.http.get(f"/api/v3/scheduler/results/{placed}").json()
    assert (r["placed"], r["message"]) == (True, "placed on h1")
    assert cluster.http.get("/api/v3/scheduler/results/nope").status_code == 404
