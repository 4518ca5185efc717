"""A SQLite store on a disk that fills up: writes are refused as the store being unavailable
(503 at the API, ridden out by the leader), nothing acknowledged is lost, and writes go on
once there is room again. The disk is a small tmpfs of the test's own (as root)."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_api_app import api, service
from tests.support.poll import wait_until
from tests.unit.test_leader import Hosts, host, job
from titus.coord.local import LocalCoordinator
from titus.master.leader import Master, MasterConfig
from titus.store.base import StoreUnavailable
from titus.store.metrics import STORE_ERRORS
from titus.store.sqlite import SqliteJobStore


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs and must run as root (CI does)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte of the disk with one file; removing it makes room again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_refuses_writes_as_unavailable_and_keeps_what_was_written(
    small_disk: Path,
) -> None:
    store = SqliteJobStore(small_disk / "titus.db", synchronous="FULL")
    kept = [job(store) for _ in range(5)]
    filler = _fill(small_disk)
    errors = STORE_ERRORS.labels("sqlite", "write")
    before = errors._value.get()
    refused = 0
    for _ in range(200):  # bounded: the first refusal comes within a page or two
        try:
            kept.append(job(store))
        except StoreUnavailable as exc:
            assert "full" in str(exc)
            refused += 1
            break
    assert refused == 1
    assert errors._value.get() == before + 1  # what operators alert on
    assert {j.id for j in store.list_active_jobs()} == set(kept)
    filler.unlink()
    again = job(store)
    assert store.get_job(again) is not None
    store.close()


def test_the_api_answers_503_with_retry_after_when_the_disk_is_full(small_disk: Path) -> None:
    with api(small_disk) as (http, store):
        created = http.post("/api/v3/jobs", json=service()).json()["id"]
        filler = _fill(small_disk)
        answers = []
        for i in range(50):
            body = service(attributes={"pad": uuid.uuid4().hex * 60})
            key = {"Idempotency-Key": f"fill-{i}"}
            r = http.post("/api/v3/jobs", json=body, headers=key)
            answers.append(r.status_code)
            if r.status_code != 202:
                break
        assert answers[-1] == 503, answers
        assert r.headers.get("retry-after")
        assert http.get(f"/api/v3/jobs/{created}").status_code == 200
        filler.unlink()
        assert http.post("/api/v3/jobs", json=service()).status_code == 202
        # the refused create wrote nothing: its retry with the same key is a new attempt
        retried = http.post("/api/v3/jobs", json=body, headers=key)
        assert retried.status_code == 202, retried.text


def test_the_leader_rides_out_a_full_disk_without_stepping_down(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its loop meets the full store, waits with backoff in the same term (no resignation,
    no reload), and places the job's task once there is room."""
    caplog.set_level(logging.WARNING, logger="titus.master")
    store = SqliteJobStore(small_disk / "titus.db", synchronous="FULL")
    driver = Hosts(host("h1"))
    master = Master(store, LocalCoordinator(), driver, config=MasterConfig(loop_interval=2.0))
    stop = threading.Event()
    runner = threading.Thread(target=master.run, args=(stop,), daemon=True)
    runner.start()
    try:
        term = wait_until("the master ready", lambda: master.term.ready_at and master.term, 20)
        job(store)  # written while there is room; the leader acts on it at its next pass
        filler = _fill(small_disk)
        wait_until(
            "the leader to meet the full store",
            lambda: "store unavailable" in caplog.text,
            20,
        )
        assert not driver.launched
        filler.unlink()
        wait_until("the task placed", lambda: driver.launched, 30)
        assert master.term is term  # the same term: it never stepped down
        assert "stepping down" not in caplog.text
    finally:
        stop.set()
        runner.join(10)
        store.close()
