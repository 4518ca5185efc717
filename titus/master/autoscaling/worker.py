"""The leader's autoscaling worker: one pass over every policy at a time, on a thread of
its own, so AWS and metric calls never hold up the leader's loop.

The loop hands it the facts of the jobs with policies every `autoscaling_interval_sec`
(the previous ones, if not taken yet, are dropped); the worker reads the policies (so
the loop never parses them), runs the executor, writes each policy's new state
(fenced by the leader's epoch, versioned so a user's newer change is never overwritten:
a conflict is decided again on the next pass), forgets policies Deleted for more than
DELETED_KEPT_SEC, and queues the sizes policies want for the loop to apply. Nothing it
holds outlives the term: a new leader starts a new worker from the store.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from titus.master import metrics as m
from titus.master.autoscaling.executor import LoopFacts, PolicyExecutor, ScaleRequest, Snapshot
from titus.master.latest import LatestWorker
from titus.model.autoscaling import PolicyRecord, PolicyState
from titus.store.base import Conflict, StaleEpoch, StoreError
from titus.store.roles import ScalingPolicies

log = logging.getLogger("titus.master")

#: A Deleted policy stays listed this long (clients see how it ended), then goes.
DELETED_KEPT_SEC = 3600.0
#: Scale requests waiting for the loop at most (older ones are dropped first).
MAX_QUEUED = 1000


class Autoscaler(LatestWorker[LoopFacts]):
    """Carries policies out on a thread of its own, on the latest facts the loop handed it;
    the scale changes it decides wait for the loop (`take_requests`)."""

    def __init__(
        self,
        make_executor: Callable[[], PolicyExecutor],
        store: ScalingPolicies,
        epoch: int,
        clock: Callable[[], float],
    ):
        """`make_executor` is called on the worker's thread, at its first pass: making
        one may look for AWS credentials, which must not hold up the leader's loop."""
        super().__init__()
        self.make_executor = make_executor
        self.executor: PolicyExecutor | None = None
        self.store = store
        self.epoch = epoch
        self.clock = clock
        self._requests: deque[ScaleRequest] = deque(maxlen=MAX_QUEUED)
        #: The jobs the last pass found policies for: the loop hands their facts next.
        self.job_ids: frozenset[str] = frozenset()
        #: The policies the last pass found (the loop forgets others' activity).
        self.policy_ids: frozenset[str] = frozenset()
        self.passes = 0
        self._start("autoscaler")

    def take_requests(self) -> list[ScaleRequest]:
        with self._cond:
            taken = list(self._requests)
            self._requests.clear()
        return taken

    def work(self, facts: LoopFacts) -> bool:
        started = time.monotonic()
        try:
            self.run_pass(facts)
            m.AUTOSCALING_PASS_SECONDS.observe(time.monotonic() - started)
        except StaleEpoch:
            log.warning("autoscaling worker stops: a newer leader writes")
            return False
        except Exception:
            log.exception("autoscaling pass failed")
        return True

    def run_pass(self, facts: LoopFacts) -> None:
        if self.executor is None:
            self.executor = self.make_executor()
        policies = self.store.list_scaling_policies()
        self.job_ids = frozenset(p.jobId for p in policies)
        self.policy_ids = frozenset(p.id for p in policies)
        ready: list[PolicyRecord] = []
        deferred: list[PolicyRecord] = []
        for policy in policies:
            unknown = policy.jobId in facts.active and policy.jobId not in facts.jobs
            (deferred if unknown else ready).append(policy)
        snapshot = Snapshot(ready, facts.jobs, facts.activity, facts.now, tuple(deferred))
        outcome = self.executor.run(snapshot)
        by_id = {r.id: r for r in snapshot.policies}
        for policy_id, (state, reason) in outcome.states.items():
            record = by_id.get(policy_id)
            if record is None or (record.state, record.reason) == (state, reason):
                continue
            self._save(record, state, reason, snapshot.now)
        for record in snapshot.policies:
            kept_since = record.updatedAt / 1000.0
            if record.state == PolicyState.DELETED and snapshot.now - kept_since > DELETED_KEPT_SEC:
                self.store.delete_scaling_policy(record.id, epoch=self.epoch)
        if outcome.scale:
            with self._cond:
                self._requests.extend(outcome.scale)
        self.passes += 1

    def _save(self, record: PolicyRecord, state: PolicyState, reason: str, now: float) -> None:
        update: dict[str, object] = {"state": state, "reason": reason}
        if state == PolicyState.DELETED:
            update["updatedAt"] = int(now * 1000)  # when it went, for DELETED_KEPT_SEC
        try:
            self.store.update_scaling_policy(record.model_copy(update=update), epoch=self.epoch)
        except Conflict:
            return  # its user changed it meanwhile: decided again on the next pass
        except StaleEpoch:
            raise
        except StoreError as exc:
            log.warning("scaling policy %s: state not saved (%s)", record.id, exc)
            return
        log.info("scaling policy %s of job %s: %s %s", record.id, record.jobId, state.value, reason)
