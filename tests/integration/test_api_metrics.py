"""The API's own /metrics, scraped over HTTP: requests by route template and status, their
latency, rate-limit refusals by bucket and observe watchers move when those things happen,
and a flood of distinct paths adds no series."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.integration.test_api_app import api, service
from tests.integration.test_api_observe import served  # noqa: F401 - the fixture
from tests.support.metrics import Samples, samples_of, value
from tests.support.poll import wait_until
from titus.settings import RateBucket


def scrape(http: httpx.Client) -> Samples:
    """Every sample of the API's /metrics."""
    return samples_of(http.get("/metrics"))


def test_requests_are_counted_by_route_template_and_status(tmp_path: Path) -> None:
    with api(tmp_path) as (http, _):
        before = scrape(http)  # type: ignore[arg-type]
        job = http.post("/api/v3/jobs", json=service()).json()["id"]
        http.get(f"/api/v3/jobs/{job}")
        http.get("/api/v3/jobs/no-such-job")
        for n in range(20):
            http.get(f"/nothing/here/{n}")
        after = scrape(http)  # type: ignore[arg-type]
    route = "/api/v3/jobs/{job_id}"
    moved = {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if key[0] == "titus_api_requests_total" and after[key] != before.get(key, 0.0)
    }
    assert value(moved, "titus_api_requests_total", method="GET", route=route, status="200") == 1
    assert value(moved, "titus_api_requests_total", method="GET", route=route, status="404") == 1
    assert (
        value(moved, "titus_api_requests_total", method="POST", route="/api/v3/jobs", status="202")
        == 1
    )
    # twenty different unknown paths are one series, not twenty
    unmatched = [k for k in moved if dict(k[1]).get("route") == "unmatched"]
    assert len(unmatched) == 1 and moved[unmatched[0]] == 20
    assert not any("no-such-job" in json.dumps(dict(k[1])) for k in after)
    count = "titus_api_request_duration_seconds_count"
    assert (
        value(after, count, method="GET", route=route)
        - value(before, count, method="GET", route=route)
        == 2
    )


def test_rate_limit_refusals_are_counted_by_bucket(tmp_path: Path) -> None:
    bucket = RateBucket(
        name="create", endpoint="POST /api/v3/jobs", capacity=1, refill_per_sec=0.001
    )
    with api(tmp_path, rate_limit_buckets=[bucket]) as (http, _):
        before = scrape(http)  # type: ignore[arg-type]
        hog = {"X-Titus-CallerId": "hog"}
        codes = [
            http.post("/api/v3/jobs", json=service(), headers=hog).status_code for _ in range(3)
        ]
        after = scrape(http)  # type: ignore[arg-type]
    assert codes == [202, 429, 429]
    name = "titus_api_rate_limited_total"
    assert value(after, name, bucket="create") - value(before, name, bucket="create") == 2
    refused = "titus_api_requests_total"
    labels = {"method": "POST", "route": "/api/v3/jobs", "status": "429"}
    assert value(after, refused, **labels) - value(before, refused, **labels) == 2


def test_observe_watchers_are_counted_while_they_follow(served: tuple[str, object]) -> None:  # noqa: F811
    http = httpx.Client(base_url=served[0], timeout=10)
    scraper = httpx.Client(base_url=served[0], timeout=10)  # its own connections

    def watchers() -> float:
        return value(scrape(scraper), "titus_api_observe_watchers")

    assert watchers() == 0
    with (
        http.stream("GET", "/api/v3/jobs/observe") as first,
        http.stream("GET", "/api/v3/jobs/observe") as second,
    ):
        # each stream's line iterator is kept: a dropped one closes its stream
        lines = [first.iter_lines(), second.iter_lines()]
        assert [next(it) for it in lines] == ["id: 0", "id: 0"]
        assert watchers() == 2
    wait_until("closed watchers are no longer counted", lambda: watchers() == 0, 10)
