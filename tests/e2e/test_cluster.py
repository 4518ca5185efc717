"""The platform as separate processes: API, two masters and agents in three zones, sharing
ZooKeeper and the store, running real containers. Failures are made the hard way (kill -9)."""

from __future__ import annotations

import copy
import json
import signal
import threading
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.cluster import Cluster

pytestmark = [pytest.mark.docker, pytest.mark.zookeeper, pytest.mark.timeout(240)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def batch(command: str, name: str) -> dict[str, Any]:
    d: dict[str, Any] = json.loads((EXAMPLES / "batch-hello.json").read_text())
    d["applicationName"] = name
    d["container"]["entryPoint"] = ["sh", "-c", command]
    d["container"].pop("command", None)
    d["container"]["resources"]["cpu"] = 0.25
    d["batch"] = {"size": 1, "retryPolicy": {"immediate": {"retries": 0}}}
    return d


def service(desired: int, **constraints: str) -> dict[str, Any]:
    d: dict[str, Any] = json.loads((EXAMPLES / "service-web.json").read_text())
    d.pop("jobGroupInfo", None)
    d["service"]["capacity"] = {"min": 0, "desired": desired, "max": desired + 2}
    d["container"]["hardConstraints"] = {"constraints": constraints}
    return d


def test_killing_the_leader_during_a_burst_loses_no_job_and_runs_no_task_twice(
    cluster: Cluster,
) -> None:
    jobs: list[str] = []
    errors: list[BaseException] = []

    def submit_burst(first: int, count: int) -> None:
        try:
            for i in range(first, first + count):
                jobs.append(cluster.submit(copy.deepcopy(batch("sleep 2", f"burst{i}"))))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    submit_burst(0, 8)
    # the second half is submitted while the leader dies and the other master takes over
    second = threading.Thread(target=submit_burst, args=(8, 8))
    second.start()
    cluster.procs["m1"].kill(signal.SIGKILL)
    second.join(120)
    assert not errors, errors
    assert len(jobs) == 16

    cluster.wait_for("m2 to lead", lambda: cluster.leader() == "m2", timeout=60)
    for job_id in jobs:
        job = cluster.wait_for(
            f"job {job_id} to finish",
            lambda j=job_id: (x := cluster.job(j))["status"]["state"] == "Finished" and x,
            timeout=150,
        )
        assert job["status"]["reasonCode"] == "normal", job["status"]
        every = cluster.all_tasks(job_id)
        # one task per job, ever: nothing launched twice, nothing lost and replaced
        assert len(every) == 1, [t["status"] for t in every]
        [task] = every
        assert task["status"]["state"] == "Finished"
        assert task["status"]["reasonCode"] == "normal"
        states = [s["state"] for s in task["statusHistory"]]
        assert states.count("Launched") == 1 and states.count("Started") == 1

    record = cluster.meta("leader.lastElection")
    assert record["masterId"] == "m2" and record["firstLaunchAt"] is not None


def test_killing_an_agent_loses_its_tasks_and_services_move_elsewhere(
    cluster: Cluster,
) -> None:
    # a task no host can take says why, through the API process, from the master's record
    stranded = cluster.submit(service(1, machineType="no-such-type"))
    [waiting] = cluster.wait_for("the stranded task", lambda: cluster.tasks(stranded))
    why = cluster.wait_for(
        "a placement summary",
        lambda: (
            (r := cluster.http.get(f"/api/v3/scheduler/results/{waiting['id']}")).status_code == 200
            and r.json().get("hostsConsidered") == 3  # once the master sees every agent
            and r.json()
        ),
    )
    assert why["refusedBy"] == {"machineType": 3} and why["hostsConsidered"] == 3
    assert cluster.tasks(stranded)[0]["status"]["reasonMessage"].startswith("pending: ")
    cluster.http.delete(f"/api/v3/jobs/{stranded}")

    job_id = cluster.submit(service(3, uniqueHost="true"))

    def running() -> list[dict[str, Any]]:
        return [t for t in cluster.tasks(job_id) if t["status"]["state"] == "Started"]

    first = cluster.wait_for("three tasks running", lambda: len(running()) == 3 and running())
    victim = first[0]["taskContext"]["agent.id"]
    spare = f"{victim.rsplit('-', 1)[0]}-spare"
    cluster.start_agent(spare, "zone-a")
    cluster.wait_for("the spare agent", lambda: spare in cluster.registered_agents())

    cluster.procs[victim].kill(signal.SIGKILL)

    def lost() -> list[dict[str, Any]]:
        return [
            t
            for t in cluster.all_tasks(job_id)
            if t["taskContext"].get("agent.id") == victim and t["status"]["state"] == "Finished"
        ]

    [gone] = cluster.wait_for("the victim's task to be lost", lost)
    assert gone["status"]["reasonCode"] == "lost"
    now = cluster.wait_for(
        "a replacement on another host",
        lambda: (
            (r := running())
            and len(r) == 3
            and all(t["taskContext"]["agent.id"] != victim for t in r)
            and r
        ),
    )
    assert spare in {t["taskContext"]["agent.id"] for t in now}


def test_a_task_killed_while_its_agent_is_down_has_its_container_killed_on_return(
    cluster: Cluster,
) -> None:
    job_id = cluster.submit(batch("sleep 600", "claimed"))
    [task] = cluster.wait_for(
        "the task to run",
        lambda: [t for t in cluster.tasks(job_id) if t["status"]["state"] == "Started"],
    )
    agent = task["taskContext"]["agent.id"]
    engine = docker.DockerClient(base_url=cluster.env["DOCKER_HOST"])
    container = engine.containers.get(task["taskContext"]["task.containerId"])

    cluster.procs[agent].kill(signal.SIGKILL)  # its containers keep running
    r = cluster.http.delete(f"/api/v3/tasks/{task['id']}")
    assert r.status_code in (200, 202, 204), r.text
    cluster.wait_for(
        "the task to end while its agent is away",
        lambda: (j := cluster.job(job_id))["status"]["state"] == "Finished" and j,
    )
    container.reload()
    assert container.status == "running"

    cluster.env["TITUS_AGENT_ORPHAN_GRACE_SEC"] = "1"
    cluster.start_agent(agent, task["taskContext"]["agent.zone"])

    def gone() -> bool:
        try:
            container.reload()
        except docker.errors.NotFound:  # stopped and removed between two looks
            return True
        return container.status != "running"

    cluster.wait_for("the container of the killed task to be stopped", gone, timeout=90)
