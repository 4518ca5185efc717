"""Hostile input at the API's boundary, against the API on a real SQLite store: each attack
gets a 400 that names the problem, nothing of it is stored, and the API keeps serving
everyone else (listings and creates still answer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_api_app import api, service
from titus.api.body import MAX_JSON_DEPTH

JSON = {"content-type": "application/json"}


def _nested(depth: int) -> object:
    value: object = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _still_serving(http: object) -> None:
    r = http.get("/api/v3/jobs")  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    assert http.post("/api/v3/jobs", json=service()).status_code == 202  # type: ignore[attr-defined]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 230, 100_000])
def test_a_body_nested_too_deeply_is_refused_before_parsing(tmp_path: Path, depth: int) -> None:
    body = service()
    body["attributes"] = {"x": "y"}
    raw = json.dumps(body)[:-1] + ', "poison": ' + "[" * depth + "]" * depth + "}"
    with api(tmp_path) as (http, store):
        r = http.post("/api/v3/jobs", content=raw.encode(), headers=JSON)
        assert r.status_code == 400, r.text
        assert f"nests deeper than {MAX_JSON_DEPTH} levels" in r.json()["message"]
        assert store.list_active_jobs() == []
        _still_serving(http)


def test_unbalanced_endless_brackets_are_malformed_not_a_crash(tmp_path: Path) -> None:
    with api(tmp_path, max_body_bytes=1 << 20) as (http, store):
        r = http.post("/api/v3/jobs", content=b"[" * 500_000, headers=JSON)
        assert r.status_code == 400, r.text
        assert store.list_active_jobs() == []
        _still_serving(http)


def test_a_poison_policy_is_refused_and_cannot_be_put_on_someone_elses_job(
    tmp_path: Path,
) -> None:
    """The poison job of old: a list nested ~230 deep in a field-less policy."""
    deep = {"x": _nested(20)}
    with api(tmp_path) as (http, store):
        body = service()
        body["service"]["migrationPolicy"] = {"systemDefault": deep}
        r = http.post("/api/v3/jobs", json=body)
        assert r.status_code == 400
        paths = [e["path"] for e in r.json()["errors"]]
        assert "service.migrationPolicy.systemDefault.x" in paths
        job = http.post("/api/v3/jobs", json=service()).json()["id"]
        budget = {"relocationLimit": {"limit": 1}, "rateUnlimited": deep}
        r = http.put(f"/api/v3/jobs/{job}/disruptionBudget", json=budget)
        assert r.status_code == 400
        assert "rateUnlimited.x" in [e["path"] for e in r.json()["errors"]]
        assert http.get(f"/api/v3/jobs/{job}").status_code == 200
        _still_serving(http)


@pytest.mark.parametrize("value", ["²", "١٠", "1" * 5000, "-1", "1e3", ""])
def test_numbers_in_the_query_are_ascii_digits_or_a_400(tmp_path: Path, value: str) -> None:
    with api(tmp_path) as (http, _):
        for name in ("pageSize", "page"):
            r = http.get("/api/v3/jobs", params={name: value})
            assert r.status_code == 400, (name, value, r.text)
            assert r.json()["errors"][0]["path"] == name
        _still_serving(http)


def test_a_last_event_id_in_other_digits_gets_a_fresh_snapshot(tmp_path: Path) -> None:
    with api(tmp_path) as (http, _):
        job = http.post("/api/v3/jobs", json=service()).json()["id"]
        with http.stream(
            "GET", "/api/v3/jobs/observe", headers={"last-event-id": "²".encode() * 10}
        ) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            snapshot = [next(lines) for _ in range(3)]
        assert any(job in line for line in snapshot), snapshot
