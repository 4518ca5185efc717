"""The platform on Mesos, end to end through the Mesos master double.

The API and the leader run in this process (SQLite store, in-process coordination); the
leader's cluster driver is the Mesos framework (titus/master/mesos/) subscribed to the
double over HTTP; the double's agents start the real Titus executor
(`python -m titus.agent.mesos_executor`) as processes, which run real containers on the
platform's Docker engine. Jobs are submitted over REST and followed over REST.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import uvicorn

from tests.support.docker_engine import remove_agent_containers, start_docker_engine
from tests.support.mesos.master import MesosMasterDouble
from tests.support.platform import free_port
from tests.support.poll import wait_until
from titus.api.app import create_app
from titus.coord.local import LocalCoordinator
from titus.master.leader import Master
from titus.master.mesos import FRAMEWORK_ID_META, MesosConfig, MesosDriver
from titus.model.states import JobState
from titus.settings import Settings
from titus.store import open_store

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WAIT = 60.0


def batch(command: str, size: int = 1, retries: int = 0, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = json.loads((EXAMPLES / "batch-hello.json").read_text())
    d["container"]["entryPoint"] = ["sh", "-c", command]
    d["container"].pop("command", None)
    d["batch"] = {
        "size": size,
        "runtimeLimitSec": "600",
        "retryPolicy": {"immediate": {"retries": retries}},
        **extra,
    }
    return d


def states(task: dict[str, Any]) -> list[str]:
    return [s["state"] for s in task["statusHistory"]] + [task["status"]["state"]]


class Stack:
    """API + leaders (each with its own MesosDriver) sharing one store and coordinator."""

    def __init__(self, tmp: Path, master: MesosMasterDouble, docker_host: str) -> None:
        self.tmp = tmp
        self.double = master
        self.docker_host = docker_host
        self.log_dir = tmp / "task-logs"
        self.settings = Settings(data_dir=str(tmp), api_port=free_port())
        self.store = open_store(self.settings.store_url)
        self.coord = LocalCoordinator()
        self.url = f"http://127.0.0.1:{self.settings.api_port}"
        self.http = httpx.Client(base_url=self.url, timeout=30.0)
        self.leaders: list[tuple[Master, MesosDriver, threading.Event, threading.Thread]] = []
        config = uvicorn.Config(
            create_app(self.settings, self.store, self.coord),
            host="127.0.0.1",
            port=self.settings.api_port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.server_thread = threading.Thread(target=self.server.run, daemon=True)
        self.server_thread.start()
        self.wait_for("the API", lambda: self._api_up())

    def _api_up(self) -> bool:
        try:
            return self.http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def config(self, **overrides: Any) -> MesosConfig:
        values: dict[str, Any] = {
            "url": f"mesos://{self.double.address}",
            "failover_timeout": 3600.0,
            "refuse_seconds": 1.0,
            "offer_hold_seconds": 1.0,
            "reconcile_retry": 2.0,
            "executor_env": {
                "TITUS_LOG_DIR": str(self.log_dir),
                "TITUS_KILL_GRACE_SEC": "1",
                "DOCKER_HOST": self.docker_host,
            },
        }
        values.update(overrides)
        return MesosConfig(**values)

    def start_leader(self, **overrides: Any) -> MesosDriver:
        driver = MesosDriver(self.store, self.config(**overrides))
        master = Master(self.store, self.coord, driver, loop_interval=0.1)
        stop = threading.Event()
        thread = threading.Thread(target=master.run, args=(stop,), daemon=True)
        thread.start()
        self.leaders.append((master, driver, stop, thread))
        return driver

    def stop_leader(self, index: int = 0) -> None:
        master, _, stop, thread = self.leaders[index]
        stop.set()
        thread.join(30)
        assert not thread.is_alive()

    def close(self) -> None:
        for _, _, stop, _ in self.leaders:
            stop.set()
        for _, _, _, thread in self.leaders:
            thread.join(30)
        self.server.should_exit = True
        self.server_thread.join(10)
        self.http.close()
        self.store.close()

    # ---- REST -----------------------------------------------------------------------------
    def submit(self, descriptor: dict[str, Any]) -> str:
        r = self.http.post("/api/v3/jobs", json=descriptor)
        assert r.status_code in (200, 201, 202), r.text
        return str(r.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.http.get(f"/api/v3/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def tasks(self, job_id: str) -> list[dict[str, Any]]:
        r = self.http.get("/api/v3/tasks", params={"jobIds": job_id, "pageSize": 100})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def running(self, job_id: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks(job_id) if t["status"]["state"] == "Started"]

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
        return wait_until(what, check, timeout, interval=0.1)

    def wait_job_finished(self, job_id: str) -> dict[str, Any]:
        return dict(
            self.wait_for(
                f"job {job_id} to finish",
                lambda: (j := self.job(job_id))["status"]["state"] == "Finished" and j,
                timeout=90,
            )
        )

    def log_of(self, task_id: str, stream: str = "stdout") -> str:
        path = self.log_dir / task_id / stream
        return path.read_text() if path.exists() else ""


@pytest.fixture
def stack(
    tmp_path: Path, mesos_master: MesosMasterDouble, docker_engine: docker.DockerClient
) -> Iterator[Stack]:
    s = Stack(tmp_path, mesos_master, start_docker_engine())
    yield s
    s.close()
    mesos_master.stop()
    for agent in list(mesos_master.agents) + list(mesos_master.removed_agents):
        remove_agent_containers(docker_engine, agent)


def framework_of(stack: Stack) -> str:
    return str(stack.wait_for("a framework id", lambda: stack.store.get_meta(FRAMEWORK_ID_META)))


# ---- the flow of a job --------------------------------------------------------------------
def test_batch_job_runs_through_an_offer_and_the_executor(stack: Stack) -> None:
    driver = stack.start_leader()
    job_id = stack.submit(batch("echo hello from mesos; echo to stderr >&2; exit 0"))
    job = stack.wait_job_finished(job_id)
    assert job["status"]["reasonCode"] == "normal"
    [task] = stack.tasks(job_id)
    assert states(task) == ["Accepted", "Launched", "StartInitiated", "Started", "Finished"]
    assert task["status"]["reasonCode"] == "normal"
    assert "code 0" in task["status"]["reasonMessage"]
    ctx = task["taskContext"]
    assert ctx["agent.id"] in stack.double.agents
    assert ctx["agent.zone"] in ("zone-a", "zone-b") and ctx["agent.itype"] == "m5.large"
    assert ctx["task.exitCode"] == "0" and ctx.get("task.containerId")
    assert "hello from mesos" in stack.log_of(task["id"])
    assert "to stderr" in stack.log_of(task["id"], "stderr")
    fw = framework_of(stack)
    assert driver.framework_id == fw
    calls = stack.double.calls
    accepts = [c for c in calls if c["type"] == "ACCEPT" and c["status"] == 202]
    [info] = accepts[0]["call"]["accept"]["operations"][0]["launch"]["task_infos"]
    assert info["task_id"]["value"] == task["id"]
    assert "titus.agent.mesos_executor" in info["executor"]["command"]["value"]
    # the terminal update was acknowledged (after it was persisted): Mesos forgot the task
    stack.double.wait_for(lambda: stack.double.task_state(fw, task["id"]) == "TASK_FINISHED")
    stack.double.wait_for(lambda: not stack.double.tasks)
    # nothing pending any more: offers are suppressed
    stack.double.wait_for(lambda: stack.double.frameworks[fw].suppressed)
    assert any(c["type"] == "DECLINE" for c in calls) or stack.double.frameworks[fw].suppressed


def test_failing_task_reports_its_exit_code_and_is_retried(stack: Stack) -> None:
    stack.start_leader()
    job_id = stack.submit(batch("echo failing; exit 3", retries=1))
    stack.wait_job_finished(job_id)
    tasks = stack.tasks(job_id)
    assert len(tasks) == 2
    for t in tasks:
        assert t["status"]["reasonCode"] == "failed"
        assert "code 3" in t["status"]["reasonMessage"]
        assert t["taskContext"]["task.exitCode"] == "3"


def test_killing_a_job_kills_its_container_through_mesos(stack: Stack) -> None:
    stack.start_leader()
    job_id = stack.submit(batch("echo up; sleep 600"))
    [task] = stack.wait_for("the task to start", lambda: stack.running(job_id))
    # while it runs, its executor serves its output through the API
    logs = stack.wait_for(
        "the output",
        lambda: "up" in (r := stack.http.get(f"/api/v3/tasks/{task['id']}/logs")).text and r,
    )
    assert logs.status_code == 200
    assert stack.http.delete(f"/api/v3/jobs/{job_id}").status_code == 200
    stack.wait_job_finished(job_id)
    [done] = stack.tasks(job_id)
    assert done["status"]["reasonCode"] == "killed"
    fw = framework_of(stack)
    assert stack.double.task_state(fw, task["id"]) == "TASK_KILLED"
    assert any(c["type"] == "KILL" for c in stack.double.calls)


# ---- failures -----------------------------------------------------------------------------
def test_leader_failover_resubscribes_with_the_same_framework_and_reconciles(
    stack: Stack,
) -> None:
    stack.start_leader()
    job_id = stack.submit(batch("echo up; sleep 600"))
    [task] = stack.wait_for("the task to start", lambda: stack.running(job_id))
    fw = framework_of(stack)
    stack.stop_leader(0)  # steps down without TEARDOWN: the task keeps running
    assert not any(c["type"] == "TEARDOWN" for c in stack.double.calls)
    assert stack.double.task_state(fw, task["id"]) == "TASK_RUNNING"

    second = stack.start_leader()
    stack.wait_for("the new leader to subscribe", lambda: second.connected)
    assert second.framework_id == fw
    subscribes = [c for c in stack.double.calls if c["type"] == "SUBSCRIBE"]
    assert subscribes[-1]["call"]["subscribe"]["framework_info"]["id"] == {"value": fw}
    reconciles = stack.wait_for(
        "explicit reconciliation",
        lambda: [
            c
            for c in stack.double.calls
            if c["type"] == "RECONCILE" and c["call"]["reconcile"].get("tasks")
        ],
    )
    asked = {t["task_id"]["value"] for t in reconciles[-1]["call"]["reconcile"]["tasks"]}
    assert task["id"] in asked
    # the task was adopted, not replaced, and the new leader can still kill it
    assert [t["id"] for t in stack.running(job_id)] == [task["id"]]
    assert stack.http.delete(f"/api/v3/jobs/{job_id}").status_code == 200
    stack.wait_job_finished(job_id)
    assert stack.tasks(job_id)[0]["status"]["reasonCode"] == "killed"


def test_second_scheduler_with_the_same_id_wins_and_the_first_does_not_fight(
    stack: Stack,
) -> None:
    from titus.coord.base import Leadership

    first = MesosDriver(stack.store, stack.config())
    second = MesosDriver(stack.store, stack.config())
    lease = stack.coord.campaign("m1", "", threading.Event())
    assert isinstance(lease, Leadership)
    stack.store.claim_epoch(lease.epoch)
    active = stack.store.load_active_index()
    first.start(lease, active)
    try:
        stack.wait_for("the first to subscribe", lambda: first.connected)
        second.start(lease, active)
        stack.wait_for("the second to subscribe", lambda: second.connected)
        stack.wait_for("the first to give up", lambda: not first.connected)
        assert second.framework_id == first.framework_id
        time.sleep(3)  # pymesos would reconnect after 2 s if the first had not stopped
        fw = str(second.framework_id)
        assert stack.double.frameworks[fw].connected and second.connected
        assert len(stack.double.events_of(fw, "SUBSCRIBED")) == 2
    finally:
        first.stop()
        second.stop()


def test_offer_rescinded_while_it_is_used(stack: Stack) -> None:
    driver = stack.start_leader()
    fw = framework_of(stack)
    # hold offers without using them: nothing pending yet, so make something pending that
    # cannot start before the offer goes away, by rescinding every offer as it is launched
    original = driver.launch

    def launch_after_rescind(placements: Any) -> None:
        stack.double.rescind_all(fw)
        original(placements)

    driver.launch = launch_after_rescind  # type: ignore[method-assign]
    job_id = stack.submit(batch("echo survived; exit 0"))
    stack.wait_for(
        "a lost first attempt",
        lambda: any(t["status"]["reasonCode"] == "lost" for t in stack.tasks(job_id)),
    )
    driver.launch = original  # type: ignore[method-assign]
    job = stack.wait_job_finished(job_id)
    tasks = stack.tasks(job_id)
    assert job["status"]["reasonCode"] == "normal"
    assert [t["status"]["reasonCode"] for t in tasks].count("normal") == 1
    lost = [t for t in tasks if t["status"]["reasonCode"] == "lost"]
    assert lost and all(states(t)[-2] == "Launched" for t in lost)


def test_master_restart_loses_no_task(stack: Stack) -> None:
    driver = stack.start_leader()
    job_id = stack.submit(batch("echo up; sleep 600"))
    [task] = stack.wait_for("the task to start", lambda: stack.running(job_id))
    fw = framework_of(stack)
    stack.double.restart(downtime=1.0)
    stack.wait_for("re-subscription", lambda: stack.double.frameworks.get(fw) and driver.connected)
    stack.wait_for(
        "reconciliation after re-subscribing",
        lambda: len(
            [
                c
                for c in stack.double.calls
                if c["type"] == "RECONCILE" and c["call"]["reconcile"].get("tasks")
            ]
        ),
    )
    assert [t["id"] for t in stack.running(job_id)] == [task["id"]]
    # the revived framework still launches new work on the restarted master
    second = stack.submit(batch("echo after restart; exit 0"))
    assert stack.wait_job_finished(second)["status"]["reasonCode"] == "normal"
    assert stack.running(job_id)[0]["id"] == task["id"]


def test_killed_executor_loses_its_task_and_it_is_replaced(stack: Stack) -> None:
    stack.start_leader()
    job_id = stack.submit(batch("echo up; sleep 600", retries=1))
    [task] = stack.wait_for("the task to start", lambda: stack.running(job_id))
    stack.double.kill_executor(task["id"])  # one executor per task, named by the task id
    stack.wait_for(
        "a replacement",
        lambda: any(t["id"] != task["id"] for t in stack.running(job_id)),
    )
    lost = stack.http.get(f"/api/v3/tasks/{task['id']}").json()
    assert lost["status"]["state"] == "Finished" and lost["status"]["reasonCode"] == "lost"
    assert stack.http.delete(f"/api/v3/jobs/{job_id}").status_code == 200
    stack.wait_job_finished(job_id)


def test_removed_agent_loses_its_tasks_and_they_are_replaced(stack: Stack) -> None:
    stack.start_leader()
    job_id = stack.submit(batch("echo up; sleep 600", retries=1))
    [task] = stack.wait_for("the task to start", lambda: stack.running(job_id))
    agent = task["taskContext"]["agent.id"]
    stack.double.remove_agent(agent)
    replacement = stack.wait_for(
        "a replacement on the other agent",
        lambda: [t for t in stack.running(job_id) if t["id"] != task["id"]],
    )
    assert replacement[0]["taskContext"]["agent.id"] != agent
    lost = stack.http.get(f"/api/v3/tasks/{task['id']}").json()
    assert lost["status"]["reasonCode"] == "lost"
    assert stack.http.delete(f"/api/v3/jobs/{job_id}").status_code == 200
    stack.wait_job_finished(job_id)


def test_task_mesos_runs_but_the_store_does_not_know_is_killed(stack: Stack) -> None:
    stack.start_leader()
    job_id = stack.submit(batch("echo up; sleep 600"))
    [task] = stack.wait_for("the task to start", lambda: stack.running(job_id))
    fw = framework_of(stack)
    # the store forgets the task: its job archived by a write that should not have been
    # made (archiving the task alone would have the leader create it again under the same
    # derived id, and adopt what runs)
    job = stack.store.get_job(job_id)
    assert job is not None
    stack.store.archive_job(stack.store.update_job(job.with_status(JobState.FINISHED)))
    stack.stop_leader(0)
    stack.start_leader()
    stack.wait_for(
        "the unknown task to be killed",
        lambda: stack.double.task_state(fw, task["id"]) == "TASK_KILLED",
    )


def test_executor_command_and_spec_reach_the_agent(stack: Stack) -> None:
    """The executor got the environment a Mesos agent gives and the spec as TaskInfo data."""
    stack.start_leader()
    job_id = stack.submit(batch("echo spec; exit 0"))
    stack.wait_job_finished(job_id)
    [task] = stack.tasks(job_id)
    fw = framework_of(stack)
    runs = list(
        (stack.double.work_dir).glob(f"slaves/*/frameworks/{fw}/executors/{task['id']}/runs/*")
    )
    assert len(runs) == 1
    stderr = (runs[0] / "stderr").read_text()
    assert "registered with agent" in stderr


# ---- ENIs ---------------------------------------------------------------------------------
def test_a_mesos_host_takes_tasks_of_as_many_security_group_sets_as_it_has_enis(
    stack: Stack,
) -> None:
    """A Mesos agent names its ENI limits in its attributes; Mesos carries nothing more of
    ours, so the leader counts each set's ENIs from the tasks it placed there. A task of
    one set more waits, saying so, and starts when a set's last task ends."""
    for agent in list(stack.double.agents):
        stack.double.remove_agent(agent)
    stack.double.add_agent(
        "eni-host", attributes={"zone": "zone-a", "maxEnis": "2", "ipsPerEni": "4"}
    )
    stack.start_leader()
    jobs = {}
    for group in ("sg-a", "sg-b", "sg-c"):
        descriptor = batch("echo up; sleep 600")
        descriptor["container"]["securityProfile"] = {"securityGroups": [group]}
        jobs[group] = stack.submit(descriptor)

    def started() -> set[str]:
        return {group for group, job_id in jobs.items() if stack.running(job_id)}

    two = stack.wait_for("two sets started", lambda: len(s := started()) == 2 and s)
    [waiting] = set(jobs) - two
    [task] = stack.tasks(jobs[waiting])

    def why() -> dict[str, Any]:
        return dict(stack.http.get(f"/api/v3/scheduler/results/{task['id']}").json())

    result = stack.wait_for(
        "why the third set waits", lambda: "eniPerSecurityGroups" in json.dumps(w := why()) and w
    )
    assert waiting in json.dumps(result), result
    time.sleep(1.0)  # offers come and go meanwhile: it still waits
    assert started() == two

    freed = sorted(two)[0]
    assert stack.http.delete(f"/api/v3/jobs/{jobs[freed]}").status_code == 200
    stack.wait_for(f"the {waiting} task started in its place", lambda: stack.running(jobs[waiting]))
    for group in set(jobs) - {freed}:
        assert stack.http.delete(f"/api/v3/jobs/{jobs[group]}").status_code == 200
