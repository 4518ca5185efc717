"""Fields of the job descriptor that change what happens to a job, as a user sees them:
`titus local` as a process with real containers, driven through the REST API. Enable and
disable, resource minimums (raised, and small ones admitted on one machine), GPU placement
with declared GPUs, a task's health in the observe stream, and a user's own kills going
through a disruption budget that holds the platform's migration back."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.test_container_health import checked_service
from tests.e2e.test_local_platform import batch
from tests.e2e.test_moves import service
from tests.support.platform import Platform, running_platform
from titus.master.migration import MIGRATION_MESSAGE
from titus.model.validation import RAISED_ATTRIBUTE

pytestmark = pytest.mark.docker

#: How long a check that something does *not* happen watches: several rounds of the
#: leader's loop (0.5 s, and woken by every write).
SETTLE_SEC = 3.0


@pytest.fixture
def platform(module_platform: Platform) -> Platform:
    """One `titus local` for the module, emptied after each test."""
    return module_platform


def running_n(platform: Platform, job_id: str, n: int) -> list[dict[str, Any]]:
    return platform.wait_for(  # type: ignore[no-any-return]
        f"{n} running tasks of {job_id}",
        lambda: len(r := platform.running(job_id)) == n and r,
        timeout=90,
    )


def task(platform: Platform, task_id: str) -> dict[str, Any]:
    r = platform.http.get(f"/api/v3/tasks/{task_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def finished(platform: Platform, task_id: str) -> dict[str, Any]:
    return platform.wait_for(  # type: ignore[no-any-return]
        f"task {task_id} finished",
        lambda: (t := task(platform, task_id))["status"]["state"] == "Finished" and t,
        timeout=60,
    )


def active(platform: Platform, job_id: str) -> list[dict[str, Any]]:
    return [t for t in platform.tasks(job_id) if t["status"]["state"] != "Finished"]


# ---- enable / disable --------------------------------------------------------------------


def test_a_disabled_job_keeps_its_tasks_replaces_no_kill_and_resizes_only_once_enabled(
    platform: Platform,
) -> None:
    job_id = platform.submit(service("toggled", 2))
    victim, kept = running_n(platform, job_id, 2)
    assert platform.http.post(f"/api/v3/jobs/{job_id}/disable").status_code == 200

    # the user kills a task (no shrink): it goes, and nothing takes its place
    assert platform.http.delete(f"/api/v3/tasks/{victim['id']}").status_code == 200
    assert finished(platform, victim["id"])["status"]["reasonCode"] == "killed"
    # a resize is taken but not carried out
    resize = {"min": 0, "desired": 3, "max": 4}
    r = platform.http.put(f"/api/v3/jobs/{job_id}/instances", json=resize)
    assert r.status_code == 200, r.text
    assert platform.job(job_id)["jobDescriptor"]["service"]["capacity"]["desired"] == 3
    time.sleep(SETTLE_SEC)
    assert [t["id"] for t in active(platform, job_id)] == [kept["id"]]
    assert task(platform, kept["id"])["status"]["state"] == "Started"  # kept running

    # enabled again: back to the desired size, the kept task untouched
    assert platform.http.post(f"/api/v3/jobs/{job_id}/enable").status_code == 200
    three = running_n(platform, job_id, 3)
    assert kept["id"] in {t["id"] for t in three}
    assert victim["id"] not in {t["id"] for t in three}


# ---- resource minimums -------------------------------------------------------------------

#: What a container's memory limit reads inside it (cgroup v2, else v1).
SHOW_MEMORY = (
    "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
)


def small_batch(memory_mb: int, disk_mb: int) -> dict[str, Any]:
    d = batch(SHOW_MEMORY)
    d["container"]["resources"].update(memoryMB=memory_mb, diskMB=disk_mb)
    return d


def memory_seen(platform: Platform, job_id: str) -> int:
    job = platform.wait_job_finished(job_id)
    assert job["status"]["reasonCode"] == "normal", job["status"]
    [t] = platform.tasks(job_id)
    assert t["status"]["reasonCode"] == "normal", t["status"]
    out = platform.http.get(f"/api/v3/tasks/{t['id']}/logs")
    assert out.status_code == 200, out.text
    return int(out.text.split()[0])


def test_a_job_below_the_minimums_is_raised_to_them_and_says_so(tmp_path: Path) -> None:
    cluster_minimums = {"TITUS_MEMORY_MB_MIN": "512", "TITUS_DISK_MB_MIN": "10000"}
    with running_platform(tmp_path, cluster_minimums) as p:
        job_id = p.submit(small_batch(128, 1000))  # accepted, not refused
        descriptor = p.job(job_id)["jobDescriptor"]
        resources = descriptor["container"]["resources"]
        assert (resources["memoryMB"], resources["diskMB"]) == (512, 10_000)
        note = descriptor["attributes"][RAISED_ATTRIBUTE]
        assert "memoryMB 128 -> 512 (the minimum)" in note
        assert "diskMB 1000 -> 10000 (the minimum)" in note
        assert memory_seen(p, job_id) == 512 * 2**20  # the container got the raised value


def test_titus_local_runs_a_small_first_job_with_what_it_asked(platform: Platform) -> None:
    job_id = platform.submit(small_batch(64, 100))
    descriptor = platform.job(job_id)["jobDescriptor"]
    resources = descriptor["container"]["resources"]
    assert (resources["memoryMB"], resources["diskMB"]) == (64, 100)
    assert RAISED_ATTRIBUTE not in descriptor["attributes"]
    assert memory_seen(platform, job_id) == 64 * 2**20


# ---- GPUs --------------------------------------------------------------------------------


def gpu_batch(gpus: int, size: int = 1) -> dict[str, Any]:
    d = batch("echo has a gpu", size=size)
    d["container"]["resources"]["gpu"] = gpus
    return d


def launched_and_refused_by_the_engine(p: Platform, job_id: str) -> dict[str, Any]:
    """The first task of a GPU job that was placed on the host and ended there."""
    ended = p.wait_for(
        f"a task of {job_id} placed and ended",
        lambda: [t for t in p.tasks(job_id) if t["status"]["state"] == "Finished"],
    )
    t: dict[str, Any] = ended[0]
    assert t["taskContext"]["agent.id"] == p.agent_id
    assert "Launched" in [s["state"] for s in t["statusHistory"]]
    # the engine was asked for the devices and has no driver to give them: a system error
    assert t["status"]["reasonCode"] == "transientSystemError", t["status"]
    assert "could not select device driver" in t["status"]["reasonMessage"], t["status"]
    return t


def test_gpu_tasks_go_to_a_host_with_the_gpus_and_wait_naming_the_rule(tmp_path: Path) -> None:
    """This machine has no GPU and its engine no NVIDIA runtime: the host declares its GPUs
    (TITUS_AGENT_GPUS). Shown here: a job asking more GPUs than any host has is refused,
    a GPU task is placed on the host that has them and the engine is asked for the devices
    (it refuses them for want of a driver: the task ends there, a system error retried);
    from then on the host offers no GPUs, so GPU tasks wait, why-pending naming the gpu
    rule, instead of failing there again and again, and new GPU jobs are refused; the
    agent, restarted, offers its GPUs again. A container running with its GPUs is not
    shown here."""
    with running_platform(tmp_path, {"TITUS_AGENT_GPUS": json.dumps(["0", "1"])}) as p:
        [agent] = p.http.get("/api/v3/agents").json()["items"]
        assert agent["resources"]["gpu"] == 2

        r = p.http.post("/api/v3/jobs", json=gpu_batch(3))
        assert r.status_code == 400
        [error] = r.json()["errors"]
        assert error == {
            "path": "container.resources.gpu",
            "message": "3 is more than the largest host offers (2)",
        }

        one = p.submit(gpu_batch(1))
        launched_and_refused_by_the_engine(p, one)
        p.wait_for(
            "the host to offer no GPUs",
            lambda: p.http.get("/api/v3/agents").json()["items"][0]["resources"]["gpu"] == 0,
        )
        why = p.wait_for("the 1-GPU job's next task to wait", lambda: why_waiting(p, one))
        assert why["message"] == "no host fits: 1 hosts, resources refused 1 (gpu)", why
        assert why["refusedBy"] == {"resources": 1}
        # with no host offering GPUs, a GPU job is refused at the door, saying so (once
        # the API's look at the hosts, kept 2 s, is renewed)
        time.sleep(2.5)
        r = p.http.post("/api/v3/jobs", json=gpu_batch(1))
        assert r.status_code == 400
        assert r.json()["errors"][0]["message"] == "1 is more than the largest host offers (0)"
        assert p.http.delete(f"/api/v3/jobs/{one}").status_code == 200

        # an agent restarted (its operator fixed the engine) offers what it declares again
        p.stop()
        p.env["TITUS_AGENT_GPUS"] = json.dumps(["0"])
        p.start()
        [agent] = p.http.get("/api/v3/agents").json()["items"]
        assert agent["resources"]["gpu"] == 1


def why_waiting(p: Platform, job_id: str) -> dict[str, Any] | None:
    """The scheduler's why-pending of an Accepted task of the job, once it was looked at."""
    for t in p.tasks(job_id):
        if t["status"]["state"] == "Accepted":
            r = p.http.get(f"/api/v3/scheduler/results/{t['id']}").json()
            if r["hostsConsidered"] > 0:
                return r  # type: ignore[no-any-return]
    return None


# ---- a task's health in the observe stream -----------------------------------------------


def test_the_observe_stream_carries_a_tasks_health_as_it_changes(platform: Platform) -> None:
    job_id = platform.submit(checked_service(1))
    engine = docker.DockerClient(base_url=platform.env["DOCKER_HOST"])
    seen: list[str] = []
    sickened = False
    with platform.http.stream(
        "GET", "/api/v3/jobs/observe", params={"jobIds": job_id}, timeout=60
    ) as stream:
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            if event != "task" or not line.startswith("data: "):
                continue
            doc = json.loads(line.removeprefix("data: "))["task"]
            health = doc["taskContext"].get("task.health")
            if health and (not seen or seen[-1] != health):
                seen.append(health)
            if health == "healthy" and not sickened:
                # the user breaks the check in the running container
                container = engine.containers.get(doc["taskContext"]["task.containerId"])
                container.exec_run(["touch", "/tmp/sick"])
                sickened = True
            if health == "unhealthy":
                break
    assert seen[-2:] == ["healthy", "unhealthy"], seen


# ---- a user's own kill is never held back ------------------------------------------------


def test_a_users_kills_go_at_once_where_the_budget_holds_the_platforms_migration(
    platform: Platform,
) -> None:
    held = service("budgeted", 2)
    held["disruptionBudget"] = {
        "unhealthyTasksLimit": {"limitOfUnhealthyContainers": 0},
        "rateUnlimited": {},
    }
    held_id = platform.submit(held)
    free_id = platform.submit(service("unbudgeted", 1))
    first, second = running_n(platform, held_id, 2)
    [other] = running_n(platform, free_id, 1)
    quota = platform.http.get(f"/api/v3/eviction/quotas/jobs/{held_id}").json()
    assert quota["quota"] == 0 and "at most 0 task(s) may be unavailable" in quota["message"]

    # the platform migrates off the phased-out host: the unbudgeted job's task goes, the
    # budgeted job's stay
    r = platform.http.put("/api/v3/instanceGroups/default/lifecycle", json={"state": "phasedOut"})
    assert r.status_code == 200, r.text
    moved = finished(platform, other["id"])
    assert moved["status"]["reasonMessage"] == f"{MIGRATION_MESSAGE} default"
    time.sleep(SETTLE_SEC)
    assert {t["id"] for t in platform.running(held_id)} == {first["id"], second["id"]}

    # the user's kill goes at once; its replacement cannot be placed (the only host is
    # phased out), so the job is now below what its budget allows
    alice = {"X-Titus-CallerId": "alice"}
    assert platform.http.delete(f"/api/v3/tasks/{first['id']}", headers=alice).status_code == 200
    killed = finished(platform, first["id"])
    assert killed["status"]["reasonCode"] == "killed"
    said = [(s["state"], s["reasonMessage"]) for s in killed["statusHistory"]]
    assert ("KillInitiated", "killed by alice") in said, said
    platform.wait_for("the replacement waiting", lambda: len(active(platform, held_id)) == 2)
    # and so does a kill that shrinks the job
    assert platform.http.delete(f"/api/v3/tasks/{second['id']}?shrink=true").status_code == 200
    assert finished(platform, second["id"])["status"]["reasonCode"] == "killed"
    assert platform.job(held_id)["jobDescriptor"]["service"]["capacity"]["desired"] == 1
    # the host back in service for the module's next test
    r = platform.http.put("/api/v3/instanceGroups/default/lifecycle", json={"state": "active"})
    assert r.status_code == 200, r.text
