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

This module says when things happen; the parts say what: everything a leadership holds
in memory is its `Term` (term.py), made at election and dropped with it; every write and
host command goes through its `Executor` (executor.py); placement, host reports, stuck work
and migration are functions over the narrow protocols the executor satisfies.
"""

from __future__ import annotations

import gc
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from titus import collector
from titus.coord.base import Coordinator, Leadership
from titus.master import metrics as m
from titus.master import moves, placement, reports
from titus.master import reconciler as rc
from titus.master.autoscaling.apply import TermAutoscaling
from titus.master.autoscaling.executor import PolicyExecutor
from titus.master.autoscaling.factory import executor_factory
from titus.master.cluster import ClusterDriver, HostReport
from titus.master.cluster_config import read_capacity_groups, read_instance_groups
from titus.master.config import UNKNOWN_TASK_GRACE_SEC, MasterConfig
from titus.master.executor import Executor
from titus.master.health import replace_unhealthy
from titus.master.loadbalancers import (
    REGISTERED_META,
    TargetRegistrar,
    desired_targets,
    elbv2_client,
)
from titus.master.migration import migrate
from titus.master.scheduler import Scheduler
from titus.master.stuck import clear_stuck
from titus.master.term import LostLeadership, Paused, Term
from titus.master.view import LeaderView
from titus.model import disruption
from titus.model.job import Task
from titus.model.launch import TaskReport
from titus.model.states import TASK_ON_HOST, JobState, Reason, TaskState
from titus.store.base import (
    ActiveFacts,
    JobStore,
    KillRequest,
    MoveRequest,
    StaleEpoch,
    StoreUnavailable,
)
from titus.store.quarantine import decode_task

__all__ = [
    "UNKNOWN_TASK_GRACE_SEC",
    "LostLeadership",
    "Master",
    "MasterConfig",
    "Paused",
]

log = logging.getLogger("titus.master")

#: How often stuck work and phased-out hosts are looked at (seconds of the clock).
STUCK_CHECK_SEC = 1.0
MIGRATE_CHECK_SEC = 2.0


def new_task_id() -> str:
    return str(uuid.uuid4())


class StoreOutage:
    """Backoff, with full jitter, while the store does not answer the leader's loop."""

    FIRST_SEC = 0.2
    MAX_SEC = 5.0

    def __init__(self) -> None:
        self.failures = 0

    def wait(self, exc: Exception) -> float:
        self.failures += 1
        delay = random.uniform(0, min(self.MAX_SEC, self.FIRST_SEC * 2**self.failures))
        log.warning(
            "store unavailable (%s): leading on, next try in %.2f s (failure %d)",
            exc,
            delay,
            self.failures,
        )
        return delay

    def over(self) -> None:
        if self.failures:
            log.info("store answers again after %d failed iterations", self.failures)
        self.failures = 0


class Master:
    """Campaigns for leadership and, while it leads, runs the loop over one `Term`.

    `clock` (seconds since the epoch) is the only time its decisions read: when work is
    stuck, when a retry is due, when the backoff forgets, when the periodic checks run
    (only the durations reported as metrics are measured on the monotonic clock).
    `elapsed` (a monotonic clock) bounds how long a task has stayed in a passing state, so
    that a step of `clock` does not make every task look stuck (stuck.py).
    `new_id` names a task whose derived name (reconciler.task_id_for) a past task holds."""

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
        elapsed: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = new_task_id,
        elbv2: Callable[[], Any] | None = None,
        policy_executor: Callable[[], PolicyExecutor] | None = None,
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
        self.clock = clock
        self.elapsed = elapsed
        self.new_id = new_id
        self.elbv2 = elbv2 or elbv2_client(self.config.load_balancer_region)
        cfg = self.config
        self.policy_executor = policy_executor or executor_factory(
            cfg.autoscaling_executor,
            cfg.autoscaling_metrics,
            cfg.autoscaling_region,
            cfg.autoscaling_endpoint_url,
            store,
            target_window=cfg.autoscaling_target_window,
        )
        self._nudge = threading.Event()
        self._new_term(None)

    def _new_term(self, leadership: Leadership | None) -> None:
        """Drop the current term with everything it held; a new one starts from nothing."""
        old = getattr(self, "term", None)
        if old is not None and old.registrar is not None:
            old.registrar.stop()
        if old is not None and old.autoscaling is not None:
            old.autoscaling.stop()
        collector.release()  # what `_load` froze may be garbage now
        self.term = Term.begin(leadership, self.config, self.clock)
        if leadership is not None:
            self.term.autoscaling = TermAutoscaling(
                self.store,
                self.policy_executor,
                self.config.autoscaling_interval,
                self.clock,
                self.elapsed,
                max_active_tasks=self.config.max_active_tasks,
            )
        self.executor = Executor(
            self.term,
            self.store,
            self.driver,
            self.scheduler,
            self.clock,
            self.new_id,
            self.master_id,
        )

    @property
    def leadership(self) -> Leadership | None:
        return self.term.leadership

    @leadership.setter
    def leadership(self, leadership: Leadership | None) -> None:
        """Taking a leadership (or giving it up) starts a new term."""
        self._new_term(leadership)

    @property
    def view(self) -> LeaderView:
        return self.term.view

    @property
    def ready_at(self) -> float | None:
        return self.term.ready_at

    @property
    def epoch(self) -> int:
        return self.term.epoch

    def guard(self) -> None:
        self.term.guard()

    def save_task(self, task: Task) -> Task:
        return self.executor.save_task(task)

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
                self._new_term(None)
                if not stop.is_set():
                    stop.wait(1.0)

    def begin(self, leadership: Leadership) -> ActiveFacts:
        """Start a term: claim its epoch in the store (fencing out any older leader) and
        load the active state; the facts read, for the driver."""
        self._new_term(leadership)
        self.term.elected_at = self.clock()
        stored = self.store.current_epoch()
        if leadership.epoch <= stored:
            # coordination counts anew (its data was reset, or another ensemble): an epoch
            # the store already saw would make every write of this leader stale; one above
            # the store's fences out all earlier leaders just the same
            log.warning(
                "coordination's epoch %d is not above the store's %d: leading with epoch %d",
                leadership.epoch,
                stored,
                stored + 1,
            )
            leadership.epoch = stored + 1
        self.store.claim_epoch(leadership.epoch)
        return self._load()

    def sync_hosts(self, actual: dict[str, list[TaskReport]] | None) -> None:
        """After election: make store and hosts agree (see reports.reconcile_actual); the
        launches the old leader decided but no host received go out with the next
        iteration. The term is ready to act then."""
        term = self.term
        relaunch = reports.reconcile_actual(self.executor, actual, self.config.unknown_task_grace)
        term.reconciled_actual = True
        if relaunch:
            log.info("sending %d launches the previous leader did not deliver", len(relaunch))
            term.held.extend(relaunch)
        term.ready_at = self.clock()
        if term.elected_at is not None:
            m.FAILOVER_SECONDS.set(term.ready_at - term.elected_at)
        self.executor.record_election()

    def lead(self, leadership: Leadership, stop: threading.Event) -> None:
        self.driver.start(leadership, self.begin(leadership))
        feeders = [
            threading.Thread(target=self._feed_wakes, args=(leadership, stop), daemon=True),
            threading.Thread(target=self._feed_reports, args=(leadership, stop), daemon=True),
        ]
        for t in feeders:
            t.start()
        deadline = self.clock() + self.config.actual_sync_timeout
        outage = StoreOutage()
        while not stop.is_set() and leadership.is_leader:
            if not leadership.can_act():
                m.IS_LEADER.set(0)
                stop.wait(0.05)
                continue
            m.IS_LEADER.set(1)
            try:
                if not self.term.reconciled_actual:
                    actual = self.driver.actual_tasks()
                    if actual is None and self.clock() < deadline:
                        stop.wait(0.02)
                        continue
                    self.sync_hosts(actual)
                self.iterate()
                outage.over()
            except Paused:
                log.info("coordination session suspended: not acting until it returns")
                continue
            except StoreUnavailable as exc:
                # ridden out in this term: what is in memory stays right (the view changes
                # only after the store took a write), reports wait in the inbox, writes
                # whose host command did not go out are made again first (`settle`)
                stop.wait(outage.wait(exc))
                continue
            self._nudge.wait(self.config.loop_interval)
            self._nudge.clear()
        if not leadership.is_leader:
            raise LostLeadership("coordination session lost")

    def receive(self, host_reports: list[HostReport]) -> None:
        """Host reports for the loop to fold into the store at its next iteration."""
        self.term.inbox.add(host_reports)
        self._nudge.set()

    def _feed_wakes(self, leadership: Leadership, stop: threading.Event) -> None:
        while not stop.is_set() and leadership.is_leader:
            if self.coord.wait_wake(1.0):
                self._nudge.set()

    def _feed_reports(self, leadership: Leadership, stop: threading.Event) -> None:
        inbox = self.term.inbox  # this term's: reports never reach a later term
        while not stop.is_set() and leadership.is_leader:
            host_reports = self.driver.take_reports(1.0)
            if host_reports:
                inbox.add(host_reports)
                self._nudge.set()

    def _load(self) -> ActiveFacts:
        """Read the active state into the term's view; the facts read, for the driver.

        The cyclic garbage collector is held off while it runs: the load creates millions
        of long-lived objects (task ids, facts, index entries), and each generation-0
        overflow would otherwise rescan the growing older generations again and again, for
        nothing (none of it is garbage). Once loaded, they are frozen out of the
        collector's sight for the leadership (unfrozen when it ends), so later full
        collections do not walk a million tasks' facts either."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._load_view()
        finally:
            collector.freeze()
            if enabled:
                gc.enable()

    def _load_view(self) -> ActiveFacts:
        started = time.monotonic()
        view = self.term.view
        facts = self.store.load_active_facts()
        for job in facts.jobs:
            view.put_job(job)
        view.load(facts.tasks_by_job, self.store)
        jobs, tasks = len(facts.jobs), sum(map(len, facts.tasks_by_job.values()))
        self.term.touched = {job_id for job_id in view.jobs if self._needs_reconcile(job_id)}
        saved = self.store.get_meta(disruption.DISRUPTIONS_META)
        self.term.disrupted = disruption.decode(saved, view.jobs)
        self.term.disruptions_saved = saved or ""
        took = time.monotonic() - started
        m.LOAD_SECONDS.set(took)
        log.info(
            "loaded %d jobs and %d tasks in %.3fs; %d jobs need reconciling",
            jobs,
            tasks,
            took,
            len(self.term.touched),
        )
        return facts

    def _needs_reconcile(self, job_id: str) -> bool:
        """Whether the job's tasks, as the indexes see them, may call for an action: a
        finished task to follow up, a job being killed, or the wrong number of tasks (which
        a disabled service job keeps, as the reconciler leaves it alone).
        Cheap (no task parsed), so the start-up and the sweep can ask it of every job."""
        view = self.view
        job = view.jobs.get(job_id)
        if job is None:
            return False
        if job.status.state != JobState.ACCEPTED:
            return True
        ids = view.by_job.get(job_id, set())
        if ids & view.finished:
            return True
        d = job.jobDescriptor
        if d.batch is not None:
            return len(ids) < d.batch.size
        if d.service is not None:
            if not d.service.enabled:
                return False  # nothing to create, replace or scale until it is enabled
            return view.live_count(job_id) != d.service.capacity.desired
        return False

    # ---- one iteration ------------------------------------------------------------------
    def iterate(self) -> None:
        started = time.monotonic()
        term, act = self.term, self.executor
        term.guard()
        act.send_held()
        act.settle()
        self._apply_reports()
        reports.apply_lost_hosts(act)
        self._pick_up_user_changes()
        if not term.requests_recovered:
            self._recover_requests()
        self._send_claims()
        self._refresh_cluster_config()
        self._sweep()
        touched, term.touched = list(term.touched), set()
        for i, job_id in enumerate(touched):
            job = term.view.jobs.get(job_id)
            if job is None:
                continue
            tasks = term.view.tasks_of(job_id)
            if job_id in term.view.unreadable:
                # acting on part of a job's tasks could run one twice: wait for an operator
                log.error(
                    "job %s not reconciled: its task %s cannot be read (quarantined)",
                    job_id,
                    term.view.unreadable[job_id],
                )
                continue
            try:
                act.carry_out(rc.reconcile_job(job, tasks))
            except (Paused, StoreUnavailable):
                term.touched.update(touched[i:])  # decided again once the session is back
                raise
        self._clear_stuck()
        self._migrate()
        self._load_balancers()
        if term.autoscaling is not None:
            term.autoscaling.tick(term.view, term.epoch, term.touched)
        placement.schedule(act)
        m.ITERATION_SECONDS.observe(time.monotonic() - started)

    def _sweep(self) -> None:
        """Check a slice of all jobs each iteration, so each is checked once per period."""
        term = self.term
        now = self.clock()
        elapsed, term.last_sweep = now - term.last_sweep, now
        if not term.sweep_queue:
            term.sweep_queue = list(term.view.jobs)
        share = math.ceil(len(term.view.jobs) * elapsed / max(self.config.sweep_period, 0.1))
        for _ in range(min(max(share, 0), len(term.sweep_queue))):
            job_id = term.sweep_queue.pop()
            if self._needs_reconcile(job_id):
                term.touched.add(job_id)

    # ---- host reports -------------------------------------------------------------------
    def _apply_reports(self) -> None:
        inbox = self.term.inbox
        taken = inbox.take()
        try:
            # the documents of the reported tasks not read yet, in one read, not one each
            self.view.prefetch(hr.report.taskId for hr in taken)
        except StoreUnavailable:
            inbox.put_back(taken)
            raise
        for i, hr in enumerate(taken):
            try:
                reports.apply_report(self.executor, hr)
            except (Paused, StoreUnavailable):
                # not lost: applied once the session, or the store, is back
                inbox.put_back(taken[i:])
                raise

    def _send_claims(self) -> None:
        """Tell each agent that (re)joined which tasks the store places on it, so that it
        kills the containers it adopted whose tasks ended or moved while it was away; and
        send again the kills of tasks being killed there (a kill sent while the agent was
        down is lost). Drivers without claims (Mesos reconciles by itself) name no host."""
        if not self.term.reconciled_actual:
            return
        due = self.driver.claims_due()
        if not due:
            return
        self.guard()
        view = self.view
        for host_id in due:
            owned = []
            for task_id in view.on_host(host_id):
                state = view.state(task_id)
                if state not in TASK_ON_HOST:
                    continue
                owned.append(task_id)
                if state == TaskState.KILL_INITIATED:
                    task = view.get(task_id)
                    reason = (
                        task.taskContext.get(rc.KILL_REASON) if task else None
                    ) or Reason.KILLED
                    self.driver.kill(task_id, host_id, reason)
            log.info("claiming %d tasks on agent %s", len(owned), host_id)
            self.driver.claim(host_id, owned)

    # ---- user changes -------------------------------------------------------------------
    def _pick_up_user_changes(self) -> None:
        """Read again the jobs users changed (their dirty marks). Marks are taken from the
        store before the jobs are read: the ones a store error or a suspended session
        left unread stay with the term and are read first next time."""
        term = self.term
        dirty = list(dict.fromkeys([*term.dirty, *self.store.take_dirty()]))
        term.dirty = []
        for i, job_id in enumerate(dirty):
            try:
                self._pick_up_job(job_id)
            except (Paused, StoreUnavailable):
                term.dirty = dirty[i:]
                raise

    def _pick_up_job(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if job is None or job.status.state == JobState.FINISHED:
            return
        view = self.view
        view.put_job(job)
        stuck = view.unreadable.get(job_id)
        if stuck is not None:
            # set aside or repaired by an operator since (the API's /api/v3/quarantine)?
            raw = self.store.raw_record("task", stuck)
            repaired = decode_task(raw, stuck) if raw is not None else None
            if raw is None or repaired is not None:
                view.settle_unreadable(job_id, stuck, repaired)
        for task in self.store.list_tasks(job_id):
            mine = view.parsed(task.id)  # one not read yet is taken as listed
            if mine is None or task.version > mine.version:
                view.put_task(task)
        for request in self.store.list_kill_requests(job_id):
            self._apply_kill_request(request)
        for move in self.store.list_move_requests(job_id):
            self._apply_move_request(move)
        self.term.touched.add(job_id)

    def _apply_kill_request(self, request: KillRequest) -> None:
        task = self.view.get(request.task_id)
        if task is not None and task.state != TaskState.FINISHED:
            if request.eviction:
                self._evict(task, request)
            else:
                action = rc.kill_or_finish(task, request.reason, request.message)
                if action is not None:
                    self.executor.carry_out([action])
        self.store.delete_kill_request(request, epoch=self.epoch)

    def _evict(self, task: Task, request: KillRequest) -> None:
        """An eviction the API let through, checked again with every disruption known:
        carried out and counted while the budget allows, else dropped with a warning."""
        job = self.view.jobs.get(task.jobId)
        now = int(self.clock() * 1000)
        history = disruption.recent(self.term.disrupted, task.jobId, now)
        if job is None or task.state != TaskState.STARTED:
            return
        allowed = disruption.job_quota(job, self.view.tasks_of(job.id), history, now)
        if allowed.allowed <= 0:
            log.warning("eviction of task %s dropped: %s", task.id, allowed.reason)
            return
        self.executor.kill(task, request.reason, request.message)
        history.append(now)

    def _recover_requests(self) -> None:
        """Once per leadership: carry out the kills and moves a predecessor left queued.
        The dirty marks that announced them may have been taken (and lost) with it.
        Done once all are carried out: a store error part-way has them all looked at
        again next time (carrying out a request again is harmless)."""
        kills = self.store.list_all_kill_requests()
        queued = self.store.list_all_move_requests()
        for kill in kills:
            if kill.job_id in self.view.jobs:
                self._apply_kill_request(kill)
        for move in queued:
            self._apply_move_request(move)
        self.term.requests_recovered = True

    def _apply_move_request(self, request: MoveRequest) -> None:
        moves.apply_move_request(request, self.view, self.store, self.epoch, self.term.touched)

    # ---- cluster configuration: capacity groups, instance groups ------------------------
    def _refresh_cluster_config(self) -> None:
        term = self.term
        now = self.clock()
        if now - term.last_config < self.config.cluster_config_refresh:
            return
        term.last_config = now
        instance_groups = read_instance_groups(self.store)
        if instance_groups is not None:
            term.instance_groups = instance_groups
        capacity_groups = read_capacity_groups(self.store)
        if capacity_groups is not None:
            term.groups = capacity_groups

    # ---- stuck work, phased-out hosts ----------------------------------------------------
    def _clear_stuck(self) -> None:
        term = self.term
        now = self.clock()
        if now - term.last_stuck < STUCK_CHECK_SEC or not term.view.transitional:
            return
        term.last_stuck = now
        clear_stuck(
            self.executor, self.config.stuck, term.stuck_limiter, term.stuck_ages, self.elapsed()
        )

    def _load_balancers(self) -> None:
        """Hand the registrar the targets the view wants, every load_balancer_interval and
        at once when a task of a job with target groups is being killed, so it leaves
        them while its container stops."""
        term = self.term
        interval = self.config.load_balancer_interval
        now = self.elapsed()
        due = now - term.last_load_balancers >= interval or term.targets_changed
        if interval <= 0 or not due:
            return
        term.last_load_balancers, term.targets_changed = now, False
        desired = desired_targets(self.view)
        if term.registrar is None:
            saved = self.store.get_meta(REGISTERED_META)
            if not desired and not saved:
                return
            executor = self.executor
            term.registrar = TargetRegistrar(
                self.elbv2, lambda record: executor.set_meta(REGISTERED_META, record), saved
            )
        term.registrar.want(desired)

    def _migrate(self) -> None:
        term = self.term
        now = self.clock()
        if now - term.last_migrate < MIGRATE_CHECK_SEC:
            return
        term.last_migrate = now
        term.migrating = migrate(
            self.executor,
            term.migrating,
            term.instance_groups,
            self.config.migrate_at_once,
            term.disrupted,
            int(now * 1000),
            term.relocation_wanted,
            int(self.config.self_managed_timeout * 1000),
        )
        replace_unhealthy(self.executor, term.disrupted, int(now * 1000), term.health_checked)
        record = disruption.encode(term.disrupted, int(now * 1000))
        if record != term.disruptions_saved:
            self.executor.set_meta(disruption.DISRUPTIONS_META, record)
            term.disruptions_saved = record
