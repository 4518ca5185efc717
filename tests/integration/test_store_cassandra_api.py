"""The API over the Cassandra store (CQL test server): when Cassandra cannot serve, clients
get 503 with Retry-After and a message that says so, and nothing half-written is left.

The API's own tests run on SQLite; these prove the mapping holds for the errors only the
Cassandra backend produces (retries exhausted on unavailable replicas or timeouts).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.integration.test_api_app import BATCH, service
from tests.support.cql.server import CqlServer
from tests.support.poll import wait_until
from titus.api.app import create_app
from titus.coord.local import LocalCoordinator
from titus.settings import Settings
from titus.store.cassandra import CassandraJobStore


@pytest.fixture
def store(cql_server: CqlServer) -> Iterator[CassandraJobStore]:  # noqa: F811
    s = CassandraJobStore(
        [cql_server.host],
        port=cql_server.port,
        local_dc="datacenter1",
        retries=2,
        backoff_base=0.001,
        request_timeout=5.0,
    )
    yield s
    s.close()


@pytest.fixture
def http(tmp_path: Path, store: CassandraJobStore) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=str(tmp_path)), store, LocalCoordinator())
    with TestClient(app) as client:
        yield client


def _job_ids(http: TestClient) -> set[str]:
    r = http.get("/api/v3/jobs", params={"pageSize": "100"})
    assert r.status_code == 200, r.text
    return {j["id"] for j in r.json()["items"]}


@pytest.mark.parametrize("kind", ["unavailable", "write_timeout"])
def test_create_when_cassandra_cannot_write_is_503_and_stores_nothing(
    http: TestClient,
    cql_server: CqlServer,  # noqa: F811
    store: CassandraJobStore,
    kind: str,
) -> None:
    cql_server.inject(kind, "INSERT INTO active_jobs", times=1000)
    r = http.post("/api/v3/jobs", json=service(jobGroupInfo={"sequence": "v001"}))
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    body = r.json()
    assert body["statusCode"] == 503
    assert "store unavailable" in body["message"] and "was not created" in body["message"]
    cql_server.clear_faults()
    assert _job_ids(http) == set()
    assert store.count_active_jobs() == 0 and store.list_active_tasks() == []
    # The group name was given back: the same submission now succeeds.
    r = http.post("/api/v3/jobs", json=service(jobGroupInfo={"sequence": "v001"}))
    assert r.status_code == 202, r.text
    assert _job_ids(http) == {r.json()["id"]}


def test_reads_when_cassandra_is_unavailable_are_503(
    http: TestClient,
    cql_server: CqlServer,  # noqa: F811
) -> None:
    r = http.post("/api/v3/jobs", json=BATCH)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert http.get(f"/api/v3/jobs/{job_id}").status_code == 200
    cql_server.inject("unavailable", "FROM active_jobs", times=1000)
    r = http.get(f"/api/v3/jobs/{job_id}")  # a read by id goes to the store
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert f"read job {job_id}" in r.json()["message"]
    cql_server.clear_faults()
    assert http.get(f"/api/v3/jobs/{job_id}").status_code == 200


def test_the_api_works_over_cassandra(http: TestClient, store: CassandraJobStore) -> None:
    r = http.post("/api/v3/jobs", json=service(), headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    again = http.post("/api/v3/jobs", json=service(), headers={"Idempotency-Key": "k-1"})
    assert again.status_code in (200, 202) and again.json()["id"] == job_id
    assert _job_ids(http) == {job_id}
    got = http.get(f"/api/v3/jobs/{job_id}")
    assert got.status_code == 200 and got.json()["jobDescriptor"]["applicationName"] == "web"
    assert store.get_job(job_id) is not None


def test_health_says_what_is_true_and_answers_503_while_the_store_is_down(
    http: TestClient, cql_server: CqlServer
) -> None:
    """No leader and no host in this API-only process: degraded, and it says why; the store
    down: 503, unavailable, naming the store; back: no longer unavailable."""
    r = http.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "degraded" and body["store"] == "ok"
    assert "no leader is known" in body["reasons"]
    assert "no healthy host is registered" in body["reasons"]
    cql_server.inject("unavailable", "FROM meta", times=1000)
    try:
        r = wait_until(
            "health to see the store down",
            lambda: (resp := http.get("/health")).status_code == 503 and resp,
            10,
        )
        assert r.json()["status"] == "unavailable"
        assert r.json()["store"].startswith("unavailable")
    finally:
        cql_server.clear_faults()
    wait_until(
        "health to see the store back", lambda: http.get("/health").json()["store"] == "ok", 10
    )


def test_a_create_that_certainly_failed_frees_its_idempotency_key_at_once(
    http: TestClient,
    cql_server: CqlServer,  # noqa: F811
    store: CassandraJobStore,
) -> None:
    """The store said the job was not written: the client's retry with the same key is a
    new attempt that can succeed now, not a 409 "in progress" for the pending lease."""
    key = {"Idempotency-Key": "deploy-failed"}
    cql_server.inject("unavailable", "INSERT INTO active_jobs", times=1000)
    first = http.post("/api/v3/jobs", json=service(), headers=key)
    assert first.status_code == 503 and "was not created" in first.json()["message"]
    cql_server.clear_faults()
    again = http.post("/api/v3/jobs", json=service(), headers=key)
    assert again.status_code == 202, again.text
    assert _job_ids(http) == {again.json()["id"]}
    assert store.count_active_jobs() == 1


def test_a_create_whose_outcome_is_unknown_keeps_its_idempotency_key(
    http: TestClient,
    cql_server: CqlServer,  # noqa: F811
    store: CassandraJobStore,
) -> None:
    """The ambiguous case: the job's batch applied, but every attempt timed out and the
    store could not read whether it landed: 503, and the key stays with that job, so the
    client's retry gets the job instead of a second one."""
    key = {"Idempotency-Key": "deploy-ambiguous"}
    held = cql_server.hold("INSERT INTO active_jobs")
    answer: list[object] = []
    thread = threading.Thread(
        target=lambda: answer.append(http.post("/api/v3/jobs", json=service(), headers=key)),
        daemon=True,
    )
    thread.start()
    assert held.arrived.wait(10)
    cql_server.inject("write_timeout", "INSERT INTO active_jobs", times=1000, applied=True)
    cql_server.inject("read_timeout", "FROM active_jobs", times=1000)
    held.release()
    thread.join(30)
    first = answer[0]
    assert getattr(first, "status_code", None) == 503, first
    cql_server.clear_faults()
    again = http.post("/api/v3/jobs", json=service(), headers=key)
    assert again.status_code == 202, again.text
    assert store.count_active_jobs() == 1
    assert again.json()["id"] in _job_ids(http)
