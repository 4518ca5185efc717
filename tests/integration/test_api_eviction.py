"""The eviction API over HTTP: quotas by job, capacity group and system, and evictions let
through only while the job's disruption budget allows (429 beyond, naming the rule)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_api_app import api, service
from tests.integration.test_api_spinnaker import add_task
from tests.support.poll import wait_until


def budgeted(unavailable: int) -> dict[str, object]:
    body = service()
    body["service"]["capacity"] = {"min": 0, "desired": 3, "max": 3}
    body["disruptionBudget"] = {
        "unhealthyTasksLimit": {"limitOfUnhealthyContainers": unavailable},
        "rateUnlimited": {},
    }
    return body


def test_evictions_follow_the_budget_and_say_why_when_refused(tmp_path: Path) -> None:
    with api(tmp_path, eviction_system_per_minute=5) as (http, store):
        job_id = http.post("/api/v3/jobs", json=budgeted(1)).json()["id"]
        tasks = [add_task(store, job_id, n) for n in range(3)]
        wait_until(
            "the view to see the tasks",
            lambda: http.get(f"/api/v3/eviction/quotas/jobs/{job_id}").json()["quota"] == 1,
        )
        quota = http.get(f"/api/v3/eviction/quotas/jobs/{job_id}").json()
        assert quota == {"target": {"jobId": job_id}, "quota": 1, "message": ""}
        assert http.get("/api/v3/eviction/quotas/system").json()["quota"] == 5
        assert http.get("/api/v3/eviction/quotas/capacityGroups/DEFAULT").json()["quota"] == 1

        r = http.delete(f"/api/v3/eviction/tasks/{tasks[0]}", params={"reason": "kernel patch"})
        assert r.status_code == 202, r.text
        assert "kernel patch" in r.json()["message"]
        # as its description says, so a client generated from it takes the answer
        described = http.get("/openapi.json").json()["paths"]["/api/v3/eviction/tasks/{task_id}"]
        assert "202" in described["delete"]["responses"]
        assert "200" not in described["delete"]["responses"]
        (queued,) = store.list_kill_requests(job_id)
        assert queued.eviction and queued.task_id == tasks[0]

        # the queued eviction uses the budget up until the leader has carried it out
        refused = http.delete(f"/api/v3/eviction/tasks/{tasks[1]}")
        assert refused.status_code == 429
        assert "rule: disruption budget" in refused.json()["message"]
        assert refused.headers["Retry-After"]
        assert http.get(f"/api/v3/eviction/quotas/jobs/{job_id}").json()["quota"] == 0
        assert len(store.list_kill_requests(job_id)) == 1

        assert http.delete("/api/v3/eviction/tasks/no-such-task").status_code == 404
        assert http.get("/api/v3/eviction/quotas/jobs/no-such-job").status_code == 404
        long = http.delete(f"/api/v3/eviction/tasks/{tasks[2]}", params={"reason": "x" * 300})
        assert long.status_code == 400


def test_the_system_quota_bounds_every_job(tmp_path: Path) -> None:
    with api(tmp_path, eviction_system_per_minute=1) as (http, store):
        first = http.post("/api/v3/jobs", json=budgeted(3)).json()["id"]
        second = http.post("/api/v3/jobs", json=budgeted(3)).json()["id"]
        a = [add_task(store, first, n) for n in range(3)]
        b = [add_task(store, second, n) for n in range(3)]
        wait_until(
            "the view to see the tasks",
            lambda: http.get(f"/api/v3/eviction/quotas/jobs/{second}").json()["quota"] == 1,
        )
        assert http.delete(f"/api/v3/eviction/tasks/{a[0]}").status_code == 202
        refused = http.delete(f"/api/v3/eviction/tasks/{b[0]}")
        assert refused.status_code == 429
        assert "1 evictions a minute" in refused.json()["message"]
