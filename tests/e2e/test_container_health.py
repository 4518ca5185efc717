"""Container health checks end to end: `titus local` as a process, a service job whose
health check a user can break in one container; the user sees that task's health in the
API, and the platform replaces it while the others keep serving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.platform import Platform

pytestmark = pytest.mark.docker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHECK = "titusParameter.agent.healthcheck."


@pytest.fixture
def platform(module_platform: Platform) -> Platform:
    """One `titus local` for the module, emptied after each test."""
    return module_platform


def checked_service(desired: int) -> dict[str, Any]:
    d: dict[str, Any] = json.loads((EXAMPLES / "service-web.json").read_text())
    d.pop("jobGroupInfo", None)
    d["applicationName"] = "healthy"
    d["service"]["capacity"] = {"min": 0, "desired": desired, "max": desired}
    d["container"]["entryPoint"] = ["sh", "-c"]
    d["container"]["command"] = ["sleep 600"]
    d["container"]["attributes"] = {
        CHECK + "command": "test ! -f /tmp/sick",
        CHECK + "intervalSec": "1",
        CHECK + "retries": "2",
    }
    return d


def test_a_bad_health_check_is_refused_naming_the_attribute(platform: Platform) -> None:
    bad = checked_service(1)
    bad["container"]["attributes"][CHECK + "intervalSec"] = "soon"
    r = platform.http.post("/api/v3/jobs", json=bad)
    assert r.status_code == 400
    paths = [e["path"] for e in r.json()["errors"]]
    assert f"container.attributes.{CHECK}intervalSec" in paths


def test_an_unhealthy_task_shows_it_and_is_replaced(platform: Platform) -> None:
    job_id = platform.submit(checked_service(2))

    def healthy() -> list[dict[str, Any]]:
        running = platform.running(job_id)
        ok = [t for t in running if t["taskContext"].get("task.health") == "healthy"]
        return ok if len(ok) == 2 else []

    first, second = platform.wait_for("two healthy tasks", healthy, timeout=90)
    listing = platform.cli("task", "list", "--job", job_id).stdout
    assert listing.count("Started (healthy)") == 2, listing
    engine = docker.DockerClient(base_url=platform.env["DOCKER_HOST"])
    engine.containers.get(first["taskContext"]["task.containerId"]).exec_run(["touch", "/tmp/sick"])

    def finished() -> dict[str, Any] | None:
        task = platform.http.get(f"/api/v3/tasks/{first['id']}").json()
        return task if task["status"]["state"] == "Finished" else None

    ended = platform.wait_for("the sick task replaced", finished, timeout=90)
    assert ended["taskContext"]["task.health"] == "unhealthy"
    assert ended["status"]["reasonCode"] == "failed"
    assert "health check failed" in ended["status"]["reasonMessage"]
    history = [s["state"] for s in ended["statusHistory"]]
    assert "KillInitiated" in history

    replaced = platform.wait_for("two healthy tasks again", healthy, timeout=90)
    ids = {t["id"] for t in replaced}
    assert second["id"] in ids and first["id"] not in ids
    still = platform.http.get(f"/api/v3/tasks/{second['id']}").json()
    assert still["status"]["state"] == "Started"  # the healthy one was never touched
