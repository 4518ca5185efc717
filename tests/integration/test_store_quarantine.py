"""A stored record that cannot be read (whatever put it there) is set aside, never allowed to
fail a listing, a create or a new leader's load: on a real SQLite store, with the API and a
leader over it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.integration.test_api_app import api, service
from tests.integration.test_api_metrics import scrape
from tests.support.metrics import value
from tests.support.quarantine import fresh_quarantine  # noqa: F401 - the fixture
from tests.unit.test_leader import Hosts, host, job, takeover
from titus.store.quarantine import QUARANTINE
from titus.store.sqlite import SqliteJobStore

POISON = {"id": "", "jobDescriptor": {"migrationPolicy": [[[[[]]]]]}, "status": {}}
GAUGE = "titus_store_quarantined_records"


pytestmark = pytest.mark.usefixtures("fresh_quarantine")


def _poison(db: Path, table: str, key: str, ident: str) -> None:
    """Overwrite a stored document with one no version of the model reads."""
    conn = sqlite3.connect(db)
    with conn:
        doc = {**POISON, "id": ident}
        conn.execute(f"UPDATE {table} SET value=? WHERE {key}=?", (json.dumps(doc), ident))
    conn.close()


def test_the_api_leaves_an_unreadable_job_out_and_says_so(tmp_path: Path) -> None:
    with api(tmp_path) as (http, _):
        good = http.post("/api/v3/jobs", json=service()).json()["id"]
        bad = http.post("/api/v3/jobs", json=service()).json()["id"]
    _poison(tmp_path / "titus.db", "active_jobs", "job_id", bad)

    with api(tmp_path) as (http, _):
        listed = http.get("/api/v3/jobs")
        assert listed.status_code == 200
        assert [j["id"] for j in listed.json()["items"]] == [good]
        assert http.post("/api/v3/jobs", json=service()).status_code == 202
        assert http.get(f"/api/v3/jobs/{good}").status_code == 200
        health = http.get("/health").json()
        assert health["status"] == "degraded" and health["quarantined"] == 1
        items = http.get("/api/v3/quarantine").json()["items"]
        assert [(i["kind"], i["id"]) for i in items] == [("job", bad)]
        assert "jobDescriptor" in items[0]["error"]


def test_a_repaired_record_leaves_the_quarantine(tmp_path: Path) -> None:
    """Once an operator repairs the document, the next read of it lists it again and
    /health stops saying degraded (the quarantine is the process's: it outlives one API
    instance, as it outlives one store handle)."""
    db = tmp_path / "titus.db"
    with api(tmp_path) as (http, _):
        bad = http.post("/api/v3/jobs", json=service()).json()["id"]
    conn = sqlite3.connect(db)
    [(original,)] = conn.execute("SELECT value FROM active_jobs WHERE job_id=?", (bad,))
    conn.close()
    _poison(db, "active_jobs", "job_id", bad)
    with api(tmp_path) as (http, _):
        assert http.get("/api/v3/jobs").json()["items"] == []
        assert http.get("/health").json()["quarantined"] == 1

    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE active_jobs SET value=? WHERE job_id=?", (original, bad))
    conn.close()
    with api(tmp_path) as (http, _):
        assert [j["id"] for j in http.get("/api/v3/jobs").json()["items"]] == [bad]
        assert http.get("/api/v3/quarantine").json()["items"] == []
        assert http.get("/health").json()["quarantined"] == 0


def test_a_leader_loads_past_an_unreadable_task_and_leaves_its_job_alone(
    tmp_path: Path,
) -> None:
    """A job with a task the leader cannot read is not reconciled (acting on part of its
    tasks could start one twice); every other job goes on."""
    db = tmp_path / "titus.db"
    store = SqliteJobStore(db, synchronous="OFF")
    hosts = Hosts(host("h1"))
    first = takeover(store, hosts, epoch=1)
    poisoned = job(store, service=2)
    for _ in range(3):
        first.iterate()
    assert len(store.list_tasks(poisoned)) == 2
    victim = store.list_tasks(poisoned)[0].id
    _poison(db, "active_tasks", "task_id", victim)

    second = takeover(store, hosts, epoch=2)
    store.mark_dirty(poisoned)
    newcomer = job(store, service=1)  # submitted after the takeover
    for _ in range(3):
        second.iterate()
    assert ("task", victim) in {(r.kind, r.id) for r in QUARANTINE.records()}
    assert len(store.list_tasks(poisoned)) == 1  # the readable one; nothing replaced
    assert len(store.list_tasks(newcomer)) == 1  # the leader goes on with every other job


def test_an_operator_sets_an_unreadable_task_aside_and_its_job_is_reconciled_again(
    tmp_path: Path,
) -> None:
    """The leader leaves a job with an unreadable task alone; once an operator sets the
    task aside (moved to the archive as stored), the job is taken up again and its missing
    instance replaced. A readable record cannot be hidden this way."""
    db = tmp_path / "titus.db"
    store = SqliteJobStore(db, synchronous="OFF")
    hosts = Hosts(host("h1"))
    leader = takeover(store, hosts, epoch=1)
    poisoned = job(store, service=2)
    for _ in range(3):
        leader.iterate()
    victim, healthy = (t.id for t in store.list_tasks(poisoned))
    _poison(db, "active_tasks", "task_id", victim)
    leader = takeover(store, hosts, epoch=2)

    with api(tmp_path) as (http, _):
        assert value(scrape(http), GAUGE, kind="task") == 1  # type: ignore[arg-type]
        readable = http.delete(f"/api/v3/quarantine/task/{healthy}")
        assert readable.status_code == 409, readable.text
        assert "reads fine" in readable.json()["message"]
        assert http.delete("/api/v3/quarantine/task/no-such-task").status_code == 404
        assert http.delete(f"/api/v3/quarantine/widget/{victim}").status_code == 400
        answer = http.delete(f"/api/v3/quarantine/task/{victim}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["setAside"] == [victim]
        assert "migrationPolicy" in answer.json()["value"]  # what was stored, for the record
        assert http.get("/api/v3/quarantine").json()["items"] == []
        assert value(scrape(http), GAUGE, kind="task") == 0  # type: ignore[arg-type]

    archived = sqlite3.connect(db).execute(
        "SELECT value FROM archived_tasks WHERE task_id=?", (victim,)
    )
    assert "migrationPolicy" in next(archived)[0]  # nothing lost: kept as it was stored
    for _ in range(3):
        leader.iterate()
    tasks = store.list_tasks(poisoned)
    assert len(tasks) == 2 and healthy in {t.id for t in tasks}  # the instance replaced


def test_setting_an_unreadable_job_aside_takes_its_tasks_and_needs_an_admin(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps(
            {"tok-u": {"callerId": "user"}, "tok-a": {"callerId": "ops", "roles": ["admin"]}}
        )
    )
    user, admin = {"Authorization": "Bearer tok-u"}, {"Authorization": "Bearer tok-a"}
    with api(tmp_path, auth_tokens_file=str(tokens)) as (http, _):
        bad = http.post("/api/v3/jobs", json=service(), headers=user).json()["id"]
        assert value(scrape(http), GAUGE, kind="job") == 0  # type: ignore[arg-type]
    _poison(tmp_path / "titus.db", "active_jobs", "job_id", bad)
    with api(tmp_path, auth_tokens_file=str(tokens)) as (http, store):
        assert http.get("/api/v3/jobs", headers=user).json()["items"] == []
        assert value(scrape(http), GAUGE, kind="job") == 1  # type: ignore[arg-type]
        refused = http.delete(f"/api/v3/quarantine/job/{bad}", headers=user)
        assert refused.status_code == 403 and "admins only" in refused.json()["message"]
        answer = http.delete(f"/api/v3/quarantine/job/{bad}", headers=admin)
        assert answer.status_code == 200, answer.text
        assert answer.json()["setAside"][0] == bad
        assert store.raw_record("job", bad) is None
        assert http.get("/health", headers=admin).json()["quarantined"] == 0
        assert value(scrape(http), GAUGE, kind="job") == 0  # type: ignore[arg-type]


def test_a_read_that_raced_with_the_set_aside_does_not_bring_the_record_back(
    tmp_path: Path,
) -> None:
    """A listing that read the unreadable job while an operator set it aside reports it
    after it was released: it must not come back in the count (a phantom record in
    `/health` and the gauge, with nothing an operator could remove)."""
    with api(tmp_path) as (http, _):
        bad = http.post("/api/v3/jobs", json=service()).json()["id"]
    _poison(tmp_path / "titus.db", "active_jobs", "job_id", bad)
    with api(tmp_path) as (http, _):
        assert http.get("/health").json()["quarantined"] == 1
        assert http.delete(f"/api/v3/quarantine/job/{bad}").status_code == 200
        assert http.get("/health").json()["quarantined"] == 0
        # the late report of the read that met the record before it moved
        QUARANTINE.add("job", bad, "1 validation error")
        assert http.get("/health").json()["quarantined"] == 0
        assert value(scrape(http), GAUGE, kind="job") == 0  # type: ignore[arg-type]
