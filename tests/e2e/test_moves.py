"""Task moves end to end: `titus local` as a process, a running task moved between two
compatible service jobs over the REST API, its container untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.platform import Platform

pytestmark = pytest.mark.docker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def service(name: str, desired: int) -> dict[str, Any]:
    d: dict[str, Any] = json.loads((EXAMPLES / "service-web.json").read_text())
    d.pop("jobGroupInfo", None)
    d["applicationName"] = name
    d["service"]["capacity"] = {"min": 0, "desired": desired, "max": desired + 2}
    return d


def capacity(platform: Platform, job_id: str) -> dict[str, int]:
    return platform.job(job_id)["jobDescriptor"]["service"]["capacity"]  # type: ignore[no-any-return]


def test_a_running_task_moves_to_another_job_without_a_restart(platform: Platform) -> None:
    source = platform.submit(service("movefrom", 2))
    target = platform.submit(service("moveto", 1))
    platform.wait_for("source tasks running", lambda: len(platform.running(source)) == 2)
    platform.wait_for("target task running", lambda: len(platform.running(target)) == 1)
    task = platform.running(source)[0]
    engine = docker.DockerClient(base_url=platform.env["DOCKER_HOST"])
    container = engine.containers.get(task["taskContext"]["task.containerId"])
    started_at = container.attrs["State"]["StartedAt"]

    r = platform.http.post(
        "/api/v3/tasks/move",
        json={"sourceJobId": source, "targetJobId": target, "taskId": task["id"]},
    )
    assert r.status_code == 200, r.text

    moved = platform.wait_for(
        "the task to belong to the target job",
        lambda: (
            (t := platform.http.get(f"/api/v3/tasks/{task['id']}").json())["jobId"] == target and t
        ),
    )
    assert moved["status"]["state"] == "Started"
    assert moved["taskContext"]["task.movedFromJob"] == source
    assert moved["taskContext"]["agent.id"] == task["taskContext"]["agent.id"]
    assert "moved from job" in moved["status"]["reasonMessage"]
    assert capacity(platform, source)["desired"] == 1
    assert capacity(platform, target)["desired"] == 2
    # the jobs settle at their new sizes: nothing killed, nothing replaced
    platform.wait_for(
        "the jobs to show their new members",
        lambda: (
            {t["id"] for t in platform.running(target)} >= {task["id"]}
            and task["id"] not in {t["id"] for t in platform.tasks(source)}
        ),
    )
    assert len(platform.running(target)) == 2 and len(platform.running(source)) == 1
    indexes = sorted(int(t["taskContext"]["task.index"]) for t in platform.running(target))
    assert len(set(indexes)) == 2
    # the very same container, never restarted
    container.reload()
    assert container.status == "running"
    assert container.attrs["State"]["StartedAt"] == started_at
