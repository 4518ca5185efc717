"""Spinnaker's flows as clouddriver sends them, against the API on a real SQLite store."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.integration.test_api_app import api, service
from titus.coord.base import AgentInfo
from titus.model.job import Task, TaskStatus
from titus.model.states import TaskState
from titus.store.base import KillRequest, StoreUnavailable

CALLER = {"X-Titus-CallerId": "spinnaker", "X-Titus-CallReason": "deploy"}


def server_group(seq: str = "v001") -> dict[str, object]:
    return service(
        applicationName="api",
        jobGroupInfo={"stack": "prod", "detail": "east", "sequence": seq},
        attributes={
            "source": "spinnaker",
            "name": f"api-prod-east-{seq}",
            "spinnakerAccount": "prod",
        },
    )


def add_task(store: object, job_id: str, n: int) -> str:
    """A running task as the master would write it."""
    task = Task(
        id=f"{job_id}-t{n}",
        jobId=job_id,
        originalId=f"{job_id}-t{n}",
        status=TaskStatus(state=TaskState.STARTED),
    )
    store.create_task(task)  # type: ignore[attr-defined]
    return task.id


def test_deploy_find_resize_disable_enable_kill(tmp_path: Path) -> None:
    with api(tmp_path) as (http, store):
        r = http.post("/api/v3/jobs", json=server_group(), headers=CALLER)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        http.post("/api/v3/jobs", json=server_group("v002"), headers=CALLER)

        found = http.get(
            "/api/v3/jobs",
            params={
                "attributes": "source:spinnaker,name:api-prod-east-v001",
                "attributes.op": "and",
                "jobType": "SERVICE",
            },
        ).json()
        assert [j["id"] for j in found["items"]] == [job_id]
        attrs = found["items"][0]["jobDescriptor"]["attributes"]
        assert attrs["titus.createdBy"] == "spinnaker" and attrs["titus.callReason"] == "deploy"

        r = http.put(
            f"/api/v3/jobs/{job_id}/instances",
            json={"min": "1", "desired": "3", "max": "4"},
            headers=CALLER,
        )
        assert r.status_code == 200, r.text
        r = http.post(f"/api/v3/jobs/{job_id}/disable", headers=CALLER)
        assert r.status_code == 200
        job = http.get(f"/api/v3/jobs/{job_id}").json()
        assert job["jobDescriptor"]["service"]["enabled"] is False
        assert job["jobDescriptor"]["service"]["capacity"]["desired"] == 3
        assert job["status"]["reasonMessage"] == "job disabled by spinnaker: deploy"
        assert http.post(f"/api/v3/jobs/{job_id}/enable").status_code == 200
        job = http.get(f"/api/v3/jobs/{job_id}").json()
        assert job["jobDescriptor"]["service"]["enabled"]
        assert job["status"]["reasonMessage"] == "job enabled by user"
        assert job["statusHistory"][-1]["reasonMessage"] == "job disabled by spinnaker: deploy"
        assert job["statusHistory"][-1]["timestamp"] <= job["status"]["timestamp"]
        # enabling an enabled job changes nothing, and writes no entry
        entries = len(job["statusHistory"])
        assert http.post(f"/api/v3/jobs/{job_id}/enable").status_code == 200
        assert len(http.get(f"/api/v3/jobs/{job_id}").json()["statusHistory"]) == entries

        t1, t2 = add_task(store, job_id, 1), add_task(store, job_id, 2)
        assert http.delete(f"/api/v3/tasks/{t1}").status_code == 200
        assert http.delete(f"/api/v3/tasks/{t2}", params={"shrink": "true"}).status_code == 200
        assert (
            http.get(f"/api/v3/jobs/{job_id}").json()["jobDescriptor"]["service"]["capacity"][
                "desired"
            ]
            == 2
        )
        assert {k.task_id for k in store.list_kill_requests(job_id)} == {t1, t2}

        assert http.delete(f"/api/v3/jobs/{job_id}", headers=CALLER).status_code == 200
        assert http.get(f"/api/v3/jobs/{job_id}").json()["status"]["state"] == "KillInitiated"
        assert http.delete("/api/v3/jobs/no-such-job").status_code == 404
        assert http.delete("/api/v3/tasks/no-such-task").status_code == 404


def test_duplicate_group_name_names_the_job(tmp_path: Path) -> None:
    with api(tmp_path) as (http, _):
        first = http.post("/api/v3/jobs", json=server_group()).json()["id"]
        r = http.post("/api/v3/jobs", json=server_group())
        assert r.status_code == 409
        msg = r.json()["message"]
        assert "job with group sequence" in msg and "exists" in msg and first in msg


def test_racing_creates_for_one_group_name_never_both_win(tmp_path: Path) -> None:
    with api(tmp_path) as (http, _):
        results: list[int] = []
        start = threading.Barrier(8)

        def create() -> None:
            start.wait()
            results.append(http.post("/api/v3/jobs", json=server_group("v007")).status_code)

        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [202] + [409] * 7
        listed = http.get("/api/v3/jobs", params={"jobGroupSequence": "v007"}).json()
        assert listed["pagination"]["totalItems"] == 1


def test_job_and_task_attributes_budget_processes_and_move(tmp_path: Path) -> None:
    with api(tmp_path) as (http, store):
        a = http.post("/api/v3/jobs", json=service()).json()["id"]
        b = http.post("/api/v3/jobs", json=service()).json()["id"]
        assert (
            http.put(
                f"/api/v3/jobs/{a}/attributes", json={"attributes": {"team": "x", "tier": "1"}}
            ).status_code
            == 200
        )
        assert (
            http.delete(f"/api/v3/jobs/{a}/attributes", params={"keys": "tier"}).status_code == 200
        )
        attrs = http.get(f"/api/v3/jobs/{a}").json()["jobDescriptor"]["attributes"]
        assert attrs["team"] == "x" and "tier" not in attrs
        r = http.put(f"/api/v3/jobs/{a}/attributes", json={"attributes": {"titusX": "1"}})
        assert r.status_code == 400 and r.json()["errors"][0]["path"] == "attributes.titusX"

        budget = {"relocationLimit": {"limit": 2}, "rateUnlimited": {}}
        assert http.put(f"/api/v3/jobs/{a}/disruptionBudget", json=budget).status_code == 200
        assert (
            http.put(f"/api/v3/jobs/{a}/disruptionBudget", json={"rateUnlimited": {}}).status_code
            == 400
        )
        assert (
            http.put(
                f"/api/v3/jobs/{a}/jobprocesses", json={"disableIncreaseDesired": True}
            ).status_code
            == 200
        )
        r = http.put(f"/api/v3/jobs/{a}/capacityAttributes", json={"desired": 4})
        assert r.status_code == 400 and "increasing" in r.json()["message"]
        assert http.put(f"/api/v3/jobs/{a}/capacityAttributes", json={"min": 0}).status_code == 200
        job = http.get(f"/api/v3/jobs/{a}").json()["jobDescriptor"]
        assert job["disruptionBudget"]["relocationLimit"]["limit"] == 2
        assert job["service"]["capacity"] == {"min": 0, "desired": 2, "max": 5}

        task = add_task(store, a, 1)
        assert (
            http.put(
                f"/api/v3/tasks/{task}/attributes", json={"attributes": {"k": "v"}}
            ).status_code
            == 200
        )
        assert http.get(f"/api/v3/tasks/{task}").json()["attributes"] == {"k": "v"}
        listed = http.get("/api/v3/tasks", params={"jobIds": a}).json()["items"]
        assert listed[0]["attributes"] == {"k": "v"}
        assert (
            http.delete(f"/api/v3/tasks/{task}/attributes", params={"keys": "k"}).status_code == 200
        )
        assert http.get(f"/api/v3/tasks/{task}").json().get("attributes", {}) == {}

        r = http.post(
            "/api/v3/tasks/move", json={"sourceJobId": a, "targetJobId": b, "taskId": task}
        )
        assert r.status_code == 200, r.text
        assert store.list_move_requests(a)[0].target_job_id == b
        r = http.post(
            "/api/v3/tasks/move", json={"sourceJobId": b, "targetJobId": a, "taskId": task}
        )
        assert r.status_code == 400


def test_capacity_groups(tmp_path: Path) -> None:
    with api(tmp_path) as (http, _):
        base = "/api/v2/management/applications"
        assert [g["appName"] for g in http.get(base).json()] == ["DEFAULT"]
        group = {
            "appName": "batchers",
            "tier": "Critical",
            "instanceCPU": 2,
            "instanceMemoryMB": 4096,
            "instanceCount": 10,
        }
        assert http.post(base, json=group).status_code == 201
        assert http.post(base, json=group).status_code == 409
        assert http.get(f"{base}/batchers").json()["tier"] == "Critical"
        assert http.put(f"{base}/batchers", json={**group, "appName": "x"}).status_code == 400
        assert http.put(f"{base}/batchers", json={**group, "instanceCount": 5}).status_code == 200
        assert http.post(base, json={**group, "appName": "b2", "tier": "Gold"}).status_code == 400
        assert http.delete(f"{base}/DEFAULT").status_code == 409
        assert http.delete(f"{base}/batchers").status_code == 204
        assert http.get(f"{base}/batchers").status_code == 404
        assert http.get(f"{base}/DEFAULT").status_code == 200


def test_task_listings_filter_page_and_project(tmp_path: Path) -> None:
    with api(tmp_path) as (http, store):
        a = http.post("/api/v3/jobs", json=service()).json()["id"]
        b = http.post("/api/v3/jobs", json=service(applicationName="other")).json()["id"]
        ours = [add_task(store, a, n) for n in range(5)]
        add_task(store, b, 0)

        seen: list[str] = []
        params = {"applicationName": "web", "pageSize": "2", "fields": "status.state"}
        page = http.get("/api/v3/tasks", params=params).json()
        while True:
            assert page["pagination"]["totalItems"] == 5
            assert all(set(t) == {"id", "status"} for t in page["items"])
            assert {t["status"]["state"] for t in page["items"]} == {"Started"}
            seen += [t["id"] for t in page["items"]]
            if not page["pagination"]["hasMore"]:
                break
            cursor = page["pagination"]["cursor"]
            page = http.get("/api/v3/tasks", params={**params, "cursor": cursor}).json()
        assert sorted(seen) == sorted(ours) and len(seen) == 5

        second = http.get("/api/v3/tasks", params={**params, "page": "1"}).json()
        assert [t["id"] for t in second["items"]] == seen[2:4]
        by_job = http.get("/api/v3/tasks", params={"jobIds": a, "pageSize": "2", "page": "2"})
        assert [t["id"] for t in by_job.json()["items"]] == seen[4:]
        assert not by_job.json()["pagination"]["hasMore"]
        assert by_job.json()["pagination"]["totalItems"] == 5
        none = http.get("/api/v3/tasks", params={"taskStates": "Finished"}).json()
        assert none["items"] == [] and none["pagination"]["totalItems"] == 0
        assert http.get("/api/v3/tasks", params={"taskStates": "Nope"}).status_code == 400


def test_agents_show_the_usage_and_tasks_of_what_runs_on_them(tmp_path: Path) -> None:
    with api(tmp_path) as (http, store):
        coord = http.app.state.jobs.coord  # type: ignore[attr-defined]
        resources = {"cpu": 8.0, "memoryMB": 16384.0, "diskMB": 100000.0}
        coord.register_agent(AgentInfo("h1", "http://127.0.0.1:1", resources))
        coord.register_agent(AgentInfo("h2", "http://127.0.0.1:2", resources))
        job_id = http.post("/api/v3/jobs", json=service()).json()["id"]
        running = [
            Task(
                id=f"{job_id}-{n}",
                jobId=job_id,
                originalId=f"{job_id}-{n}",
                status=TaskStatus(state=state),
                taskContext={"agent.id": "h1"},
            )
            for n, state in ((1, TaskState.STARTED), (2, TaskState.FINISHED))
        ]
        for task in running:
            store.create_task(task)
        h1, h2 = http.get("/api/v3/agents").json()["items"]
        assert h1["id"] == "h1" and h1["tasks"] == [f"{job_id}-1"]
        assert h1["usage"]["cpu"] == 1 and h1["usage"]["memoryMB"] == 512
        assert h1["free"]["cpu"] == 7 and h1["lifecycleState"] == "active"
        assert h2["tasks"] == [] and h2["usage"]["cpu"] == 0


def test_attributes_added_a_little_at_a_time_stop_at_the_bound(tmp_path: Path) -> None:
    """Each update is small; what the job or task would hold after it is what is bounded."""
    with api(tmp_path) as (http, store):
        job = http.post("/api/v3/jobs", json=service()).json()["id"]
        task = add_task(store, job, 1)
        for path in (f"/api/v3/jobs/{job}/attributes", f"/api/v3/tasks/{task}/attributes"):
            for batch in range(10):
                attrs = {f"k{batch}-{i}": "v" for i in range(10)}
                assert http.put(path, json={"attributes": attrs}).status_code == 200
            r = http.put(path, json={"attributes": {"one-more": "v"}})
            assert r.status_code == 400, path
            assert "at most 100 attributes (101 given)" in r.json()["errors"][0]["message"]
            # replacing an existing key stays within the bound
            assert http.put(path, json={"attributes": {"k0-0": "w"}}).status_code == 200
        attributes = http.get(f"/api/v3/jobs/{job}").json()["jobDescriptor"]["attributes"]
        assert len(attributes) == 100 and attributes["k0-0"] == "w"


def test_a_retried_kill_with_shrink_lowers_desired_once(tmp_path: Path) -> None:
    """The client's first DELETE got no answer (a timeout) and it sends the same again."""
    with api(tmp_path) as (http, store):
        job_id = http.post("/api/v3/jobs", json=service()).json()["id"]
        task = add_task(store, job_id, 1)
        before = http.get(f"/api/v3/jobs/{job_id}").json()["jobDescriptor"]["service"]
        for _ in range(3):
            r = http.delete(f"/api/v3/tasks/{task}", params={"shrink": "true"})
            assert r.status_code == 200, r.text
        after = http.get(f"/api/v3/jobs/{job_id}").json()["jobDescriptor"]["service"]
        assert after["capacity"]["desired"] == before["capacity"]["desired"] - 1


def test_a_kill_with_shrink_cut_short_after_the_shrink_lowers_desired_once_when_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first DELETE lowered desired, then its kill request could not be written (the
    store failed, the API died): the client hears an error and sends the same again."""
    with api(tmp_path) as (http, store):
        job_id = http.post("/api/v3/jobs", json=service()).json()["id"]
        task = add_task(store, job_id, 1)
        before = http.get(f"/api/v3/jobs/{job_id}").json()["jobDescriptor"]["service"]
        written = store.add_kill_request

        def fail_once(request: KillRequest) -> None:
            monkeypatch.setattr(store, "add_kill_request", written)
            raise StoreUnavailable("injected: the kill request was not written")

        monkeypatch.setattr(store, "add_kill_request", fail_once)
        r = http.delete(f"/api/v3/tasks/{task}", params={"shrink": "true"})
        assert r.status_code == 503, r.text
        r = http.delete(f"/api/v3/tasks/{task}", params={"shrink": "true"})
        assert r.status_code == 200, r.text
        shown = http.get(f"/api/v3/jobs/{job_id}").json()
        after = shown["jobDescriptor"]["service"]
        assert after["capacity"]["desired"] == before["capacity"]["desired"] - 1
        assert "shrunkFor" not in shown  # the platform's own record
        assert [(k.task_id, k.shrink) for k in store.list_kill_requests(job_id)] == [(task, True)]
