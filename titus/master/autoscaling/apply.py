"""The leader's side of autoscaling, for one term: every `autoscaling_interval_sec` it
hands the worker the facts of the jobs its last pass found policies for (from the view's
index: no task is parsed) and when each policy last scaled, and at every iteration it
writes the sizes policies asked for. The worker, not the loop, reads the policies.

A size is written as a user's resize would be (model.scaling.scaled_job: within min and
max, processes respected, never for a disabled or dying job), with the leader's epoch,
and leaves a line in the job's status history naming the policy and why. When each
policy last scaled is kept in the store (leader meta), so a new leader honours the
cooldowns its predecessor started.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace

from titus.master import metrics as m
from titus.master.autoscaling.executor import (
    Activity,
    JobFacts,
    LoopFacts,
    PolicyExecutor,
    ScaleRequest,
)
from titus.master.autoscaling.worker import Autoscaler
from titus.master.view import LeaderView
from titus.model.autoscaling import PolicyRecord
from titus.model.job import Capacity, Job
from titus.model.scaling import scaled_job
from titus.model.states import JobState, TaskState
from titus.store.base import Conflict, JobStore

log = logging.getLogger("titus.master")

ACTIVITY_META = "autoscalingActivity"


def facts_of(view: LeaderView, job_ids: set[str]) -> dict[str, JobFacts]:
    out: dict[str, JobFacts] = {}
    for job_id in job_ids:
        job = view.jobs.get(job_id)
        service = job.jobDescriptor.service if job is not None else None
        if job is None or service is None:
            continue
        # the view's index, not its tasks: no task document is parsed for this
        started = tuple(
            t for t in view.by_job.get(job_id, ()) if view.state(t) == TaskState.STARTED
        )
        out[job_id] = JobFacts(
            job_id=job_id,
            capacity=Capacity.model_construct(
                min=service.capacity.min,
                desired=service.capacity.desired,
                max=service.capacity.max,
            ),
            active=job.status.state == JobState.ACCEPTED,
            enabled=service.enabled,
            started=started,
        )
    return out


def decode_activity(text: str | None) -> dict[str, Activity]:
    if not text:
        return {}
    try:
        raw = json.loads(text)
        return {str(k): Activity(float(v[0]), str(v[1])) for k, v in dict(raw).items()}
    except (ValueError, TypeError, IndexError) as exc:
        log.warning("the stored autoscaling activity is unreadable: %s", exc)
        return {}


def encode_activity(activity: dict[str, Activity]) -> str:
    return json.dumps(
        {k: [a.at, a.direction] for k, a in sorted(activity.items())}, separators=(",", ":")
    )


class TermAutoscaling:
    def __init__(
        self,
        store: JobStore,
        make_executor: Callable[[], PolicyExecutor],
        interval: float,
        clock: Callable[[], float],
        elapsed: Callable[[], float],
        max_active_tasks: int | None = None,
    ):
        self.store = store
        self.max_active_tasks = max_active_tasks
        self.make_executor = make_executor
        self.interval = interval
        self.clock = clock
        self.elapsed = elapsed
        self.last = float("-inf")
        self.worker: Autoscaler | None = None
        self.activity: dict[str, Activity] | None = None

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def tick(self, view: LeaderView, epoch: int, touched: set[str]) -> None:
        if self.worker is not None:
            self._apply(self.worker.take_requests(), view, epoch, touched)
        now = self.elapsed()
        if self.interval <= 0 or now - self.last < self.interval:
            return
        self.last = now
        if self.worker is None:
            if not self.store.list_scaling_policies():
                return  # no policy anywhere: no worker
            self.activity = decode_activity(self.store.get_meta(ACTIVITY_META))
            self.worker = Autoscaler(self.make_executor, self.store, epoch, self.clock)
        assert self.activity is not None
        if self.worker.passes:  # policies gone since: their cooldowns are of no use
            kept = self.worker.policy_ids
            self.activity = {k: v for k, v in self.activity.items() if k in kept}
        jobs = facts_of(view, set(self.worker.job_ids))
        facts = LoopFacts(jobs, frozenset(view.jobs), dict(self.activity), self.clock())
        self.worker.want(facts)

    def _apply(
        self, requests: list[ScaleRequest], view: LeaderView, epoch: int, touched: set[str]
    ) -> None:
        changed = False
        demand: int | None = None  # tasks active jobs want, summed once if a cap applies
        for request in requests:
            job = view.jobs.get(request.job_id)
            if job is None:
                continue
            before = job.jobDescriptor.service.capacity.desired if job.jobDescriptor.service else 0
            if request.desired > before and self.max_active_tasks is not None:
                if demand is None:
                    demand = sum(j.jobDescriptor.task_demand for j in view.jobs.values())
                capped = self._capped(request, before, demand)
                if capped is None:
                    continue
                request = capped
            saved = self._scale(job, request, epoch)
            if saved is None:
                continue
            view.put_job(saved)
            touched.add(saved.id)
            after = (
                saved.jobDescriptor.service.capacity.desired if saved.jobDescriptor.service else 0
            )
            direction = "out" if after > before else "in"
            if demand is not None:
                demand += after - before
            m.AUTOSCALING_SCALINGS.labels(direction=direction).inc()
            assert self.activity is not None
            self.activity[request.policy_id] = Activity(self.clock(), direction)
            changed = True
            log.info(
                "job %s: desired %d -> %d by scaling policy %s (%s)",
                saved.id,
                before,
                after,
                request.policy_id,
                request.why,
            )
        if changed and self.activity is not None:
            self.store.set_meta(ACTIVITY_META, encode_activity(self.activity), epoch=epoch)

    def _capped(self, request: ScaleRequest, before: int, demand: int) -> ScaleRequest | None:
        """A scale-out held to the platform's maxActiveTasks (what the API's admission
        applies to a user's resize); None when nothing is left under it."""
        assert self.max_active_tasks is not None
        room = self.max_active_tasks - demand
        if request.desired - before <= room:
            return request
        if room <= 0:
            log.info(
                "scaling policy %s did not scale out: limit maxActiveTasks (%d) reached",
                request.policy_id,
                self.max_active_tasks,
            )
            return None
        why = f"{request.why}; held to {before + room} by maxActiveTasks ({self.max_active_tasks})"
        return replace(request, desired=before + room, why=why)

    def _scale(self, job: Job, request: ScaleRequest, epoch: int) -> Job | None:
        scaled = scaled_job(job, request.desired, request.policy_id, request.why)
        if isinstance(scaled, str):
            log.info("scaling policy %s did not scale: %s", request.policy_id, scaled)
            return None
        try:
            return self.store.update_job(scaled, epoch=epoch)
        except Conflict:
            log.info("job %s changed meanwhile: policy %s decides again", job.id, request.policy_id)
            return None


__all__ = ["ACTIVITY_META", "PolicyRecord", "TermAutoscaling", "facts_of"]
