"""The leadership's hands: every store write (with its epoch) and every command to a host.

The reconciler decides and this carries out: one method per action type, picked from a
table keyed by the action's type. Placement (placement.py), report handling (reports.py),
stuck clearing and migration reach the store and the hosts only through here, so the
rules of a write hold on every path: the epoch fences a deposed leader out, nothing
reaches a host while the session is suspended (`Term.guard`), a task's state never
moves backwards, not even when a write conflicts and is applied again (`save_task`), and
a write that calls for a host command (a launch, a kill) is never left without it: from
before the write until the command is handed to the driver it is the term's
`unsettled`, and a store error in between has both made again next time (`settle`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from titus.master import metrics as m
from titus.master import reconciler as rc
from titus.master.backoff import SystemBackoff
from titus.master.cluster import ClusterDriver, HostReport, HostView, Placement
from titus.master.cluster_config import schedulable
from titus.master.placement import PlacementMemo
from titus.master.reports import NOT_THROTTLED
from titus.master.scheduler import CapacityGroup, Scheduler
from titus.master.term import Paused, Term
from titus.master.view import LeaderView
from titus.model.job import Task
from titus.model.launch import TaskSpec
from titus.model.loadbalancer import load_balancers_of
from titus.model.states import JobState, TaskState, is_forward
from titus.store.base import LEADER_RECORD_META, Conflict, JobStore

log = logging.getLogger("titus.master")


def may_become(current: TaskState, new: TaskState) -> bool:
    """Whether a write may take a task in `current` to `new`: it stays where it is (a
    message, a move, its context) or goes forward (`is_forward`), never back."""
    return current == new or is_forward(current, new)


class Executor:
    """Carries out one term's actions; made with the term, dropped with it."""

    def __init__(
        self,
        term: Term,
        store: JobStore,
        driver: ClusterDriver,
        scheduler: Scheduler,
        clock: Callable[[], float],
        new_id: Callable[[], str],
        master_id: str,
    ) -> None:
        self.term = term
        self.master_id = master_id
        self.store = store
        self.driver = driver
        self.scheduler = scheduler
        self.clock = clock
        self.new_id = new_id
        #: How each reconciler action is carried out, by its type.
        self.handlers: dict[type[Any], Callable[[Any], None]] = {
            rc.CreateTask: self.create_task,
            rc.ArchiveTask: self.archive_task,
            rc.KillTask: self.kill_task,
            rc.FinishUnlaunched: self.finish_unlaunched,
            rc.FinishJob: self.finish_job,
        }

    # ---- what placement and reports read --------------------------------------------------
    @property
    def view(self) -> LeaderView:
        return self.term.view

    @property
    def memo(self) -> PlacementMemo:
        return self.term.placing

    @property
    def groups(self) -> dict[str, CapacityGroup]:
        return self.term.groups

    @property
    def backoff(self) -> SystemBackoff:
        return self.term.backoff

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def guard(self) -> None:
        self.term.guard()

    def touch(self, job_id: str) -> None:
        """Have the job reconciled in this iteration or the next."""
        self.term.touched.add(job_id)

    def schedulable(self, host: HostView) -> bool:
        return schedulable(host, self.term.instance_groups)

    # ---- hosts ----------------------------------------------------------------------------
    def hosts(self) -> list[HostView]:
        return self.driver.hosts()

    def wants_offers(self, pending: bool) -> None:
        self.driver.wants_offers(pending)

    def lost_hosts(self) -> set[str]:
        """The hosts the driver says are gone, and those whose tasks were not all ended
        yet (a store error cut in): the driver says it once."""
        self.term.lost_hosts |= self.driver.lost_hosts()
        return set(self.term.lost_hosts)

    def ended_host(self, host_id: str) -> None:
        """Every task of lost host `host_id` is ended."""
        self.term.lost_hosts.discard(host_id)

    def acknowledge(self, report: HostReport) -> None:
        self.driver.acknowledge(report)

    def kill_on_host(self, task_id: str, host_id: str | None, reason: str) -> None:
        self.guard()
        self.driver.kill(task_id, host_id, reason)

    def launch(self, placements: list[Placement]) -> None:
        """Send placements to hosts; held back (and sent on resume) while the session is
        suspended, dropped with the leadership if it is lost (the successor sends them)."""
        term = self.term
        if term.leadership is None or not term.leadership.can_act():
            term.held.extend(placements)
            raise Paused()
        self.driver.launch(placements)
        m.LAUNCHES.inc(len(placements))
        if term.first_launch_at is None:
            term.first_launch_at = self.clock()
            elected = term.elected_at if term.elected_at is not None else term.first_launch_at
            if term.elected_at is not None:
                m.FIRST_LAUNCH_SECONDS.set(term.first_launch_at - term.elected_at)
            log.info(
                "first launch after election at %.3f (%.3fs after elected)",
                term.first_launch_at,
                term.first_launch_at - elected,
            )
            self.record_election()

    def send_held(self) -> None:
        """Send what was held back while the session was suspended."""
        if self.term.held:
            held, self.term.held = self.term.held, []
            self.launch(held)

    def record_election(self) -> None:
        """Keep when this leadership began, was ready and first launched, in the store
        (operators and the failover benchmark read it)."""
        term = self.term
        record = {
            "epoch": term.epoch,
            "masterId": self.master_id,
            "electedAt": term.elected_at,
            "readyAt": term.ready_at,
            "firstLaunchAt": term.first_launch_at,
        }
        self.set_meta(LEADER_RECORD_META, json.dumps(record))

    # ---- store writes ---------------------------------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        self.store.set_meta(key, value, epoch=self.term.epoch)

    def put_scheduler_result(self, task_id: str, job_id: str, record: str) -> None:
        self.store.put_scheduler_result(task_id, job_id, record, epoch=self.term.epoch)

    def save_task(self, task: Task) -> Task:
        """Write a task and keep it in the view; what the store has now is returned.

        A write that would move the task back from where the view has it is not made. A
        conflict (the stored task changed since the view read it) applies the status and
        context again over the fresh copy, unless that would move the task back from
        where the store has it: then the fresh copy stands. Either way the caller sees in
        what is returned whether its write was taken."""
        current = self.view.get(task.id)
        if current is not None and self._refuses(current, task):
            return current
        epoch = self.term.epoch
        try:
            saved = self.store.update_task(task, epoch=epoch)
        except Conflict:
            fresh = self.store.get_task(task.id)
            if fresh is None:
                self.view.drop_task(task)
                raise
            if self._refuses(fresh, task):
                self.view.put_task(fresh)
                self.touch(fresh.jobId)
                return fresh
            update = {
                "status": task.status,
                "statusHistory": task.statusHistory,
                "taskContext": task.taskContext,
            }
            saved = self.store.update_task(fresh.model_copy(update=update), epoch=epoch)
        self.view.put_task(saved)
        return saved

    def save_tasks(self, tasks: list[Task]) -> list[Task]:
        """`save_task` for many at once, in one store write: what the store has now, in
        the order given. A task the store refuses as changed goes the single way (its
        conflict resolved as `save_task` resolves it)."""
        if not tasks:
            return []
        saved: dict[str, Task] = {}
        writable = []
        for task in tasks:
            current = self.view.get(task.id)
            if current is not None and self._refuses(current, task):
                saved[task.id] = current
            else:
                writable.append(task)
        for task, written in zip(
            writable, self.store.update_tasks(writable, epoch=self.term.epoch), strict=True
        ):
            if written is None:
                saved[task.id] = self.save_task(task)
            else:
                self.view.put_task(written)
                saved[task.id] = written
        return [saved[t.id] for t in tasks]

    @staticmethod
    def _refuses(current: Task, task: Task) -> bool:
        """Whether writing `task` over `current` would take it back (see may_become)."""
        if may_become(current.state, task.state):
            return False
        log.info("task %s is %s: not taking it back to %s", task.id, current.state, task.state)
        return True

    def forget_pending(self, task_id: str) -> None:
        if self.term.placing.failures.pop(task_id, None) is not None:
            self.store.delete_scheduler_result(task_id, epoch=self.term.epoch)

    def kill(self, task: Task, reason: str, message: str) -> None:
        """Mark the task as being killed, keeping `reason` for the status it ends with
        (the host reports a plain kill), and send the kill to its host."""
        self.guard()
        killing = task.with_status(TaskState.KILL_INITIATED, reason, message)
        killing.taskContext[rc.KILL_REASON] = reason
        job = self.view.jobs.get(task.jobId)
        if job is not None and load_balancers_of(job):
            self.term.targets_changed = True  # leave the target groups at the next pass
        self.write_and_kill(killing)

    def write_and_kill(self, task: Task) -> None:
        """Write `task` (being killed, or ended by the leader while its host may still run
        it) and send the kill to its host, with the status's reason. The write is
        unsettled until the kill is handed to the driver (see `settle`)."""
        self.guard()
        unsettled = self.term.unsettled
        unsettled[task.id] = task
        self.save_task(task)
        try:
            self.driver.kill(task.id, task.agent_id, task.status.reasonCode)
        finally:
            unsettled.pop(task.id, None)

    def place(self, tasks: list[Task]) -> list[Task]:
        """Write each task Launched (one store write) and send the ones the store took to
        their hosts; the store's copies, in the order given. The writes are unsettled
        until their launches are handed to the driver (or held while the session is
        suspended): a store error part-way through, even one hiding a write that did
        land, has them written and sent again next time (see `settle`). Their "why
        pending" summaries are deleted once the launches are out, so that a failure to
        delete one never holds a launch back."""
        unsettled = self.term.unsettled
        for task in tasks:
            unsettled[task.id] = task
        saved = self.save_tasks(tasks)
        placements = []
        for stored in saved:
            job = self.view.jobs.get(stored.jobId)
            if stored.state != TaskState.LAUNCHED or job is None or not stored.agent_id:
                continue  # the store had it move on meanwhile (killed): nothing to launch
            placements.append(Placement(TaskSpec.for_task(job, stored), stored.agent_id))
        try:
            if placements:
                self.launch(placements)
        finally:
            for task in tasks:
                unsettled.pop(task.id, None)
        for task in tasks:
            self.forget_pending(task.id)
        return saved

    def settle(self) -> None:
        """Make again the writes whose host command did not go out (a store error came
        between, or hid that the write landed), then send their commands.

        Each is written again as it was: where it had not landed it lands now, where it
        had, the write is refused as changed and `save_task` applies it again over the
        stored copy (the same state, so it stands). A conditional write on Cassandra
        also completes a compare-and-set that timed out, so the outcome read back is
        final. The commands are idempotent on the hosts."""
        unsettled = self.term.unsettled
        if not unsettled:
            return
        writes = list(unsettled.values())
        log.info("settling %d task writes whose host command did not go out", len(writes))
        launches = [t for t in writes if t.state == TaskState.LAUNCHED]
        if launches:
            self.place(launches)
        for task in writes:
            if task.state != TaskState.LAUNCHED:
                self.write_and_kill(task)

    # ---- reconciler actions ---------------------------------------------------------------
    def carry_out(self, actions: list[rc.Action]) -> None:
        for action in actions:
            self.handlers[type(action)](action)

    def create_task(self, action: rc.CreateTask) -> None:
        job = self.view.jobs[action.job_id]
        prior = action.resubmit_of
        system_delay = 0.0
        if prior is not None and prior.status.reasonCode not in NOT_THROTTLED:
            system_delay = self.backoff.delay(job.id)
        task = rc.new_task(job, action, rc.task_id_for(job, action), self.now_ms(), system_delay)
        try:
            saved = self.store.create_task(task, epoch=self.term.epoch)
        except Conflict:
            saved = self._made_already(task)
        self.view.put_task(saved)
        if prior is not None:
            self.store.archive_task(prior, epoch=self.term.epoch)
            self.view.drop_task(prior)

    def _made_already(self, task: Task) -> Task:
        """The task a create found under its name. Made by another leader of this job
        (a predecessor, after this one loaded), or by this one in an earlier try whose
        answer was lost: it is the task, and is taken as it is. A task of the past with
        that name (a service index started again at one job version): the new one gets
        a fresh name."""
        active = {t.id: t for t in self.store.list_tasks(task.jobId)}
        found = active.get(task.id)
        if found is not None:
            log.info("task %s exists already (an earlier create): taking it", task.id)
            return found
        fresh = self.new_id()
        ctx = dict(task.taskContext)
        if ctx.get(rc.ORIGINAL_ID) == task.id:
            ctx[rc.ORIGINAL_ID] = fresh
        renamed = task.model_copy(
            update={"id": fresh, "originalId": ctx[rc.ORIGINAL_ID], "taskContext": ctx}
        )
        return self.store.create_task(renamed, epoch=self.term.epoch)

    def archive_task(self, action: rc.ArchiveTask) -> None:
        self.store.archive_task(action.task, epoch=self.term.epoch)
        self.view.drop_task(action.task)
        self.forget_pending(action.task.id)

    def kill_task(self, action: rc.KillTask) -> None:
        message = action.message or f"kill requested ({action.reason})"
        self.kill(action.task, action.reason, message)

    def finish_unlaunched(self, action: rc.FinishUnlaunched) -> None:
        task = action.task
        self.save_task(task.with_status(TaskState.FINISHED, action.reason, action.message))
        self.forget_pending(task.id)
        self.touch(task.jobId)

    def finish_job(self, action: rc.FinishJob) -> None:
        """Write the job Finished, then archive it with its tasks. A job already Finished
        (its archive cut short by a store error or a leader's end) is archived only."""
        job = self.view.jobs[action.job.id]
        finished = job
        if job.status.state != JobState.FINISHED:
            finished = job.with_status(JobState.FINISHED, action.reason, action.message)
            try:
                finished = self.store.update_job(finished, epoch=self.term.epoch)
            except Conflict:
                fresh = self.store.get_job(job.id)
                if fresh is None or fresh.status.state != JobState.FINISHED:
                    if fresh is not None:
                        self.view.put_job(fresh)
                        self.touch(job.id)
                    return
                finished = fresh  # an earlier try's write landed, unheard: archive it
        self.store.archive_job(finished, epoch=self.term.epoch)
        for task_id in list(self.view.by_job.get(job.id, ())):
            self.forget_pending(task_id)
        self.view.drop_job(job.id)
        self.backoff.forget(job.id)
