"""The walking skeleton end to end: `titus local` as a process, driven over HTTP and CLI.

Every test here runs real containers on the platform's Docker engine.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.platform import Platform

pytestmark = pytest.mark.docker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def platform(module_platform: Platform) -> Platform:
    """One `titus local` for the module, emptied after each test."""
    return module_platform


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())  # type: ignore[no-any-return]


def batch(command: str, **batch_spec: Any) -> dict[str, Any]:
    d = example("batch-hello.json")
    d["container"]["entryPoint"] = ["sh", "-c", command]
    d["container"].pop("command", None)
    d["batch"] = {"size": 1, **batch_spec}
    return d


def states(task: dict[str, Any]) -> list[str]:
    return [s["state"] for s in task["statusHistory"]] + [task["status"]["state"]]


def test_batch_job_runs_to_finished_with_its_whole_history_and_logs(platform: Platform) -> None:
    job_id = platform.submit(example("batch-hello.json"), **{"X-Titus-CallerId": "alice"})
    job = platform.wait_job_finished(job_id)
    assert job["status"]["reasonCode"] == "normal"
    assert job["jobDescriptor"]["attributes"]["titus.createdBy"] == "alice"
    [task] = platform.tasks(job_id)
    assert states(task) == ["Accepted", "Launched", "StartInitiated", "Started", "Finished"]
    assert task["status"]["reasonCode"] == "normal"
    assert "code 0" in task["status"]["reasonMessage"]
    out = platform.http.get(f"/api/v3/tasks/{task['id']}/logs")
    assert out.status_code == 200 and "hello from titus" in out.text
    err = platform.http.get(f"/api/v3/tasks/{task['id']}/logs", params={"stream": "stderr"})
    assert "to stderr" in err.text
    # the finished job and its task are still readable one by one
    assert platform.http.get(f"/api/v3/tasks/{task['id']}").json()["id"] == task["id"]


def test_following_logs_streams_while_the_task_runs(platform: Platform) -> None:
    job_id = platform.submit(batch("for i in 1 2 3; do echo line-$i; sleep 1; done"))
    task = platform.wait_for(
        "the task to start", lambda: platform.running(job_id) and platform.running(job_id)[0]
    )
    seen: list[str] = []
    with platform.http.stream(
        "GET", f"/api/v3/tasks/{task['id']}/logs", params={"follow": "true"}, timeout=60
    ) as r:
        for line in r.iter_lines():
            seen.append(line)
            if line == "line-1":
                # the first line arrives while the job is still running
                assert platform.job(job_id)["status"]["state"] == "Accepted"
    assert [s for s in seen if s.startswith("line-")] == ["line-1", "line-2", "line-3"]
    platform.wait_job_finished(job_id)


def test_failing_batch_task_is_retried_then_the_job_finishes(platform: Platform) -> None:
    job_id = platform.submit(example("batch-retry.json"))
    job = platform.wait_job_finished(job_id)
    tasks = platform.tasks(job_id)
    assert len(tasks) == 3
    for t in tasks:
        assert t["status"]["state"] == "Finished"
        assert t["status"]["reasonCode"] == "failed"
        assert "code 3" in t["status"]["reasonMessage"]
    assert sorted(t["taskContext"]["task.resubmitNumber"] for t in tasks) == ["0", "1", "2"]
    assert job["status"]["state"] == "Finished"


def test_container_over_its_memory_is_failed_for_memory(platform: Platform) -> None:
    job_id = platform.submit(batch("dd if=/dev/zero of=/dev/null bs=900M count=1"))
    platform.wait_job_finished(job_id)
    [task] = platform.tasks(job_id)
    assert task["status"]["reasonCode"] == "failed"
    assert "memory" in task["status"]["reasonMessage"]


def test_service_job_keeps_desired_replaces_kills_shrinks_resizes_and_ends(
    platform: Platform,
) -> None:
    job_id = platform.submit(example("service-web.json"))
    two = platform.wait_for(
        "2 running", lambda: len(platform.running(job_id)) == 2 and platform.running(job_id)
    )

    # kill without shrink: a replacement comes
    victim = two[0]["id"]
    assert platform.http.delete(f"/api/v3/tasks/{victim}").status_code == 200
    platform.wait_for(
        "a replacement",
        lambda: len(r := platform.running(job_id)) == 2 and victim not in {t["id"] for t in r},
    )
    killed = platform.http.get(f"/api/v3/tasks/{victim}").json()
    assert killed["status"]["state"] == "Finished" and killed["status"]["reasonCode"] == "killed"

    # kill with shrink: no replacement, desired lowered
    victim = platform.running(job_id)[0]["id"]
    assert platform.http.delete(f"/api/v3/tasks/{victim}?shrink=true").status_code == 200
    platform.wait_for("1 running", lambda: len(platform.running(job_id)) == 1)
    assert platform.job(job_id)["jobDescriptor"]["service"]["capacity"]["desired"] == 1

    # resize up to 3
    r = platform.http.put(
        f"/api/v3/jobs/{job_id}/instances", json={"min": 1, "desired": 3, "max": 4}
    )
    assert r.status_code == 200, r.text
    platform.wait_for("3 running", lambda: len(platform.running(job_id)) == 3)

    # kill the job: all tasks killed, job Finished
    assert platform.http.delete(f"/api/v3/jobs/{job_id}").status_code == 200
    platform.wait_job_finished(job_id)
    assert all(t["status"]["state"] == "Finished" for t in platform.tasks(job_id))


def test_bad_descriptor_is_refused_with_every_field_and_nothing_stored(platform: Platform) -> None:
    bad = copy.deepcopy(example("batch-hello.json"))
    bad["owner"]["teamEmail"] = "nobody"
    bad["container"]["resources"]["memoryMb"] = 5
    r = platform.http.post("/api/v3/jobs", json=bad)
    assert r.status_code == 400
    paths = {e["path"] for e in r.json()["errors"]}
    assert {"owner.teamEmail", "container.resources.memoryMb"} <= paths
    assert platform.http.get("/api/v3/jobs").json()["pagination"]["totalItems"] == 0
    assert platform.http.get("/api/v3/tasks").json()["pagination"]["totalItems"] == 0


def test_jobs_survive_a_restart_of_the_platform(platform: Platform) -> None:
    job_id = platform.submit(example("service-web.json"))
    platform.wait_for("2 running", lambda: len(platform.running(job_id)) == 2)
    before = {t["id"] for t in platform.running(job_id)}
    platform.stop()
    platform.start()
    assert platform.job(job_id)["status"]["state"] == "Accepted"
    # the running containers are adopted, not started again
    after = platform.wait_for("2 running", lambda: {t["id"] for t in platform.running(job_id)})
    assert after == before


def test_cli_drives_the_same_flows(platform: Platform, tmp_path: Path) -> None:
    job_id = platform.cli("job", "submit", str(EXAMPLES / "service-web.json")).stdout.strip()
    assert job_id in platform.cli("job", "list").stdout
    listed = json.loads(platform.cli("job", "list", "--json").stdout)
    assert [j["id"] for j in listed] == [job_id]
    assert json.loads(platform.cli("job", "get", job_id, "--json").stdout)["id"] == job_id
    platform.wait_for("2 running", lambda: len(platform.running(job_id)) == 2)

    tasks = json.loads(platform.cli("task", "list", "--job", job_id, "--json").stdout)
    assert len(tasks) == 2
    table = platform.cli("task", "list", "--job", job_id).stdout
    assert "STATE" in table and "Started" in table

    logs = platform.wait_for(
        "output",
        lambda: "serving" in (out := platform.cli("task", "logs", tasks[0]["id"]).stdout) and out,
    )
    assert "serving" in logs

    platform.cli("job", "resize", job_id, "--desired", "3")
    platform.wait_for("3 running", lambda: len(platform.running(job_id)) == 3)
    platform.cli("task", "kill", tasks[0]["id"], "--shrink")
    platform.wait_for("2 running", lambda: len(platform.running(job_id)) == 2)
    assert platform.job(job_id)["jobDescriptor"]["service"]["capacity"]["desired"] == 2

    platform.cli("job", "kill", job_id)
    platform.wait_job_finished(job_id)

    missing = platform.cli("job", "get", "no-such-job", check=False)
    assert missing.returncode == 1 and "404" in missing.stderr

    # follow mode prints while the task runs and ends when it ends
    job_id = platform.cli("job", "submit", str(EXAMPLES / "batch-hello.json")).stdout.strip()
    task = platform.wait_for("a task", lambda: platform.tasks(job_id) and platform.tasks(job_id)[0])
    platform.wait_for(
        "placed",
        lambda: (
            platform.http.get(f"/api/v3/tasks/{task['id']}").json()["status"]["state"]
            in ("Started", "Finished")
        ),
    )
    followed = platform.cli("task", "logs", task["id"], "-f").stdout
    assert "hello from titus" in followed
