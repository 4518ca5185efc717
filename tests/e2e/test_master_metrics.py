"""The master's own /metrics, scraped over HTTP from a `titus master` process of a real
cluster (ZooKeeper, the API, one agent running real containers): the series operators
alert on move when what they count happens: a task placed and launched, its start timed,
a task failing by its reason, a task no host fits waiting and then gone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_cluster import batch
from tests.support.cluster import Cluster, cleanup, make_cluster
from tests.support.metrics import Samples, samples_of, total, value
from tests.support.platform import free_port

pytestmark = [pytest.mark.docker, pytest.mark.zookeeper, pytest.mark.timeout(240)]


class Scraper:
    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}/metrics"

    def __call__(self) -> Samples:
        return samples_of(httpx.get(self.url, timeout=10))


@pytest.fixture
def one_master(tmp_path: Path) -> Iterator[tuple[Cluster, Scraper]]:
    """API, one master serving /metrics on a port of its own, one agent."""
    c = make_cluster(tmp_path)
    port = free_port()
    try:
        c.start_api()
        c.start_master("m1", metrics_port=port)
        c.wait_for("m1 to lead", lambda: c.leader() == "m1", timeout=60)
        c.start_agent(f"e2e-{uuid.uuid4().hex[:6]}-a0", "zone-a")
        c.wait_ready(agents=1)
        yield c, Scraper(port)
    finally:
        cleanup(c)


def test_launches_placements_starts_and_failures_move_on_the_masters_metrics(
    one_master: tuple[Cluster, Scraper],
) -> None:
    cluster, scrape = one_master
    before = cluster.wait_for(
        "the master to say it leads",
        lambda: (s := scrape()) and s.get(("titus_master_leader", frozenset())) == 1 and s,
    )
    assert value(before, "titus_master_failover_seconds") > 0

    ok = cluster.submit(batch("exit 0", "metricsok"))
    failed = cluster.submit(batch("exit 3", "metricsfail"))
    for job_id in (ok, failed):
        cluster.wait_for(
            f"job {job_id} to finish",
            lambda j=job_id: cluster.job(j)["status"]["state"] == "Finished",
            timeout=120,
        )

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # the reports are counted as the leader takes them; a scrape may come a loop early
    after = cluster.wait_for(
        "the failure to be counted",
        lambda: (
            (s := scrape())
            and value(s, "titus_task_failures_total", reason="failed")
            > value(before, "titus_task_failures_total", reason="failed")
            and s
        ),
    )
    assert moved("titus_master_launches_total") == 2
    assert moved("titus_scheduler_schedule_attempts_total", result="placed") == 2
    assert moved("titus_scheduler_task_placement_seconds_count") == 2
    assert moved("titus_task_submit_to_start_seconds_count") == 2
    assert moved("titus_task_failures_total", reason="failed") == 1
    assert moved("titus_task_failures_total", reason="normal") == 0
    assert moved("titus_master_iteration_duration_seconds_count") > 0


def test_a_task_no_host_fits_is_pending_and_unschedulable_until_killed(
    one_master: tuple[Cluster, Scraper],
) -> None:
    cluster, scrape = one_master
    stranded = batch("exit 0", "metricsstranded")
    stranded["container"]["hardConstraints"] = {"constraints": {"machineType": "no-such-type"}}
    job_id = cluster.submit(stranded)
    waiting = cluster.wait_for(
        "the task to be counted as waiting",
        lambda: (
            (s := scrape())
            and total(s, "titus_scheduler_pending_tasks") == 1
            and total(s, "titus_scheduler_unschedulable_tasks") == 1
            and s
        ),
    )
    assert value(waiting, "titus_scheduler_schedule_attempts_total", result="unschedulable") > 0
    assert cluster.http.delete(f"/api/v3/jobs/{job_id}").status_code < 300
    cluster.wait_for(
        "the queue to be empty again",
        lambda: (
            (s := scrape())
            and total(s, "titus_scheduler_pending_tasks") == 0
            and total(s, "titus_scheduler_unschedulable_tasks") == 0
        ),
    )
