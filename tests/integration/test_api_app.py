"""The API in-process on a real SQLite store and a LocalCoordinator: helpers for the API
tests, and the request gate: bad bodies, auth, rate limits, idempotency, admission bounds."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from titus.api.app import create_app
from titus.coord.local import LocalCoordinator
from titus.settings import Settings
from titus.store.sqlite import SqliteJobStore

SERVICE: dict[str, Any] = {
    "owner": {"teamEmail": "team@example.com"},
    "applicationName": "web",
    "container": {
        "image": {"name": "titus/busybox", "tag": "latest"},
        "resources": {"cpu": 1, "memoryMB": 512, "diskMB": 10000, "networkMbps": 128},
    },
    "service": {"capacity": {"min": 1, "desired": 2, "max": 5}},
}
BATCH: dict[str, Any] = {
    **{k: v for k, v in SERVICE.items() if k != "service"},
    "batch": {"size": 1, "runtimeLimitSec": "600"},
}


def service(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SERVICE)
    body.update(changes)
    return body


@contextmanager
def api(tmp: Path, **settings: Any) -> Iterator[tuple[TestClient, SqliteJobStore]]:
    store = SqliteJobStore(tmp / "titus.db", synchronous="OFF")
    app = create_app(Settings(data_dir=str(tmp), **settings), store, LocalCoordinator())
    with TestClient(app) as client:
        yield client, store
    store.close()


def test_bad_bodies_get_one_error_shape_and_nothing_is_stored(tmp_path: Path) -> None:
    with api(tmp_path, max_body_bytes=2000) as (http, store):
        r = http.post(
            "/api/v3/jobs", content=b'{"owner": ', headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and "column" in r.json()["message"]
        r = http.post("/api/v3/jobs", content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        r = http.post(
            "/api/v3/jobs",
            content=b"{" + b" " * 5000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413
        bad = service()
        bad["container"]["resources"]["memoryMb"] = 512
        bad["container"]["resources"]["cpu"] = 500
        r = http.post("/api/v3/jobs", json=bad)
        assert r.status_code == 400
        assert {e["path"] for e in r.json()["errors"]} >= {
            "container.resources.memoryMb",
            "container.resources.cpu",
        }
        assert r.json()["statusCode"] == 400
        assert store.count_active_jobs() == 0


def test_true_is_not_taken_for_one_in_any_body(tmp_path: Path) -> None:
    """A `true` or a `false` where a number goes is refused naming the field, as
    protobuf-JSON refuses it, in a job, its capacity and a capacity group alike; numbers
    as strings (Spinnaker sends a capacity's so) stay accepted."""
    with api(tmp_path) as (http, store):
        job_id = http.post("/api/v3/jobs", json=service()).json()["id"]
        refusals = [
            ("PUT", f"/api/v3/jobs/{job_id}/instances", {"min": False, "desired": 1, "max": 2}),
            ("PUT", f"/api/v3/jobs/{job_id}/capacityAttributes", {"desired": True}),
            (
                "PUT",
                "/api/v2/management/applications/web",
                {"appName": "web", "instanceCount": True},
            ),
        ]
        for method, url, body in refusals:
            r = http.request(method, url, json=body)
            assert r.status_code == 400, (url, r.text)
            named = {e["path"] for e in r.json()["errors"]}
            assert named & {"min", "desired", "instanceCount"}, (url, named)
        job = store.get_job(job_id)
        assert job is not None and job.jobDescriptor.service is not None
        assert job.jobDescriptor.service.capacity.min == 1
        assert job.jobDescriptor.service.capacity.desired == 2
        r = http.put(f"/api/v3/jobs/{job_id}/capacityAttributes", json={"desired": "3"})
        assert r.status_code == 200, r.text
        job = store.get_job(job_id)
        assert job is not None and job.jobDescriptor.service is not None
        assert job.jobDescriptor.service.capacity.desired == 3


def test_auth_on_needs_a_token_for_changes_and_admin_for_groups(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tok-alice": {"callerId": "alice", "roles": []},
                "tok-root": {"callerId": "root", "roles": ["admin"]},
            }
        )
    )
    with api(tmp_path, auth_tokens_file=str(tokens)) as (http, _):
        assert http.post("/api/v3/jobs", json=service()).status_code == 401
        bad = http.post("/api/v3/jobs", json=service(), headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        r = http.post(
            "/api/v3/jobs",
            json=service(),
            headers={"Authorization": "Bearer tok-alice", "X-Titus-CallerId": "mallory"},
        )
        assert r.status_code == 202
        alice = {"Authorization": "Bearer tok-alice"}
        # reads need a token too (auth_reads, on by default with tokens)
        assert http.get(f"/api/v3/jobs/{r.json()['id']}").status_code == 401
        job = http.get(f"/api/v3/jobs/{r.json()['id']}", headers=alice).json()
        assert job["jobDescriptor"]["attributes"]["titus.createdBy"] == "alice"
        group = {"appName": "g1"}
        base = "/api/v2/management/applications"
        assert (
            http.post(base, json=group, headers={"Authorization": "Bearer tok-alice"}).status_code
            == 403
        )
        assert (
            http.post(base, json=group, headers={"Authorization": "Bearer tok-root"}).status_code
            == 201
        )
        lifecycle = "/api/v3/instanceGroups/g-web/lifecycle"
        phase_out = {"state": "phasedOut"}
        refused = http.put(lifecycle, json=phase_out, headers=alice)
        assert refused.status_code == 403 and "admin" in refused.json()["message"]
        root = {"Authorization": "Bearer tok-root"}
        assert http.put(lifecycle, json=phase_out, headers=root).status_code == 200
        assert http.get("/api/v3/jobs").status_code == 401
        assert http.get("/api/v3/jobs", headers=alice).status_code == 200


def test_auth_off_takes_the_caller_from_the_header(tmp_path: Path) -> None:
    with api(tmp_path) as (http, _):
        r = http.post("/api/v3/jobs", json=service(), headers={"X-Titus-CallerId": "bob"})
        job = http.get(f"/api/v3/jobs/{r.json()['id']}").json()
        assert job["jobDescriptor"]["attributes"]["titus.createdBy"] == "bob"
        assert (
            http.post("/api/v2/management/applications", json={"appName": "g"}).status_code == 201
        )


def test_a_caller_over_its_bucket_gets_429_while_another_passes(tmp_path: Path) -> None:
    buckets = [
        {"name": "create", "endpoint": "POST /api/v3/jobs", "capacity": 3, "refill_per_sec": 0.001}
    ]
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"t-hog": {"callerId": "hog"}, "t-ok": {"callerId": "ok"}}))
    with api(tmp_path, rate_limit_buckets=buckets, auth_tokens_file=str(tokens)) as (http, _):
        hog = {"Authorization": "Bearer t-hog"}
        codes = [
            http.post("/api/v3/jobs", json=service(), headers=hog).status_code for _ in range(5)
        ]
        assert codes == [202, 202, 202, 429, 429]
        r = http.post("/api/v3/jobs", json=service(), headers=hog)
        assert "create" in r.json()["message"] and int(r.headers["Retry-After"]) >= 1
        other = http.post("/api/v3/jobs", json=service(), headers={"Authorization": "Bearer t-ok"})
        assert other.status_code == 202
        assert http.get("/api/v3/jobs", headers=hog).status_code == 200


def test_a_new_caller_id_per_request_does_not_escape_the_rate_limit(tmp_path: Path) -> None:
    """Without a token, the budget is the client address's: X-Titus-CallerId (chosen by
    the caller) names the caller on its jobs, but buys no fresh budget."""
    buckets = [
        {"name": "create", "endpoint": "POST /api/v3/jobs", "capacity": 3, "refill_per_sec": 0.001}
    ]
    with api(tmp_path, rate_limit_buckets=buckets) as (http, _):
        codes = [
            http.post(
                "/api/v3/jobs", json=service(), headers={"X-Titus-CallerId": f"me-{i}"}
            ).status_code
            for i in range(5)
        ]
        assert codes == [202, 202, 202, 429, 429]


def test_idempotent_creates(tmp_path: Path) -> None:
    with api(tmp_path) as (http, store):
        key = {"Idempotency-Key": "deploy-42"}
        first = http.post("/api/v3/jobs", json=service(), headers=key)
        again = http.post("/api/v3/jobs", json=service(), headers=key)
        assert first.status_code == again.status_code == 202
        assert first.json()["id"] == again.json()["id"]
        assert store.count_active_jobs() == 1
        other = http.post("/api/v3/jobs", json=service(applicationName="other"), headers=key)
        assert other.status_code == 422
        # a refused create does not use up the key
        bad = service()
        bad["owner"] = {"teamEmail": "x"}
        assert (
            http.post("/api/v3/jobs", json=bad, headers={"Idempotency-Key": "k2"}).status_code
            == 400
        )
        assert (
            http.post("/api/v3/jobs", json=service(), headers={"Idempotency-Key": "k2"}).status_code
            == 202
        )


def test_active_job_and_task_bounds_refuse_with_429(tmp_path: Path) -> None:
    with api(tmp_path, max_active_jobs=2, max_active_tasks=5) as (http, _):
        assert http.post("/api/v3/jobs", json=service()).status_code == 202
        r = http.post(
            "/api/v3/jobs", json=service(service={"capacity": {"min": 0, "desired": 4, "max": 4}})
        )
        assert r.status_code == 429 and "maxActiveTasks" in r.json()["message"]
        assert http.post("/api/v3/jobs", json=service()).status_code == 202
        r = http.post("/api/v3/jobs", json=BATCH)
        assert r.status_code == 429 and "maxActiveJobs" in r.json()["message"]


def test_paging_with_a_cursor_stays_correct_while_jobs_come(tmp_path: Path) -> None:
    with api(tmp_path) as (http, _):
        ids = [http.post("/api/v3/jobs", json=BATCH).json()["id"] for _ in range(7)]
        seen: list[str] = []
        page = http.get("/api/v3/jobs", params={"pageSize": 3}).json()
        seen += [j["id"] for j in page["items"]]
        http.post("/api/v3/jobs", json=BATCH)  # a newer job lands after the cursor
        while page["pagination"]["hasMore"]:
            page = http.get(
                "/api/v3/jobs", params={"pageSize": 3, "cursor": page["pagination"]["cursor"]}
            ).json()
            seen += [j["id"] for j in page["items"]]
        assert seen[:7] == ids and len(seen) == 8
        # filtered, page by page: the same jobs in the same order, each once
        params: dict[str, Any] = {"jobType": "BATCH", "pageSize": 3}
        page = http.get("/api/v3/jobs", params=params).json()
        filtered = [j["id"] for j in page["items"]]
        while page["pagination"]["hasMore"]:
            assert page["pagination"]["totalItems"] == 8
            cursor = page["pagination"]["cursor"]
            page = http.get("/api/v3/jobs", params={**params, "cursor": cursor}).json()
            filtered += [j["id"] for j in page["items"]]
        assert filtered == seen
        third = http.get("/api/v3/jobs", params={**params, "page": 2}).json()["items"]
        assert [j["id"] for j in third] == seen[6:]
        assert http.get("/api/v3/jobs", params={"jobType": "nope"}).status_code == 400
        assert (
            http.get("/api/v3/jobs", params={"jobType": "batch"}).json()["pagination"]["totalItems"]
            == 8
        )


def test_a_full_capacity_group_refuses_new_work_and_names_its_limit(tmp_path: Path) -> None:
    with api(tmp_path, max_pending_per_group=5) as (client, store):
        store.set_meta("scheduler.pendingByGroup", json.dumps({"web": 5, "DEFAULT": 1}))
        full = copy.deepcopy(BATCH)
        full["capacityGroup"] = "web"
        r = client.post("/api/v3/jobs", json=full)
        assert r.status_code == 429, r.text
        assert "web" in r.json()["message"] and "5" in r.json()["message"]
        assert r.headers["Retry-After"]
        # another group still takes work, and nothing of the refused job was stored
        assert client.post("/api/v3/jobs", json=BATCH).status_code == 202
        assert len(store.list_active_jobs()) == 1


def test_an_idempotency_key_whose_claimant_died_is_taken_over_after_its_lease(
    tmp_path: Path,
) -> None:
    """A process claimed the key and died before making the job: a retry is told to wait
    while the claim is fresh, and takes the key over once the lease has passed, instead of
    being refused for the key's whole life."""
    body = service()
    fingerprint = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    ttl = Settings().idempotency_ttl_sec
    with api(tmp_path) as (http, store):
        headers = {"Idempotency-Key": "deploy-7", "X-Titus-CallerId": "alice"}
        store.claim_idempotency_key("alice|deploy-7", fingerprint, "ghost-fresh", ttl)
        r = http.post("/api/v3/jobs", json=body, headers=headers)
        assert r.status_code == 409 and "in progress" in r.json()["message"]
        store.release_idempotency_key("alice|deploy-7", "ghost-fresh")
        # claimed 31 s ago (its lease is 30 s), and its job never made
        store.claim_idempotency_key("alice|deploy-7", fingerprint, "ghost-old", ttl - 31)
        r = http.post("/api/v3/jobs", json=body, headers=headers)
        assert r.status_code == 202, r.text
        again = http.post("/api/v3/jobs", json=body, headers=headers)
        assert again.status_code == 202 and again.json()["id"] == r.json()["id"]
        assert store.count_active_jobs() == 1
