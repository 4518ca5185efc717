"""The leader loop: elected through coordination, it owns what runs where.

On election it claims its epoch in the store (fencing out any older leader), reads the
active state in bulk (tasks left unparsed until touched, see view.py), learns what every
host actually runs, reconciles both, and only then acts. Each iteration folds host reports
into the store, picks up what users changed, reconciles the touched jobs, clears stuck work,
moves service tasks off phased-out instance groups, and places pending tasks. It sleeps until
something happens: a wake from the API, a host report, or the loop interval passing.

The coordination session decides whether it may act: while the session is suspended
(`Leadership.active` cleared) it neither launches nor kills, since a successor may be taking
over; once leadership is lost it steps down, drops everything it held in memory and
campaigns again. Its store writes carry its epoch, so a leader that has not noticed yet is
refused by the store (StaleEpoch) rather than overwriting its successor.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from titus.coord.base import Coordinator, Leadership
from titus.master import metrics as m
from titus.master import moves, placement, reports
from titus.master import reconciler as rc
from titus.master.backoff import SystemBackoff, combined_delay_ms
from titus.master.cluster import ClusterDriver, HostReport, HostView, Placement
from titus.master.scheduler import (
    CapacityGroup,
    Scheduler,
)
from titus.master.stuck import RateLimiter, StuckTimeouts, find_stuck
from titus.master.view import ActiveView
from titus.model.job import Task, TaskStatus, now_ms
from titus.model.launch import TaskReport
from titus.model.states import TASK_ON_HOST, JobState, Reason, TaskState
from titus.store.base import (
    LEADER_RECORD_META,
    ActiveIndex,
    Conflict,
    JobStore,
    KillRequest,
    MoveRequest,
    StaleEpoch,
)

log = logging.getLogger("titus.master")

UNKNOWN_TASK_GRACE_SEC = 15.0
#: Instance group lifecycle states whose hosts take no new work.
PHASED_OUT = frozenset({"phasedOut", "removable"})
MIGRATION_MESSAGE = "moved off a host of phased-out instance group"
#: Host attribute an agent sets ("true") once it asked the cloud to terminate its instance
#: (quarantine.py): anything placed there now would die with the host.
ATTR_TERMINATING = "terminating"


class LostLeadership(Exception):
    pass


class Paused(Exception):
    """The coordination session is suspended: stop acting until it is known to be alive."""


@dataclass
class MasterConfig:
    """The leader loop's knobs; `titus.settings.Settings` carries each with its default."""

    loop_interval: float = 0.5
    #: Every active job's index counts are checked once per this period (a safety net: every
    #: change that matters already marks its job for reconciliation).
    sweep_period: float = 30.0
    unknown_task_grace: float = UNKNOWN_TASK_GRACE_SEC
    stuck: StuckTimeouts = field(default_factory=StuckTimeouts)
    stuck_kills_per_sec: float = 1.0
    stuck_kills_burst: float = 20.0
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    #: Service tasks on phased-out hosts being moved at once (kills in flight).
    migrate_at_once: int = 5
    #: How often capacity groups and instance groups are read from the store.
    cluster_config_refresh: float = 5.0
    #: How long the first sync with the hosts may take before acting without it.
    actual_sync_timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: object) -> MasterConfig:
        def get(name: str, default: float) -> float:
            return float(getattr(settings, name, default))

        return cls(
            loop_interval=get("master_loop_interval_sec", 0.5),
            sweep_period=get("master_sweep_period_sec", 30.0),
            stuck=StuckTimeouts(
                launched=get("stuck_launched_sec", 300.0),
                start_initiated_batch=get("stuck_start_initiated_batch_sec", 720.0),
                start_initiated_service=get("stuck_start_initiated_service_sec", 300.0),
                kill_initiated=get("stuck_kill_initiated_sec", 600.0),
            ),
            stuck_kills_per_sec=get("stuck_kills_per_sec", 1.0),
            stuck_kills_burst=get("stuck_kills_burst", 20.0),
            backoff_initial=get("system_backoff_initial_sec", 1.0),
            backoff_max=get("system_backoff_max_sec", 30.0),
            migrate_at_once=int(get("migrate_at_once", 5)),
        )


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
        loop_interval: float | None = None,
        config: MasterConfig | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.coord = coord
        self.driver = driver
        self.scheduler = scheduler or Scheduler()
        self.master_id = master_id or f"master-{uuid.uuid4().hex[:8]}"
        self.address = address
        self.config = config or MasterConfig()
        if loop_interval is not None:
            self.config.loop_interval = loop_interval
        self.loop_interval = self.config.loop_interval
        self.clock = clock
        self.leadership: Leadership | None = None
        self._nudge = threading.Event()
        self._pending_reports: list[HostReport] = []
        self._reports_lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        """Forget everything held for a leadership: a new one starts from the store."""
        self.view = ActiveView()
        gc.unfreeze()  # what `_load` froze may be garbage now
        self.placement_failures: dict[str, str] = {}
        self.touched: set[str] = set()
        self.reconciled_actual = False
        self._held: list[Placement] = []
        self._sweep_queue: list[str] = []
        self._last_sweep = time.monotonic()
        self._last_stuck = 0.0
        self._last_migrate = 0.0
        self._last_config = 0.0
        self._migrating: set[str] = set()
        self._requests_recovered = False
        self.groups: dict[str, CapacityGroup] = {}
        self._instance_groups: dict[str, str] = {}
        self.pending_written: dict[str, int] | None = None
        #: (due time ms, view generation, hosts signature) of the last placement pass.
        self.last_schedule: tuple[int, int, tuple[object, ...]] | None = None
        self.backoff = SystemBackoff(self.config.backoff_initial, self.config.backoff_max)
        self.stuck_limiter = RateLimiter(
            self.config.stuck_kills_per_sec, self.config.stuck_kills_burst
        )
        self.elected_at: float | None = None
        self.ready_at: float | None = None
        self.first_launch_at: float | None = None
        with self._reports_lock:
            self._pending_reports = []

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
                m.IS_LEADER.set(0)
                self.driver.stop()
                self.coord.resign(leadership)
                self.leadership = None
                self._reset()
                if not stop.is_set():
                    stop.wait(1.0)

    def lead(self, leadership: Leadership, stop: threading.Event) -> None:
        self._reset()
        self.elected_at = time.time()
        self.leadership = leadership
        self.store.claim_epoch(leadership.epoch)
        self.driver.start(leadership, self._load())
        feeders = [
            threading.Thread(target=self._feed_wakes, args=(leadership, stop), daemon=True),
            threading.Thread(target=self._feed_reports, args=(leadership, stop), daemon=True),
        ]
        for t in feeders:
            t.start()
        deadline = time.monotonic() + self.config.actual_sync_timeout
        while not stop.is_set() and leadership.is_leader:
            if not leadership.can_act():
                m.IS_LEADER.set(0)
                stop.wait(0.05)
                continue
            m.IS_LEADER.set(1)
            try:
                if not self.reconciled_actual:
                    actual = self.driver.actual_tasks()
                    if actual is None and time.monotonic() < deadline:
                        stop.wait(0.02)
                        continue
                    self._reconcile_actual(actual)
                    self._ready()
                self.iterate()
            except Paused:
                log.info("coordination session suspended: not acting until it returns")
                continue
            self._nudge.wait(self.loop_interval)
            self._nudge.clear()
        if not leadership.is_leader:
            raise LostLeadership("coordination session lost")

    def _ready(self) -> None:
        self.ready_at = time.time()
        if self.elected_at is not None:
            m.FAILOVER_SECONDS.set(self.ready_at - self.elected_at)
        self._record_election()

    def _record_election(self) -> None:
        record = {
            "epoch": self.epoch,
            "masterId": self.master_id,
            "electedAt": self.elected_at,
            "readyAt": self.ready_at,
            "firstLaunchAt": self.first_launch_at,
        }
        self.store.set_meta(LEADER_RECORD_META, json.dumps(record), epoch=self.epoch)

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

    def _load(self) -> ActiveIndex:
        """Read the active state into a new view; the index read, for the driver.

        The cyclic garbage collector is held off while it runs: the load creates a few
        hundred thousand long-lived objects (rows, strings, index entries), and each
        generation-0 overflow would otherwise rescan the growing older generations again
        and again, for nothing (none of it is garbage). Once loaded, they are frozen out of
        the collector's sight for the leadership (unfrozen when it ends), so later full
        collections do not walk 100,000 task rows either."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._load_view()
        finally:
            gc.freeze()
            if enabled:
                gc.enable()

    def _load_view(self) -> ActiveIndex:
        started = time.monotonic()
        view = ActiveView()
        index = self.store.load_active_index()
        for job in index.jobs:
            view.put_job(job)
        view.put_rows(index.tasks)
        jobs, tasks = len(index.jobs), len(index.tasks)
        self.view = view
        self.touched = {job_id for job_id in view.jobs if self._needs_reconcile(job_id)}
        self.reconciled_actual = False
        took = time.monotonic() - started
        m.LOAD_SECONDS.set(took)
        log.info(
            "loaded %d jobs and %d tasks in %.3fs; %d jobs need reconciling",
            jobs,
            tasks,
            took,
            len(self.touched),
        )
        return index

    def _needs_reconcile(self, job_id: str) -> bool:
        """Whether the job's tasks, as the indexes see them, may call for an action: a
        finished task to follow up, a job being killed, or the wrong number of tasks.
        Cheap (no task parsed), so the start-up and the sweep can ask it of every job."""
        job = self.view.jobs.get(job_id)
        if job is None:
            return False
        if job.status.state != JobState.ACCEPTED:
            return True
        ids = self.view.by_job.get(job_id, set())
        if ids & self.view.finished:
            return True
        d = job.jobDescriptor
        if d.batch is not None:
            return len(ids) < d.batch.size
        if d.service is not None:
            live = sum(
                1
                for t in ids
                if self.view.state(t) not in (TaskState.FINISHED, TaskState.KILL_INITIATED)
            )
            return live != d.service.capacity.desired
        return False

    @property
    def epoch(self) -> int:
        if self.leadership is None or not self.leadership.is_leader:
            raise LostLeadership("no longer the leader")
        return self.leadership.epoch

    def guard(self) -> None:
        """Called before anything reaches a host: only a leader whose session is known to be
        alive launches or kills."""
        leadership = self.leadership
        if leadership is None or not leadership.is_leader:
            raise LostLeadership("no longer the leader")
        if not leadership.can_act():
            raise Paused()

    # ---- one iteration ------------------------------------------------------------------
    def iterate(self) -> None:
        started = time.monotonic()
        self.guard()
        self._send_held()
        self._apply_reports()
        reports.apply_lost_hosts(self)
        self._pick_up_user_changes()
        if not self._requests_recovered:
            self._recover_requests()
        self._send_claims()
        self._refresh_cluster_config()
        self._sweep()
        touched, self.touched = list(self.touched), set()
        for i, job_id in enumerate(touched):
            job = self.view.jobs.get(job_id)
            if job is None:
                continue
            try:
                self._carry_out(rc.reconcile_job(job, self.view.tasks_of(job_id)))
            except Paused:
                self.touched.update(touched[i:])  # decided again once the session is back
                raise
        self._clear_stuck()
        self._migrate()
        placement.schedule(self)
        m.ITERATION_SECONDS.observe(time.monotonic() - started)

    def _sweep(self) -> None:
        """Check a slice of all jobs each iteration, so each is checked once per period."""
        now = time.monotonic()
        elapsed, self._last_sweep = now - self._last_sweep, now
        if not self._sweep_queue:
            self._sweep_queue = list(self.view.jobs)
        share = math.ceil(len(self.view.jobs) * elapsed / max(self.config.sweep_period, 0.1))
        for _ in range(min(share, len(self._sweep_queue))):
            job_id = self._sweep_queue.pop()
            if self._needs_reconcile(job_id):
                self.touched.add(job_id)

    # ---- host reports -------------------------------------------------------------------
    def _apply_reports(self) -> None:
        with self._reports_lock:
            taken, self._pending_reports = self._pending_reports, []
        for i, hr in enumerate(taken):
            try:
                reports.apply_report(self, hr)
            except Paused:
                with self._reports_lock:  # not lost: applied once the session is back
                    self._pending_reports[:0] = taken[i:]
                raise

    def _reconcile_actual(self, actual: dict[str, list[TaskReport]] | None) -> None:
        """After election: make store and hosts agree (see reports.reconcile_actual)."""
        reports.reconcile_actual(self, actual)

    def _send_claims(self) -> None:
        """Tell each agent that (re)joined which tasks the store places on it, so that it
        kills the containers it adopted whose tasks ended or moved while it was away; and
        send again the kills of tasks being killed there (a kill sent while the agent was
        down is lost). Drivers without claims (Mesos reconciles by itself) name no host."""
        if not self.reconciled_actual:
            return
        due = self.driver.claims_due()
        if not due:
            return
        self.guard()
        for host_id in due:
            owned = []
            for task_id in self.view.on_host(host_id):
                state = self.view.state(task_id)
                if state not in TASK_ON_HOST:
                    continue
                owned.append(task_id)
                if state == TaskState.KILL_INITIATED:
                    task = self.view.get(task_id)
                    reason = (task.taskContext.get(rc.KILL_REASON) if task else None) or "killed"
                    self.driver.kill(task_id, host_id, reason)
            log.info("claiming %d tasks on agent %s", len(owned), host_id)
            self.driver.claim(host_id, owned)

    # ---- user changes -------------------------------------------------------------------
    def _pick_up_user_changes(self) -> None:
        dirty = self.store.take_dirty()
        for i, job_id in enumerate(dirty):
            try:
                self._pick_up_job(job_id)
            except Paused:
                for again in dirty[i:]:  # taken from the store: hand them back
                    self.store.mark_dirty(again)
                raise

    def _pick_up_job(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if job is None or job.status.state == JobState.FINISHED:
            return
        self.view.put_job(job)
        for task in self.store.list_tasks(job_id):
            mine = self.view.get(task.id)
            if mine is None or task.version > mine.version:
                self.view.put_task(task)
        for request in self.store.list_kill_requests(job_id):
            self._apply_kill_request(request)
        for move in self.store.list_move_requests(job_id):
            self._apply_move_request(move)
        self.touched.add(job_id)

    def _apply_kill_request(self, request: KillRequest) -> None:
        task = self.view.get(request.task_id)
        if task is not None and task.state != TaskState.FINISHED:
            action = rc.kill_or_finish(task, request.reason)
            if action is not None:
                self._carry_out([action])
        self.store.delete_kill_request(request, epoch=self.epoch)

    def _recover_requests(self) -> None:
        """Once per leadership: carry out the kills and moves a predecessor left queued.
        The dirty marks that announced them may have been taken (and lost) with it."""
        self._requests_recovered = True
        kills = self.store.list_all_kill_requests()
        queued = self.store.list_all_move_requests()
        for kill in kills:
            if kill.job_id in self.view.jobs:
                self._apply_kill_request(kill)
        for move in queued:
            self._apply_move_request(move)

    # ---- task moves ---------------------------------------------------------------------
    def _apply_move_request(self, request: MoveRequest) -> None:
        moves.apply_move_request(request, self.view, self.store, self.epoch, self.touched)

    # ---- cluster configuration: capacity groups, instance groups ------------------------
    def _refresh_cluster_config(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_config < self.config.cluster_config_refresh:
            return
        self._last_config = now
        try:
            self._instance_groups = dict(self.store.list_instance_groups())
        except Exception as exc:  # keep the last known; placement must go on
            log.warning("cannot read instance groups: %s", exc)
        try:
            raw = self.store.list_capacity_groups()
        except Exception as exc:
            log.warning("cannot read capacity groups: %s", exc)
            return
        groups = {}
        for name, value in raw.items():
            group = _capacity_group(name, value)
            if group is not None:
                groups[group.name] = group
        self.groups = groups

    def schedulable(self, host: HostView) -> bool:
        """Whether a host may take new tasks: not when its instance group is phased out,
        nor when the host is being terminated (its tasks there would die with it)."""
        if host.attributes.get(ATTR_TERMINATING, "").lower() == "true":
            return False
        group = host.attributes.get("machineGroup", "")
        return self._instance_groups.get(group, "active") not in PHASED_OUT

    # ---- stuck work ---------------------------------------------------------------------
    def _clear_stuck(self) -> None:
        now = time.monotonic()
        if now - self._last_stuck < 1.0 or not self.view.transitional:
            return
        self._last_stuck = now

        def since() -> list[tuple[str, TaskState, int, bool]]:
            out = []
            for task_id, entered in self.view.transitional.items():
                state = self.view.state(task_id)
                job = self.view.jobs.get(self.view.job_of(task_id) or "")
                if state is None or job is None:
                    continue
                out.append((task_id, state, entered, job.jobDescriptor.batch is not None))
            return out

        for stuck in find_stuck(since(), self.config.stuck, now_ms()):
            if not self.stuck_limiter.try_take():
                log.warning("stuck tasks wait for the kill rate limit")
                return
            task = self.view.get(stuck.task_id)
            if task is None:
                continue
            m.STUCK_KILLS.labels(state=str(stuck.state)).inc()
            log.warning("task %s %s: killing it", task.id, stuck.message)
            if stuck.state == TaskState.KILL_INITIATED:
                # the host never confirmed the kill: give up on it and let the job move on
                self.guard()
                finished = task.with_status(TaskState.FINISHED, stuck.reason, stuck.message)
                self.save_task(finished)
                self.driver.kill(task.id, task.agent_id, stuck.reason)
                self.touched.add(task.jobId)
            else:
                self._kill(task, stuck.reason, stuck.message)

    # ---- instance group lifecycle: move service tasks off phased-out hosts -------------
    def _migrate(self) -> None:
        now = time.monotonic()
        if now - self._last_migrate < 2.0:
            return
        self._last_migrate = now
        self._migrating = {
            t for t in self._migrating if self.view.state(t) == TaskState.KILL_INITIATED
        }
        phased = {g for g, state in self._instance_groups.items() if state in PHASED_OUT}
        if not phased:
            return
        budget = self.config.migrate_at_once - len(self._migrating)
        if budget <= 0:
            return
        busy_jobs = {self.view.job_of(t) for t in self._migrating}
        for host in self.driver.hosts():
            if host.attributes.get("machineGroup", "") not in phased:
                continue
            for task_id in self.view.on_host(host.host_id):
                if budget <= 0:
                    return
                job_id = self.view.job_of(task_id)
                job = self.view.jobs.get(job_id or "")
                if (
                    job is None
                    or job.jobDescriptor.service is None
                    or job_id in busy_jobs
                    or self.view.state(task_id) != TaskState.STARTED
                ):
                    continue
                task = self.view.get(task_id)
                assert task is not None
                message = f"{MIGRATION_MESSAGE} {host.attributes.get('machineGroup')}"
                self._kill(task, Reason.KILLED, message)
                self._migrating.add(task_id)
                busy_jobs.add(job_id)
                budget -= 1
                m.MIGRATIONS.inc()

    # ---- carrying out actions -----------------------------------------------------------
    def save_task(self, task: Task) -> Task:
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
                self.forget_pending(action.task.id)
            elif isinstance(action, rc.KillTask):
                self._kill(action.task, action.reason, f"kill requested ({action.reason})")
            elif isinstance(action, rc.FinishUnlaunched):
                self.save_task(
                    action.task.with_status(TaskState.FINISHED, action.reason, action.message)
                )
                self.forget_pending(action.task.id)
                self.touched.add(action.task.jobId)
            elif isinstance(action, rc.FinishJob):
                self._finish_job(action)

    def _kill(self, task: Task, reason: str, message: str) -> None:
        """Mark the task as being killed, keeping `reason` for the status it ends with
        (the host reports a plain kill), and send the kill to its host."""
        self.guard()
        killing = task.with_status(TaskState.KILL_INITIATED, reason, message)
        killing.taskContext[rc.KILL_REASON] = reason
        self.save_task(killing)
        self.driver.kill(task.id, task.agent_id, reason)

    def _create_task(self, action: rc.CreateTask) -> None:
        job = self.view.jobs[action.job_id]
        task_id = str(uuid.uuid4())
        prior = action.resubmit_of
        system_delay = 0.0
        if prior is not None and prior.status.reasonCode not in reports.NOT_THROTTLED:
            system_delay = self.backoff.delay(job.id)
        delay = combined_delay_ms(action.delay_ms, system_delay)
        ctx = rc.new_task_context(job, action.index, task_id, prior, delay, action.system_retry)
        message = "queued for placement"
        if delay:
            why = []
            if action.delay_ms:
                why.append(f"retry policy {action.delay_ms / 1000:g}s")
            if system_delay:
                why.append(f"system backoff {system_delay:g}s after repeated failures")
            message = f"retry delayed by {delay / 1000:g}s ({', '.join(why)})"
        task = Task(
            id=task_id,
            jobId=job.id,
            originalId=ctx[rc.ORIGINAL_ID],
            status=TaskStatus(state=TaskState.ACCEPTED, reasonMessage=message),
            taskContext=ctx,
        )
        saved = self.store.create_task(task, epoch=self.epoch)
        self.view.put_task(saved)
        if prior is not None:
            self.store.archive_task(prior, epoch=self.epoch)
            self.view.drop_task(prior)

    def _finish_job(self, action: rc.FinishJob) -> None:
        job = self.view.jobs[action.job.id]
        finished = job.with_status(JobState.FINISHED, action.reason, action.message)
        try:
            finished = self.store.update_job(finished, epoch=self.epoch)
        except Conflict:
            fresh = self.store.get_job(job.id)
            if fresh is not None:
                self.view.put_job(fresh)
                self.touched.add(job.id)
            return
        self.store.archive_job(finished, epoch=self.epoch)
        for task_id in list(self.view.by_job.get(job.id, ())):
            self.forget_pending(task_id)
        self.view.drop_job(job.id)
        self.backoff.forget(job.id)

    def forget_pending(self, task_id: str) -> None:
        if self.placement_failures.pop(task_id, None) is not None:
            self.store.delete_scheduler_result(task_id, epoch=self.epoch)

    def _send_held(self) -> None:
        if self._held:
            held, self._held = self._held, []
            self.launch(held)

    def launch(self, placements: list[Placement]) -> None:
        """Send placements to hosts; held back (and sent on resume) while the session is
        suspended, dropped with the leadership if it is lost (the successor sends them)."""
        leadership = self.leadership
        if leadership is None or not leadership.can_act():
            self._held.extend(placements)
            raise Paused()
        self.driver.launch(placements)
        m.LAUNCHES.inc(len(placements))
        if self.first_launch_at is None:
            self.first_launch_at = time.time()
            if self.elected_at is not None:
                m.FIRST_LAUNCH_SECONDS.set(self.first_launch_at - self.elected_at)
            log.info(
                "first launch after election at %.3f (%.3fs after elected)",
                self.first_launch_at,
                self.first_launch_at - (self.elected_at or self.first_launch_at),
            )
            self._record_election()


def _capacity_group(name: str, value: str) -> CapacityGroup | None:
    """A stored capacity group (the API's JSON document, Titus ApplicationSla fields)."""
    try:
        data = json.loads(value)
    except ValueError:
        log.warning("ignoring unreadable capacity group %s", name)
        return None
    if not isinstance(data, dict):
        return None
    tier = str(data.get("tier", "Flex"))
    return CapacityGroup(
        name=str(data.get("appName") or data.get("name") or name),
        tier="Critical" if tier.lower() == "critical" else "Flex",
        instance_cpu=float(data.get("instanceCPU", 0) or 0),
        instance_memory_mb=float(data.get("instanceMemoryMB", 0) or 0),
        instance_disk_mb=float(data.get("instanceDiskMB", 0) or 0),
        instance_network_mbps=float(
            data.get("instanceNetworkMbs", data.get("instanceNetworkMbps", 0)) or 0
        ),
        instance_gpu=float(data.get("instanceGPU", 0) or 0),
        instance_count=int(data.get("instanceCount", 0) or 0),
    )
