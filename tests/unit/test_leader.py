"""The leader loop's decisions on a real SQLite store, with hosts played by an in-memory
cluster driver (the real drivers need agents or a Mesos master; they are exercised by the
integration and end-to-end tests): stuck work, backoff of failing jobs, phased-out
instance groups, "why pending" summaries, and what a new leader does with launches its
predecessor decided but never delivered."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest

from titus.coord.base import Leadership
from titus.coord.local import LocalCoordinator
from titus.master import reconciler as rc
from titus.master.cluster import HostReport, HostView, Placement
from titus.master.leader import Master, MasterConfig
from titus.master.scheduler import Scheduler, SchedulerConfig
from titus.master.stuck import StuckTimeouts
from titus.model.job import DisruptionBudget, Empty, Job, JobStatus, MigrationPolicy, Task, now_ms
from titus.model.launch import TaskReport
from titus.model.states import JobState, Reason, TaskState
from titus.model.validation import parse_job_descriptor
from titus.settings import Settings
from titus.store.base import ActiveFacts, KillRequest, StaleEpoch
from titus.store.sqlite import SqliteJobStore


class Hosts:
    """A cluster driver double: hosts from a list, launches and kills recorded."""

    def __init__(self, *hosts: HostView) -> None:
        self.views = list(hosts)
        self.launched: list[Placement] = []
        self.killed: list[tuple[str, str]] = []
        self.actual: dict[str, list[TaskReport]] = {h.host_id: [] for h in hosts}
        self.lost: set[str] = set()

    def start(self, leadership: Leadership, active: ActiveFacts) -> None:
        return None

    def stop(self) -> None:
        return None

    def hosts(self) -> list[HostView]:
        return list(self.views)

    def launch(self, placements: Sequence[Placement]) -> None:
        self.launched.extend(placements)

    def kill(self, task_id: str, host_id: str | None, reason: str = "killed") -> None:
        self.killed.append((task_id, reason))

    def take_reports(self, timeout: float) -> list[HostReport]:
        return []

    def acknowledge(self, report: HostReport) -> None:
        return None

    def actual_tasks(self) -> dict[str, list[TaskReport]] | None:
        return self.actual

    def lost_hosts(self) -> set[str]:
        lost, self.lost = self.lost, set()
        return lost

    def wants_offers(self, pending: bool) -> None:
        return None

    def claims_due(self) -> list[str]:
        return []

    def claim(self, host_id: str, task_ids: Sequence[str]) -> None:
        return None


def host(name: str, group: str = "default", cpu: float = 4.0) -> HostView:
    return HostView(
        host_id=name,
        total={
            "cpu": cpu,
            "memoryMB": 16384.0,
            "diskMB": 1_000_000.0,
            "networkMbps": 10_000.0,
            "gpu": 0.0,
            "ipSlots": 32.0,
        },
        attributes={"zone": "zone-a", "machineGroup": group},
    )


def job(store: SqliteJobStore, *, service: int = 0, cpu: float = 1.0, **batch: Any) -> str:
    body: dict[str, Any] = {
        "owner": {"teamEmail": "a@b.co"},
        "applicationName": "app",
        "container": {
            "image": {"name": "img", "tag": "1"},
            "resources": {"cpu": cpu, "memoryMB": 512, "diskMB": 10000, "networkMbps": 128},
        },
    }
    if service:
        body["service"] = {"capacity": {"min": 0, "desired": service, "max": service + 5}}
    else:
        body["batch"] = {"size": 1, **batch}
    d = parse_job_descriptor(body)
    j = Job(id=str(uuid.uuid4()), jobDescriptor=d, status=JobStatus(state=JobState.ACCEPTED))
    store.create_job(j)
    store.mark_dirty(j.id)
    return j.id


@pytest.fixture
def store(tmp_path: Path) -> SqliteJobStore:
    return SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")


class Clock:
    """The leader's clock, moved on by the test: time passes only when a test says so."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def leader(
    store: SqliteJobStore,
    driver: Hosts,
    launching: int = 1,
    clock: Clock | None = None,
    **config: Any,
) -> Master:
    """A leader past its start-up; `launching`: tasks starting at once per host."""
    clock = clock or Clock()
    scheduler = Scheduler(SchedulerConfig(max_launching_per_host=launching))
    m = Master(
        store,
        LocalCoordinator(),
        driver,
        scheduler=scheduler,
        config=MasterConfig(**config),
        clock=clock,
        elapsed=clock,  # time passes only when the test says so, on both clocks
    )
    m.begin(Leadership(1))
    m.sync_hosts(driver.actual_tasks())
    return m


def takeover(store: SqliteJobStore, driver: Hosts, epoch: int = 2) -> Master:
    """A new leader (default settings) taking over at `epoch`: the store loaded and what
    the hosts run reconciled, as after its predecessor died."""
    new = Master(store, LocalCoordinator(), driver)
    new.begin(Leadership(epoch))
    new.sync_hosts(driver.actual_tasks())
    return new


def with_budget(store: SqliteJobStore, job_id: str, budget: dict[str, Any]) -> None:
    """Give the stored job a disruption budget."""
    j = store.get_job(job_id)
    assert j is not None
    j.jobDescriptor.disruptionBudget = DisruptionBudget.model_validate(budget)
    store.update_job(j)


def report(m: Master, task_id: str, state: TaskState, reason: str = "normal") -> None:
    t = m.view.get(task_id)
    assert t is not None
    m.receive(
        [
            HostReport(
                t.agent_id or "",
                TaskReport(taskId=task_id, jobId=t.jobId, state=state, reasonCode=reason),
            )
        ]
    )


def tasks(store: SqliteJobStore, job_id: str) -> list[Task]:
    return store.list_tasks(job_id)


def test_a_task_stuck_in_launched_is_killed_and_replaced(store: SqliteJobStore) -> None:
    driver = Hosts(host("h1"))
    clock = Clock()
    m = leader(store, driver, clock=clock, stuck=StuckTimeouts(launched=60.0))
    job_id = job(store, service=1)
    m.iterate()  # creates the task and places it: Launched, and the host never answers
    [launched] = tasks(store, job_id)
    assert launched.state == TaskState.LAUNCHED
    clock.advance(30)
    m.iterate()
    assert tasks(store, job_id)[0].state == TaskState.LAUNCHED  # not stuck yet
    clock.advance(31)
    m.iterate()
    [killing] = tasks(store, job_id)
    assert killing.state == TaskState.KILL_INITIATED
    assert killing.status.reasonCode == Reason.STUCK_IN_STATE
    assert (launched.id, Reason.STUCK_IN_STATE) in driver.killed
    # the host confirms; the reason stays stuckInState and a replacement is made
    report(m, launched.id, TaskState.FINISHED, Reason.KILLED)
    m.iterate()
    gone = store.get_task(launched.id)
    assert gone is not None and gone.status.reasonCode == Reason.STUCK_IN_STATE
    [replacement] = tasks(store, job_id)
    assert replacement.id != launched.id


def test_a_wall_clock_stepped_forward_makes_no_task_look_stuck(store: SqliteJobStore) -> None:
    """An hour's step of the leader's clock (NTP, a VM resumed) is not an hour in Launched:
    only the time the leader saw pass on its monotonic clock counts."""
    driver = Hosts(host("h1"))
    wall, elapsed = Clock(), Clock(0.0)
    m = Master(
        store,
        LocalCoordinator(),
        driver,
        config=MasterConfig(stuck=StuckTimeouts(launched=60.0)),
        clock=wall,
        elapsed=elapsed,
    )
    m.begin(Leadership(1))
    m.sync_hosts(driver.actual_tasks())
    job_id = job(store, service=1)
    m.iterate()
    [launched] = tasks(store, job_id)
    wall.advance(10)
    elapsed.advance(10)
    m.iterate()  # the stuck check sees it: 10 s in Launched
    wall.advance(3600)  # the step
    elapsed.advance(10)
    m.iterate()
    assert tasks(store, job_id)[0].state == TaskState.LAUNCHED  # 20 s, not an hour
    wall.advance(45)
    elapsed.advance(45)
    m.iterate()
    [killing] = tasks(store, job_id)
    assert killing.state == TaskState.KILL_INITIATED  # 65 s on the monotonic clock
    assert killing.status.reasonCode == Reason.STUCK_IN_STATE


def test_stuck_kills_go_through_the_rate_limit(store: SqliteJobStore) -> None:
    driver = Hosts(*(host(f"h{i}") for i in range(6)))
    clock = Clock()
    m = leader(store, driver, clock=clock, stuck_kills_burst=2.0, stuck_kills_per_sec=0.5)
    job_id = job(store, service=6)
    m.iterate()
    assert sum(t.state == TaskState.LAUNCHED for t in tasks(store, job_id)) == 6
    clock.advance(StuckTimeouts().launched + 1)
    m.iterate()
    assert sum(t.state == TaskState.KILL_INITIATED for t in tasks(store, job_id)) == 2
    clock.advance(2.0)  # one more token
    m.iterate()
    assert sum(t.state == TaskState.KILL_INITIATED for t in tasks(store, job_id)) == 3


def test_a_failing_job_is_throttled_by_the_system_backoff(store: SqliteJobStore) -> None:
    driver = Hosts(host("h1"))
    clock = Clock()
    m = leader(store, driver, clock=clock, backoff_initial=1.0, backoff_max=30.0)
    job_id = job(store, retryPolicy={"immediate": {"retries": 5}})
    m.iterate()
    delays = []
    for _ in range(3):
        [t] = [t for t in tasks(store, job_id) if t.state == TaskState.LAUNCHED]
        report(m, t.id, TaskState.FINISHED, Reason.FAILED)
        m.iterate()
        [retry] = [t for t in tasks(store, job_id) if t.state == TaskState.ACCEPTED]
        delays.append(retry.taskContext[rc.RETRY_DELAY])
        assert "system backoff" in retry.status.reasonMessage
        m.iterate()
        assert store.get_task(retry.id).state == TaskState.ACCEPTED  # type: ignore[union-attr]
        clock.advance(int(retry.taskContext[rc.RETRY_DELAY].removesuffix("ms")) / 1000)
        m.iterate()  # its delay passed: placed
        assert store.get_task(retry.id).state == TaskState.LAUNCHED  # type: ignore[union-attr]
    assert delays == ["1000ms", "2000ms", "4000ms"]


def test_phased_out_hosts_get_no_new_work_and_lose_services_a_few_at_a_time(
    store: SqliteJobStore,
) -> None:
    driver = Hosts(host("old-1", "v1", cpu=8), host("old-2", "v1", cpu=8))
    clock = Clock()
    m = leader(store, driver, launching=10, clock=clock, migrate_at_once=1)
    job_id = job(store, service=4)
    m.iterate()
    for t in tasks(store, job_id):
        report(m, t.id, TaskState.STARTED)
    m.iterate()
    assert sum(t.state == TaskState.STARTED for t in tasks(store, job_id)) == 4

    store.set_instance_group("v1", "phasedOut")
    driver.views.append(host("new-1", "v2", cpu=8))
    driver.actual["new-1"] = []
    clock.advance(MasterConfig().cluster_config_refresh)  # the leader reads the change
    m.iterate()
    moving = [t for t in tasks(store, job_id) if t.state == TaskState.KILL_INITIATED]
    assert len(moving) == 1  # bounded
    report(m, moving[0].id, TaskState.FINISHED, Reason.KILLED)
    m.iterate()
    placed = [t for t in tasks(store, job_id) if t.state == TaskState.LAUNCHED]
    assert [t.agent_id for t in placed] == ["new-1"]


def test_a_lost_host_ends_its_tasks_as_lost_but_a_wanted_kill_stays_a_kill(
    store: SqliteJobStore,
) -> None:
    driver = Hosts(host("h1"), host("h2"))
    m = leader(store, driver, launching=10)
    service = job(store, service=1)
    batch = job(store, retryPolicy={"immediate": {"retries": 0}})
    m.iterate()
    [running] = tasks(store, service)
    [killed] = tasks(store, batch)
    report(m, running.id, TaskState.STARTED)
    m.iterate()
    store.add_kill_request(KillRequest(batch, killed.id))
    store.mark_dirty(batch)
    m.iterate()
    assert store.get_task(killed.id).state == TaskState.KILL_INITIATED  # type: ignore[union-attr]
    driver.lost = {running.agent_id or "", killed.agent_id or ""}
    driver.views = []
    m.iterate()
    lost = store.get_task(running.id)
    assert lost is not None and lost.state == TaskState.FINISHED
    assert lost.status.reasonCode == Reason.LOST  # and the service replaces it
    assert [t.state for t in tasks(store, service) if t.id != running.id] == [TaskState.ACCEPTED]
    ended = store.get_task(killed.id)
    assert ended is not None and ended.status.reasonCode == Reason.KILLED


def test_why_pending_is_kept_in_the_store_and_the_status_message_once(
    store: SqliteJobStore,
) -> None:
    driver = Hosts(host("h1", cpu=2))
    m = leader(store, driver)
    job_id = job(store, cpu=8)
    m.iterate()
    [t] = tasks(store, job_id)
    assert t.state == TaskState.ACCEPTED
    raw = store.get_scheduler_result(t.id)
    assert raw is not None
    result = json.loads(raw)
    assert result["hostsConsidered"] == 1 and result["refusedBy"] == {"resources": 1}
    assert t.status.reasonMessage.startswith("pending: no host fits")
    version = t.version
    m.iterate()
    assert store.get_task(t.id).version == version  # type: ignore[union-attr]
    pending = json.loads(store.get_meta("scheduler.pendingByGroup") or "{}")
    assert pending == {"DEFAULT": 1}


def test_a_new_leader_sends_launches_its_predecessor_never_delivered(
    store: SqliteJobStore,
) -> None:
    driver = Hosts(host("h1"))
    old = leader(store, driver, launching=10)
    job_id = job(store, service=2)
    old.iterate()
    assert len(driver.launched) == 2
    # the old leader died after saving Launched; h1 got only the first launch and runs it
    first, second = (p.spec.taskId for p in driver.launched)
    driver.actual["h1"] = [
        TaskReport(taskId=first, jobId=job_id, state=TaskState.STARTED, timestamp=now_ms())
    ]
    driver.launched.clear()
    new = takeover(store, driver)
    new.iterate()
    assert [p.spec.taskId for p in driver.launched] == [second]
    states = {t.id: t.state for t in tasks(store, job_id)}
    assert states == {first: TaskState.STARTED, second: TaskState.LAUNCHED}


class LaunchCalls(Hosts):
    """Hosts that keep each launch call apart (a Mesos driver accepts a host's offer once)."""

    def __init__(self, *hosts: HostView) -> None:
        super().__init__(*hosts)
        self.calls: list[list[str]] = []

    def launch(self, placements: Sequence[Placement]) -> None:
        super().launch(placements)
        self.calls.append([p.host_id for p in placements])


def test_a_hosts_placements_of_one_pass_go_out_in_one_launch(store: SqliteJobStore) -> None:
    """Launches go out in chunks (the first small, so hosts start at once), but never with
    a host's placements split over two chunks: its offer would be gone for the second."""
    driver = LaunchCalls(*(host(f"h{i}") for i in range(10)))
    m = leader(store, driver, launching=5)
    job(store, service=7, cpu=0.5)
    job(store, service=30, cpu=0.5)
    m.iterate()
    assert len(driver.launched) == 37
    assert len(driver.calls) > 1  # chunked
    for host_id in {p.host_id for p in driver.launched}:
        assert sum(host_id in call for call in driver.calls) == 1, (host_id, driver.calls)


def test_a_backlog_nobody_can_place_is_not_evaluated_again_until_something_changes(
    store: SqliteJobStore,
) -> None:
    driver = Hosts(host("h1", cpu=2))
    m = leader(store, driver)
    passes = []
    schedule = m.scheduler.schedule
    m.scheduler.schedule = lambda *a, **k: passes.append(1) or schedule(*a, **k)  # type: ignore[method-assign]
    job(store, cpu=8, retryPolicy={"immediate": {"retries": 0}})
    m.iterate()
    m.iterate()
    m.iterate()
    assert len(passes) == 1
    driver.views.append(host("h2", cpu=16))  # a host that fits arrives
    m.iterate()
    assert len(passes) == 2 and [p.host_id for p in driver.launched] == ["h2"]


def test_a_terminating_host_gets_no_new_tasks(store: SqliteJobStore) -> None:
    dying = host("dying", cpu=16)
    dying.attributes.update({"terminating": "true", "unhealthySince": "1700000000"})
    driver = Hosts(dying, host("fine", cpu=2))
    m = leader(store, driver, launching=10)
    job(store, service=3)
    m.iterate()
    assert [p.host_id for p in driver.launched] == ["fine", "fine"]


def test_the_log_location_follows_what_the_agent_reports(store: SqliteJobStore) -> None:
    driver = Hosts(host("h1"))
    m = leader(store, driver)
    job_id = job(store, service=1)
    m.iterate()
    [t] = tasks(store, job_id)
    m.receive(
        [
            HostReport(
                "h1",
                TaskReport(
                    taskId=t.id,
                    jobId=job_id,
                    state=TaskState.STARTED,
                    context={
                        "logs.s3.bucket": "titus-logs",
                        "logs.s3.key": f"logs/{job_id}/{t.id}",
                        "logs.s3.region": "us-east-1",
                    },
                ),
            )
        ]
    )
    m.iterate()
    stored = store.get_task(t.id)
    assert stored is not None
    location = stored.api_json()["logLocation"]
    assert location["liveStream"] == f"/api/v3/tasks/{t.id}/logs"
    assert location["s3"] == {
        "bucket": "titus-logs",
        "key": f"logs/{job_id}/{t.id}",
        "region": "us-east-1",
    }


class ClaimingHosts(Hosts):
    """Hosts that, like the direct driver, ask to be told which tasks are theirs."""

    def __init__(self, *hosts: HostView) -> None:
        super().__init__(*hosts)
        self.due = [h.host_id for h in hosts]
        self.claims: list[tuple[str, list[str]]] = []

    def claims_due(self) -> list[str]:
        due, self.due = self.due, []
        return due

    def claim(self, host_id: str, task_ids: Sequence[str]) -> None:
        self.claims.append((host_id, sorted(task_ids)))


def test_agents_that_rejoin_hear_which_tasks_they_own_and_lost_kills_again(
    store: SqliteJobStore,
) -> None:
    driver = ClaimingHosts(host("h1"), host("h2"))
    m = leader(store, driver, launching=10)
    m.iterate()
    assert sorted(driver.claims) == [("h1", []), ("h2", [])]
    job_id = job(store, service=3)
    m.iterate()
    placed = {t.id: t.agent_id for t in tasks(store, job_id)}
    for task_id in placed:
        report(m, task_id, TaskState.STARTED)
    m.iterate()
    # one task is killed while its host is away (the kill never arrives)
    killed = sorted(placed)[0]
    away = placed[killed]
    store.add_kill_request(KillRequest(job_id, killed))
    m.iterate()
    driver.killed.clear()
    driver.claims.clear()
    driver.due = [away]  # the host is back
    m.iterate()
    [(host_id, claimed)] = driver.claims
    on_host = sorted(
        t.id for t in tasks(store, job_id) if t.agent_id == away and t.state != TaskState.FINISHED
    )
    assert host_id == away and claimed == on_host and killed in claimed
    assert driver.killed == [(killed, Reason.KILLED)]


def test_a_users_kill_says_who_asked_in_the_tasks_status(store: SqliteJobStore) -> None:
    driver = Hosts(host("h1"))
    m = leader(store, driver, launching=10)
    job_id = job(store, service=2)
    m.iterate()
    first, second = tasks(store, job_id)
    for t in (first, second):
        report(m, t.id, TaskState.STARTED)
    m.iterate()
    store.add_kill_request(KillRequest(job_id, first.id, message="killed by alice"))
    store.add_kill_request(KillRequest(job_id, second.id))
    m.iterate()
    said = {t.id: t.status.reasonMessage for t in tasks(store, job_id)}
    assert said[first.id] == "killed by alice"
    assert said[second.id] == "kill requested (killed)"  # a request without a message


def test_a_stale_write_that_conflicts_never_moves_a_task_back(store: SqliteJobStore) -> None:
    driver = Hosts(host("h1"))
    m = leader(store, driver, launching=10)
    job_id = job(store, service=2)
    m.iterate()
    ended, renamed = tasks(store, job_id)
    # the store moves on while the leader still holds older versions of both tasks: one
    # ends, the other only gains context
    stored = store.get_task(ended.id)
    assert stored is not None
    store.update_task(stored.with_status(TaskState.FINISHED, Reason.KILLED, "ended elsewhere"))
    stored = store.get_task(renamed.id)
    assert stored is not None
    store.update_task(stored.model_copy(update={"taskContext": {**stored.taskContext, "k": "v"}}))
    # late reports of both start: each write conflicts with the store's newer version
    report(m, ended.id, TaskState.STARTED)
    report(m, renamed.id, TaskState.STARTED)
    m.iterate()
    kept = store.get_task(ended.id)
    assert kept is not None and kept.state == TaskState.FINISHED  # not back to Started
    assert kept.status.reasonMessage == "ended elsewhere"
    # and the leader goes by the store's version: the ended task is followed up (replaced)
    assert ended.id not in {t.id for t in tasks(store, job_id)}
    assert len(tasks(store, job_id)) == 2
    moved = store.get_task(renamed.id)
    assert moved is not None and moved.state == TaskState.STARTED  # forward: applied


def test_the_default_config_is_the_default_settings() -> None:
    assert MasterConfig() == MasterConfig.from_settings(Settings())


def test_every_reconciler_action_has_a_way_to_be_carried_out(store: SqliteJobStore) -> None:
    m = leader(store, Hosts(host("h1")))
    assert set(m.executor.handlers) == set(get_args(rc.Action))


def test_no_write_takes_a_task_back(store: SqliteJobStore) -> None:
    driver = Hosts(host("h1"))
    m = leader(store, driver)
    job_id = job(store, service=1)
    m.iterate()
    [launched] = tasks(store, job_id)
    back = launched.with_status(TaskState.ACCEPTED, Reason.NORMAL, "back in the queue")
    assert m.save_task(back).state == TaskState.LAUNCHED
    stored = store.get_task(launched.id)
    assert stored is not None and stored.state == TaskState.LAUNCHED
    assert stored.version == launched.version


def test_a_host_cannot_write_the_masters_task_context(store: SqliteJobStore) -> None:
    """A report may set what the host knows (agent.*, the container); the master's own keys
    (index, resubmits, kill reason) stay as the master wrote them."""
    driver = Hosts(host("h1"))
    m = leader(store, driver)
    job_id = job(store, service=1)
    m.iterate()
    (task,) = tasks(store, job_id)
    index = task.taskContext["task.index"]
    m.receive(
        [
            HostReport(
                "h1",
                TaskReport(
                    taskId=task.id,
                    jobId=job_id,
                    state=TaskState.STARTED,
                    context={
                        "task.index": "99",
                        "task.resubmitOf": "someone-else",
                        "agent.zone": "zone-a",
                        "task.containerIp": "192.0.2.7",
                    },
                ),
            )
        ]
    )
    m.iterate()
    (after,) = tasks(store, job_id)
    assert after.state == TaskState.STARTED
    assert after.taskContext["task.index"] == index
    assert "task.resubmitOf" not in after.taskContext
    assert after.taskContext["agent.zone"] == "zone-a"
    assert after.taskContext["task.containerIp"] == "192.0.2.7"


def test_a_leader_elected_with_an_epoch_the_store_already_saw_leads_above_it(
    store: SqliteJobStore,
) -> None:
    """Coordination was reset and counts from 1 again: the new leader still leads, with an
    epoch above every earlier one, and an earlier leader's writes stay refused."""
    store.claim_epoch(10)
    driver = Hosts(host("h1"))
    m = takeover(store, driver, epoch=2)
    assert m.epoch == 11 and store.current_epoch() == 11
    job_id = job(store, service=1)
    m.iterate()
    assert len(tasks(store, job_id)) == 1  # its writes are taken
    with pytest.raises(StaleEpoch):
        store.set_meta("x", "y", epoch=10)


def migration_round(m: Master, store: SqliteJobStore, clock: Clock, job_id: str) -> tuple[int, int]:
    """One round of a phase-out as hosts play it: the leader acts, every kill it ordered
    ends and every launch starts. (Tasks killed, tasks running when the leader acted.)"""
    clock.advance(MasterConfig().cluster_config_refresh)
    m.iterate()
    killed = running = 0
    for t in tasks(store, job_id):
        running += t.state == TaskState.STARTED
        if t.state == TaskState.KILL_INITIATED:
            report(m, t.id, TaskState.FINISHED, Reason.KILLED)
            killed += 1
        elif t.state == TaskState.LAUNCHED:
            report(m, t.id, TaskState.STARTED)
    m.iterate()
    return killed, running


def test_phasing_out_a_group_keeps_a_ten_task_job_within_at_most_two_unavailable(
    store: SqliteJobStore,
) -> None:
    driver = Hosts(host("old-1", "v1", cpu=16))
    clock = Clock()
    m = leader(store, driver, launching=20, clock=clock, migrate_at_once=10)
    job_id = job(store, service=10)
    with_budget(
        store,
        job_id,
        {"unhealthyTasksLimit": {"limitOfUnhealthyContainers": 2}, "rateUnlimited": {}},
    )
    m.iterate()
    for t in tasks(store, job_id):
        report(m, t.id, TaskState.STARTED)
    m.iterate()
    store.set_instance_group("v1", "phasedOut")
    driver.views.append(host("new-1", "v2", cpu=16))
    driver.actual["new-1"] = []
    moved, most_down = 0, 0
    for _ in range(30):
        killed, running_before = migration_round(m, store, clock, job_id)
        moved += killed
        most_down = max(most_down, 10 - running_before)
        running = [t for t in tasks(store, job_id) if t.state == TaskState.STARTED]
        if len(running) == 10 and all(t.agent_id == "new-1" for t in running):
            break
    assert most_down == 2  # the budget's two at once, never more
    assert moved == 10
    assert all(t.agent_id == "new-1" for t in tasks(store, job_id) if t.state != TaskState.FINISHED)


def test_phasing_out_moves_a_budgeted_job_only_inside_its_time_windows(
    store: SqliteJobStore,
) -> None:
    """A budget whose only window is another weekday: the phased-out host keeps every task.
    Once the owner's window includes today, they move."""
    now = datetime.now(UTC)
    # today and tomorrow: a run that crosses midnight stays inside
    days_in, days_out = (
        [(now + timedelta(days=d)).strftime("%A") for d in ds] for ds in ((0, 1), (3,))
    )
    driver = Hosts(host("old-1", "v1", cpu=16))
    clock = Clock(now.timestamp())
    m = leader(store, driver, launching=20, clock=clock, migrate_at_once=10)
    job_id = job(store, service=4)

    def budget(days: list[str]) -> dict[str, Any]:
        return {
            "unhealthyTasksLimit": {"limitOfUnhealthyContainers": 2},
            "rateUnlimited": {},
            "timeWindows": [{"days": days, "timeZone": "UTC"}],
        }

    with_budget(store, job_id, budget(days_out))
    m.iterate()
    for t in tasks(store, job_id):
        report(m, t.id, TaskState.STARTED)
    m.iterate()
    store.set_instance_group("v1", "phasedOut")
    driver.views.append(host("new-1", "v2", cpu=16))
    driver.actual["new-1"] = []

    def phase_out_rounds(rounds: int) -> int:
        return sum(migration_round(m, store, clock, job_id)[0] for _ in range(rounds))

    assert phase_out_rounds(8) == 0  # outside the window, nothing moves
    assert all(t.agent_id == "old-1" for t in tasks(store, job_id))
    with_budget(store, job_id, budget(days_in))
    store.mark_dirty(job_id)
    assert phase_out_rounds(8) == 4
    running = [t for t in tasks(store, job_id) if t.state == TaskState.STARTED]
    assert len(running) == 4 and {t.agent_id for t in running} == {"new-1"}


def test_a_self_managed_job_is_left_to_its_owner_until_the_timeout(
    store: SqliteJobStore,
) -> None:
    driver = Hosts(host("old-1", "v1", cpu=8))
    clock = Clock()
    m = leader(store, driver, launching=10, clock=clock, self_managed_timeout=600.0)
    owned, managed = job(store, service=1), job(store, service=1)
    j = store.get_job(owned)
    assert j is not None and j.jobDescriptor.service is not None
    j.jobDescriptor.service.migrationPolicy = MigrationPolicy(selfManaged=Empty())
    store.update_job(j)
    m.iterate()
    for job_id in (owned, managed):
        [t] = tasks(store, job_id)
        report(m, t.id, TaskState.STARTED)
    m.iterate()
    store.set_instance_group("v1", "phasedOut")
    driver.views.append(host("new-1", "v2", cpu=8))
    driver.actual["new-1"] = []
    clock.advance(MasterConfig().cluster_config_refresh)
    m.iterate()
    [mine] = tasks(store, owned)
    assert mine.state == TaskState.STARTED  # the owner's to move
    assert tasks(store, managed)[0].state == TaskState.KILL_INITIATED  # systemDefault: now
    clock.advance(599)
    m.iterate()
    assert tasks(store, owned)[0].state == TaskState.STARTED
    clock.advance(2)
    m.iterate()
    assert tasks(store, owned)[0].state == TaskState.KILL_INITIATED  # the owner's time is up


def test_a_new_leader_remembers_the_disruptions_its_predecessor_made(
    store: SqliteJobStore,
) -> None:
    """A budget of one disruption per hour: the leader moves one task off a phased-out
    host, fails over, and its successor moves no other within the hour."""
    driver = Hosts(host("old-1", "v1", cpu=16))
    clock = Clock()
    m = leader(store, driver, launching=10, clock=clock)
    job_id = job(store, service=3)
    with_budget(
        store,
        job_id,
        {
            "unhealthyTasksLimit": {"limitOfUnhealthyContainers": 3},
            "ratePerInterval": {"intervalMs": "3600000", "limitPerInterval": 1},
        },
    )
    m.iterate()
    for t in tasks(store, job_id):
        report(m, t.id, TaskState.STARTED)
    m.iterate()
    store.set_instance_group("v1", "phasedOut")
    driver.views.append(host("new-1", "v2", cpu=16))
    driver.actual["new-1"] = []
    clock.advance(MasterConfig().cluster_config_refresh)
    m.iterate()
    assert sum(t.state == TaskState.KILL_INITIATED for t in tasks(store, job_id)) == 1

    successor = Master(
        store,
        LocalCoordinator(),
        driver,
        scheduler=Scheduler(SchedulerConfig(max_launching_per_host=10)),
        clock=clock,
        elapsed=clock,
    )
    successor.begin(Leadership(2))
    successor.sync_hosts(driver.actual_tasks())
    for _ in range(3):
        clock.advance(MasterConfig().cluster_config_refresh)
        successor.iterate()
    assert sum(t.state == TaskState.KILL_INITIATED for t in tasks(store, job_id)) == 1
    clock.advance(3600)
    successor.iterate()
    assert sum(t.state == TaskState.KILL_INITIATED for t in tasks(store, job_id)) == 2


def test_the_leader_carries_out_evictions_only_while_the_budget_allows(
    store: SqliteJobStore,
) -> None:
    """Two evictions queued at once (two API processes raced): the budget lets one task
    down, so the leader evicts one, with the caller's words, and drops the other."""
    driver = Hosts(host("h1", cpu=16))
    m = leader(store, driver, launching=10)
    job_id = job(store, service=3)
    with_budget(
        store,
        job_id,
        {"unhealthyTasksLimit": {"limitOfUnhealthyContainers": 1}, "rateUnlimited": {}},
    )
    m.iterate()
    for t in tasks(store, job_id):
        report(m, t.id, TaskState.STARTED)
    m.iterate()
    first, second = sorted(t.id for t in tasks(store, job_id))[:2]
    for task_id in (first, second):
        store.add_kill_request(
            KillRequest(job_id, task_id, message="evicted by ops: patching", eviction=True)
        )
    m.iterate()
    states = {t.id: t for t in tasks(store, job_id)}
    evicted = [t for t in states.values() if t.state == TaskState.KILL_INITIATED]
    assert len(evicted) == 1
    assert evicted[0].status.reasonMessage == "evicted by ops: patching"
    assert store.list_kill_requests(job_id) == []  # the other was dropped, not kept


def test_an_unhealthy_host_is_drained_one_task_of_a_job_at_a_time(
    store: SqliteJobStore,
) -> None:
    sick = host("sick", cpu=8)
    driver = Hosts(sick)
    clock = Clock()
    m = leader(store, driver, launching=10, clock=clock)
    job_id = job(store, service=3)
    m.iterate()
    for t in tasks(store, job_id):
        report(m, t.id, TaskState.STARTED)
    m.iterate()
    healthy = [host(f"ok-{i}", cpu=8) for i in range(5)]
    for h in healthy:
        driver.views.append(h)
        driver.actual[h.host_id] = []
    driver.views[0] = HostView(sick.host_id, sick.total, sick.attributes, healthy=False)
    clock.advance(MasterConfig().cluster_config_refresh)
    m.iterate()
    killing = [t for t in tasks(store, job_id) if t.state == TaskState.KILL_INITIATED]
    assert len(killing) == 1  # no budget: one of the job's tasks down at a time
    assert killing[0].status.reasonMessage == "moved off an unhealthy host"


def test_when_most_hosts_are_unhealthy_nothing_is_drained(store: SqliteJobStore) -> None:
    driver = Hosts(host("a", cpu=8), host("b", cpu=8))
    clock = Clock()
    m = leader(store, driver, launching=10, clock=clock)
    job_id = job(store, service=2)
    m.iterate()
    for t in tasks(store, job_id):
        report(m, t.id, TaskState.STARTED)
    m.iterate()
    driver.views = [HostView(h.host_id, h.total, h.attributes, healthy=False) for h in driver.views]
    for _ in range(3):
        clock.advance(MasterConfig().cluster_config_refresh)
        m.iterate()
    assert all(t.state == TaskState.STARTED for t in tasks(store, job_id))


def test_batch_tasks_move_off_drained_hosts_only_within_their_relocation_limit(
    store: SqliteJobStore,
) -> None:
    driver = Hosts(host("old-1", "v1", cpu=16))
    clock = Clock()
    m = leader(store, driver, launching=10, clock=clock)
    limited, plain = job(store, size=1), job(store, size=1)
    with_budget(store, limited, {"relocationLimit": {"limit": 1}, "rateUnlimited": {}})
    m.iterate()
    for job_id in (limited, plain):
        for t in tasks(store, job_id):
            report(m, t.id, TaskState.STARTED)
    m.iterate()

    def phase_out(old: str, new_host: str, new_group: str) -> None:
        store.set_instance_group(old, "phasedOut")
        driver.views.append(host(new_host, new_group, cpu=16))
        driver.actual[new_host] = []
        clock.advance(MasterConfig().cluster_config_refresh)
        m.iterate()

    phase_out("v1", "new-1", "v2")
    [moving] = [t for t in tasks(store, limited) if t.state == TaskState.KILL_INITIATED]
    assert all(t.state == TaskState.STARTED for t in tasks(store, plain))  # no limit: stays
    report(m, moving.id, TaskState.FINISHED, Reason.KILLED)
    for _ in range(3):
        clock.advance(2)  # the system backoff of a system retry
        m.iterate()
    ended = store.get_task(moving.id)
    assert ended is not None and ended.status.reasonCode == Reason.TRANSIENT_SYSTEM_ERROR
    [again] = [t for t in tasks(store, limited) if t.state == TaskState.LAUNCHED]
    assert again.taskContext["task.relocations"] == "1" and again.agent_id == "new-1"
    report(m, again.id, TaskState.STARTED)
    m.iterate()

    phase_out("v2", "new-2", "v3")  # its one relocation is used: it stays where it is
    for _ in range(3):
        clock.advance(MasterConfig().cluster_config_refresh)
        m.iterate()
    assert store.get_task(again.id).state == TaskState.STARTED  # type: ignore[union-attr]
