"""The leader loop: elected through coordination, it owns what runs where.

On election it claims its epoch in the store (fencing out any older leader), reads the
active state in bulk, learns what every host actually runs, and only then acts. Each
iteration folds host reports into the store, picks up what users changed, reconciles the
touched jobs, and places pending tasks. It sleeps until something happens: a wake from the
API, a host report, or the loop interval passing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from titus.coord.base import Coordinator, Leadership
from titus.master import reconciler as rc
from titus.master.cluster import ClusterDriver, HostReport, HostView, Placement
from titus.master.scheduler import HostState, Scheduler, TaskRequest
from titus.model.job import Job, Task, TaskStatus, now_ms
from titus.model.launch import TaskReport, TaskSpec
from titus.model.states import TASK_ON_HOST, JobState, Reason, TaskState, is_forward
from titus.store.base import Conflict, JobStore, KillRequest, StaleEpoch

log = logging.getLogger("titus.master")

FULL_RECONCILE_SEC = 5.0
UNKNOWN_TASK_GRACE_SEC = 15.0


class LostLeadership(Exception):
    pass


class ActiveView:
    """The leader's in-memory copy of active jobs and tasks, indexed for the loop."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.tasks: dict[str, Task] = {}
        self.by_job: dict[str, dict[str, Task]] = {}

    def put_job(self, job: Job) -> None:
        self.jobs[job.id] = job
        self.by_job.setdefault(job.id, {})

    def drop_job(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
        for task_id in self.by_job.pop(job_id, {}):
            self.tasks.pop(task_id, None)

    def put_task(self, task: Task) -> None:
        self.tasks[task.id] = task
        self.by_job.setdefault(task.jobId, {})[task.id] = task

    def drop_task(self, task: Task) -> None:
        self.tasks.pop(task.id, None)
        self.by_job.get(task.jobId, {}).pop(task.id, None)

    def tasks_of(self, job_id: str) -> list[Task]:
        return list(self.by_job.get(job_id, {}).values())


def _resources(job: Job) -> dict[str, float]:
    r = job.jobDescriptor.container.resources
    return {
        "cpu": r.cpu,
        "memoryMB": float(r.memoryMB),
        "diskMB": float(r.diskMB),
        "networkMbps": float(r.networkMbps),
        "gpu": float(r.gpu),
        "ipSlots": 1.0,
    }


class Master:
    def __init__(
        self,
        store: JobStore,
        coord: Coordinator,
        driver: ClusterDriver,
        *,
        scheduler: Scheduler | None = None,
        master_id: str = "",
        address: str = "",
        loop_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.coord = coord
        self.driver = driver
        self.scheduler = scheduler or Scheduler()
        self.master_id = master_id or f"master-{uuid.uuid4().hex[:8]}"
        self.address = address
        self.loop_interval = loop_interval
        self.clock = clock
        self.view = ActiveView()
        self.leadership: Leadership | None = None
        self.placement_failures: dict[str, str] = {}
        self._nudge = threading.Event()
        self._touched: set[str] = set()
        self._last_full = 0.0
        self._pending_reports: list[HostReport] = []
        self._reports_lock = threading.Lock()
        self._reconciled_actual = False
        self.first_launch_at: float | None = None

    # ---- election -----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Campaign, lead until leadership is lost, and campaign again, until `stop`."""
        while not stop.is_set():
            leadership = self.coord.campaign(self.master_id, self.address, stop)
            if leadership is None:
                return
            log.info("%s leads with epoch %d", self.master_id, leadership.epoch)
            try:
                self.lead(leadership, stop)
            except (StaleEpoch, LostLeadership) as exc:
                log.warning("stepping down: %s", exc)
            except Exception:
                log.exception("leader loop failed; stepping down")
            finally:
                self.driver.stop()
                self.coord.resign(leadership)
                self.leadership = None
                self.view = ActiveView()
                if not stop.is_set():
                    stop.wait(1.0)

    def lead(self, leadership: Leadership, stop: threading.Event) -> None:
        self.leadership = leadership
        self.store.claim_epoch(leadership.epoch)
        self.driver.start(leadership)
        self._load()
        feeders = [
            threading.Thread(target=self._feed_wakes, args=(leadership, stop), daemon=True),
            threading.Thread(target=self._feed_reports, args=(leadership, stop), daemon=True),
        ]
        for t in feeders:
            t.start()
        deadline = time.monotonic() + 10.0
        while not stop.is_set() and leadership.is_leader:
            if not leadership.can_act():
                stop.wait(0.1)
                continue
            if not self._reconciled_actual:
                actual = self.driver.actual_tasks()
                if actual is None and time.monotonic() < deadline:
                    stop.wait(0.05)
                    continue
                self._reconcile_actual(actual or {})
            self.iterate()
            self._nudge.wait(self.loop_interval)
            self._nudge.clear()

    def _feed_wakes(self, leadership: Leadership, stop: threading.Event) -> None:
        while not stop.is_set() and leadership.is_leader:
            if self.coord.wait_wake(1.0):
                self._nudge.set()

    def _feed_reports(self, leadership: Leadership, stop: threading.Event) -> None:
        while not stop.is_set() and leadership.is_leader:
            reports = self.driver.take_reports(1.0)
            if reports:
                with self._reports_lock:
                    self._pending_reports.extend(reports)
                self._nudge.set()

    def _load(self) -> None:
        started = time.monotonic()
        state = self.store.load_active()
        view = ActiveView()
        for job in state.jobs:
            view.put_job(job)
        for task in state.tasks:
            view.put_task(task)
        self.view = view
        self._touched = set(view.jobs)
        self._reconciled_actual = False
        log.info(
            "loaded %d jobs and %d tasks in %.3fs",
            len(state.jobs),
            len(state.tasks),
            time.monotonic() - started,
        )

    @property
    def epoch(self) -> int:
        if self.leadership is None or not self.leadership.is_leader:
            raise LostLeadership("no longer the leader")
        return self.leadership.epoch

    # ---- one iteration ------------------------------------------------------------------
    def iterate(self) -> None:
        self._apply_reports()
        self._apply_lost_hosts()
        self._pick_up_user_changes()
        now = time.monotonic()
        if now - self._last_full >= FULL_RECONCILE_SEC:
            self._touched |= set(self.view.jobs)
            self._last_full = now
        touched, self._touched = self._touched, set()
        for job_id in touched:
            job = self.view.jobs.get(job_id)
            if job is not None:
                self._carry_out(rc.reconcile_job(job, self.view.tasks_of(job_id)))
        self._schedule()

    # ---- host reports -------------------------------------------------------------------
    def _apply_reports(self) -> None:
        with self._reports_lock:
            reports, self._pending_reports = self._pending_reports, []
        for hr in reports:
            self._apply_report(hr)

    def _apply_report(self, hr: HostReport) -> None:
        report = hr.report
        task = self.view.tasks.get(report.taskId)
        if task is None:
            if not report.terminal:
                log.warning("host %s runs unknown task %s: killing", hr.host_id, report.taskId)
                self.driver.kill(report.taskId, hr.host_id, Reason.KILLED)
            else:
                self.driver.acknowledge(hr)
            return
        if task.agent_id and hr.host_id and task.agent_id != hr.host_id:
            log.warning("task %s reported by %s, placed on %s", task.id, hr.host_id, task.agent_id)
            if not report.terminal:
                self.driver.kill(report.taskId, hr.host_id, Reason.KILLED)
            return
        new_state = TaskState(report.state)
        if not is_forward(task.state, new_state):
            if report.terminal:
                self.driver.acknowledge(hr)
            return
        updated = self._with_report(task, report, new_state)
        self._save_task(updated)
        self._touched.add(task.jobId)
        if report.terminal:
            self.driver.acknowledge(hr)

    def _with_report(self, task: Task, report: TaskReport, state: TaskState) -> Task:
        reason = report.reasonCode
        message = report.reasonMessage
        kill_reason = task.taskContext.get(rc.KILL_REASON)
        if state == TaskState.FINISHED and kill_reason and reason == Reason.KILLED:
            reason = kill_reason
        # a container that ran and ended between two polls skipped states on the way:
        # record them, so the history reads as the task's whole life
        new = task
        if report.exitCode is not None:
            for step in (TaskState.START_INITIATED, TaskState.STARTED):
                if is_forward(new.state, step) and is_forward(step, state):
                    new = new.with_status(step, "normal", "")
        new = new.with_status(state, reason, message)
        new.status.timestamp = report.timestamp or now_ms()
        new.taskContext.update(report.context)
        if report.containerId:
            new.taskContext["task.containerId"] = report.containerId
        if report.exitCode is not None:
            new.taskContext["task.exitCode"] = str(report.exitCode)
        return new

    def _apply_lost_hosts(self) -> None:
        lost = self.driver.lost_hosts()
        if not lost:
            return
        for task in list(self.view.tasks.values()):
            if task.agent_id in lost and task.state in TASK_ON_HOST:
                finished = task.with_status(
                    TaskState.FINISHED, Reason.LOST, f"host {task.agent_id} went away"
                )
                self._save_task(finished)
                self._touched.add(task.jobId)

    def _reconcile_actual(self, actual: dict[str, list[TaskReport]]) -> None:
        """After election: adopt what hosts run, kill what nobody owns, lose what vanished."""
        self._reconciled_actual = True
        on_hosts: dict[str, str] = {}
        for host_id, reports in actual.items():
            for report in reports:
                on_hosts[report.taskId] = host_id
                self._apply_report(HostReport(host_id, report))
        now = now_ms()
        for task in list(self.view.tasks.values()):
            if task.state not in TASK_ON_HOST or task.id in on_hosts:
                continue
            host = task.agent_id
            if host in actual and now - task.status.timestamp > UNKNOWN_TASK_GRACE_SEC * 1000:
                self._save_task(
                    task.with_status(
                        TaskState.FINISHED, Reason.LOST, f"host {host} does not run it"
                    )
                )
                self._touched.add(task.jobId)
            elif host not in actual and task.state != TaskState.LAUNCHED:
                # placed on a host that is no longer registered
                self._save_task(
                    task.with_status(TaskState.FINISHED, Reason.LOST, f"host {host} is gone")
                )
                self._touched.add(task.jobId)
            elif host not in actual:
                self._save_task(
                    task.with_status(
                        TaskState.FINISHED,
                        Reason.TRANSIENT_SYSTEM_ERROR,
                        f"host {host} went away before the task started",
                    )
                )
                self._touched.add(task.jobId)

    # ---- user changes -------------------------------------------------------------------
    def _pick_up_user_changes(self) -> None:
        for job_id in self.store.take_dirty():
            job = self.store.get_job(job_id)
            if job is None or job.status.state == JobState.FINISHED:
                continue
            self.view.put_job(job)
            known = self.view.by_job.get(job_id, {})
            for task in self.store.list_tasks(job_id):
                mine = known.get(task.id)
                if mine is None or task.version > mine.version:
                    self.view.put_task(task)
            for request in self.store.list_kill_requests(job_id):
                self._apply_kill_request(request)
            self._touched.add(job_id)

    def _apply_kill_request(self, request: KillRequest) -> None:
        task = self.view.tasks.get(request.task_id)
        if task is not None and task.state != TaskState.FINISHED:
            action = rc._kill_or_finish(task, request.reason)
            if action is not None:
                self._carry_out([action])
        self.store.delete_kill_request(request, epoch=self.epoch)

    # ---- carrying out actions -----------------------------------------------------------
    def _save_task(self, task: Task) -> Task:
        try:
            saved = self.store.update_task(task, epoch=self.epoch)
        except Conflict:
            fresh = self.store.get_task(task.id)
            if fresh is None:
                self.view.drop_task(task)
                raise
            saved = self.store.update_task(
                fresh.model_copy(
                    update={
                        "status": task.status,
                        "statusHistory": task.statusHistory,
                        "taskContext": task.taskContext,
                    }
                ),
                epoch=self.epoch,
            )
        self.view.put_task(saved)
        return saved

    def _carry_out(self, actions: list[rc.Action]) -> None:
        for action in actions:
            if isinstance(action, rc.CreateTask):
                self._create_task(action)
            elif isinstance(action, rc.ArchiveTask):
                self.store.archive_task(action.task, epoch=self.epoch)
                self.view.drop_task(action.task)
            elif isinstance(action, rc.KillTask):
                task = action.task.with_status(
                    TaskState.KILL_INITIATED, action.reason, f"kill requested ({action.reason})"
                )
                task.taskContext[rc.KILL_REASON] = action.reason
                self._save_task(task)
                self.driver.kill(task.id, task.agent_id, action.reason)
            elif isinstance(action, rc.FinishUnlaunched):
                self._save_task(
                    action.task.with_status(TaskState.FINISHED, action.reason, action.message)
                )
                self._touched.add(action.task.jobId)
            elif isinstance(action, rc.FinishJob):
                self._finish_job(action)

    def _create_task(self, action: rc.CreateTask) -> None:
        job = self.view.jobs[action.job_id]
        task_id = str(uuid.uuid4())
        ctx = rc.new_task_context(
            job, action.index, task_id, action.resubmit_of, action.delay_ms, action.system_retry
        )
        message = "queued for placement"
        if action.delay_ms:
            message = f"retry delayed by {action.delay_ms} ms"
        task = Task(
            id=task_id,
            jobId=job.id,
            originalId=ctx[rc.ORIGINAL_ID],
            status=TaskStatus(state=TaskState.ACCEPTED, reasonMessage=message),
            taskContext=ctx,
        )
        saved = self.store.create_task(task, epoch=self.epoch)
        self.view.put_task(saved)
        if action.resubmit_of is not None:
            self.store.archive_task(action.resubmit_of, epoch=self.epoch)
            self.view.drop_task(action.resubmit_of)

    def _finish_job(self, action: rc.FinishJob) -> None:
        job = self.view.jobs[action.job.id]
        finished = job.with_status(JobState.FINISHED, action.reason, action.message)
        try:
            finished = self.store.update_job(finished, epoch=self.epoch)
        except Conflict:
            fresh = self.store.get_job(job.id)
            if fresh is not None:
                self.view.put_job(fresh)
                self._touched.add(job.id)
            return
        self.store.archive_job(finished, epoch=self.epoch)
        self.view.drop_job(job.id)

    # ---- placement ----------------------------------------------------------------------
    def _schedule(self) -> None:
        now = now_ms()
        pending: list[tuple[Job, Task]] = []
        for task in self.view.tasks.values():
            if task.state != TaskState.ACCEPTED:
                continue
            if int(task.taskContext.get(rc.NOT_BEFORE, "0")) > now:
                continue
            job = self.view.jobs.get(task.jobId)
            if job is None or job.status.state != JobState.ACCEPTED:
                continue
            pending.append((job, task))
        self.driver.wants_offers(bool(pending))
        if not pending:
            return
        hosts = self.driver.hosts()
        if not hosts:
            return
        requests = [self._request(job, task) for job, task in pending]
        result = self.scheduler.schedule(requests, self._host_states(hosts))
        by_id = {task.id: (job, task) for job, task in pending}
        host_by_id = {h.host_id: h for h in hosts}
        placements = []
        for assignment in result.assignments:
            job, task = by_id[assignment.task_id]
            host = host_by_id[assignment.host_id]
            launched = task.with_status(TaskState.LAUNCHED, "normal", f"placed on {host.host_id}")
            launched.taskContext.update(
                {
                    "agent.id": host.host_id,
                    "agent.host": host.attributes.get("host", host.host_id),
                    "agent.zone": host.attributes.get("zone", ""),
                    "agent.region": host.attributes.get("region", ""),
                    "agent.instanceId": host.attributes.get("instanceId", host.host_id),
                    "agent.itype": host.attributes.get("itype", ""),
                }
            )
            saved = self._save_task(launched)
            placements.append(Placement(TaskSpec.for_task(job, saved), host.host_id))
            self.placement_failures.pop(task.id, None)
        if placements:
            self.driver.launch(placements)
            if self.first_launch_at is None:
                self.first_launch_at = time.time()
        for task_id, summary in result.unplaced.items():
            self.placement_failures[task_id] = summary.message

    def _request(self, job: Job, task: Task) -> TaskRequest:
        d = job.jobDescriptor
        r = _resources(job)
        return TaskRequest(
            task_id=task.id,
            job_id=job.id,
            cpu=r["cpu"],
            memory_mb=r["memoryMB"],
            disk_mb=r["diskMB"],
            network_mbps=r["networkMbps"],
            gpu=r["gpu"],
            job_type=d.job_type,
            capacity_group=d.capacityGroup or "DEFAULT",
            hard_constraints=dict(d.container.hardConstraints.constraints),
            soft_constraints=dict(d.container.softConstraints.constraints),
            enqueued_at=task.status.timestamp / 1000.0,
        )

    def _host_states(self, hosts: list[HostView]) -> list[HostState]:
        used: dict[str, dict[str, float]] = {h.host_id: {} for h in hosts}
        launching: dict[str, int] = {}
        counts: dict[str, int] = {}
        job_counts: dict[str, dict[str, int]] = {}
        for task in self.view.tasks.values():
            host = task.agent_id
            if host not in used or task.state not in TASK_ON_HOST:
                continue
            job = self.view.jobs.get(task.jobId)
            if job is None:
                continue
            for k, v in _resources(job).items():
                used[host][k] = used[host].get(k, 0.0) + v
            counts[host] = counts.get(host, 0) + 1
            if task.state in (TaskState.LAUNCHED, TaskState.START_INITIATED):
                launching[host] = launching.get(host, 0) + 1
            jc = job_counts.setdefault(host, {})
            jc[task.jobId] = jc.get(task.jobId, 0) + 1
        return [
            HostState(
                host_id=h.host_id,
                total=h.total,
                used=used[h.host_id],
                attributes=h.attributes,
                healthy=h.healthy,
                launching=launching.get(h.host_id, 0),
                task_count=counts.get(h.host_id, 0),
                job_counts=job_counts.get(h.host_id, {}),
            )
            for h in hosts
        ]
