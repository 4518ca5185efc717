"""The task tracker: which tasks the framework placed where, and what Mesos said of them.

- What runs where, and what it uses there: an offer shows only an agent's free resources,
  so the driver adds what its tasks use to tell an agent's total.
- Acknowledgements. Updates that carry a uuid must be acknowledged, and Mesos re-sends an
  update until it is: a terminal one is acknowledged only once the leader persisted it
  (`take_unacked`). Non-terminal ones are acknowledged on receipt, because Mesos holds a
  task's next update until the previous one is acknowledged, and losing one costs nothing:
  states only move forward and reconciliation tells the latest.
- Reconciliation. After every (re)subscription every task the store places on a host is
  asked about explicitly, again while unanswered; the first answers for all of them are
  what the leader reads as `actual()` (None until then). Then, and periodically, implicit
  reconciliation asks Mesos for everything it runs, which reveals tasks the store does not
  know (the leader kills them).
- Kills are remembered until the task ends and sent again after a resubscription.

The tracker decides; the driver sends. It is not locked itself: the driver calls it under
its one lock. One tracker serves one leadership.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from titus.master.mesos.translate import (
    RECONCILIATION,
    Usage,
    id_value,
    is_terminal,
    status_to_report,
)
from titus.model.launch import TaskReport
from titus.model.states import TASK_ON_HOST, TaskState
from titus.store.base import ActiveFacts

log = logging.getLogger("titus.master.mesos")

#: Terminal updates the leader never acknowledged are forgotten after this (seconds).
UNACKED_KEPT_SECONDS = 600.0
#: A time longer ago than any retry interval.
_NEVER = float("-inf")
_NOTHING = Usage()


@dataclass(frozen=True)
class Placed:
    """A task the driver believes is on an agent, and what it uses there."""

    agent_id: str
    usage: Usage = Usage()


@dataclass(frozen=True)
class UpdateOutcome:
    """What to do with one status update."""

    report: TaskReport
    agent_id: str
    #: Acknowledge the update now (else after the leader persisted it, or never).
    ack_now: bool
    #: Hand the report to the leader (answers of the first sync go to `actual()` instead).
    forward: bool
    #: The update answered the last task of the first sync: reconcile implicitly now.
    synced: bool


@dataclass(frozen=True)
class ReconcileDue:
    """Reconciliation to send now."""

    #: (task id, agent id) to ask about explicitly.
    explicit: list[tuple[str, str]]
    #: The first sync is done: ask for everything (implicit reconciliation).
    implicit: bool = False


class TaskTracker:
    """Tasks on agents, kills in flight, the first sync, updates awaiting acknowledgement."""

    def __init__(self, active: ActiveFacts | None = None) -> None:
        self._placed: dict[str, Placed] = {}
        # what the placed tasks use on each agent, kept as they come and go: the leader
        # asks for it on every look at the hosts, and summing every task each time cost
        # a big offer cycle a tenth of a second per look once thousands were placed
        self._used: dict[str, Usage] = {}
        self._counts: dict[str, int] = {}  # placed tasks per agent
        self._jobs: dict[str, str] = {}  # task id -> job id, for reports without data
        self._kills: dict[str, str] = {}  # task id -> agent id, sent again on resubscription
        # explicit reconciliation of the first sync: tasks asked for and not yet answered
        self._awaiting: dict[str, str] = {}
        self._actual: dict[str, list[TaskReport]] = {}
        self._synced = False
        self._reconcile_sent = _NEVER
        self._last_implicit = 0.0
        self._unacked: dict[int, tuple[TaskReport, dict[str, Any], float]] = {}
        if active is not None:
            self._load(active)

    def _load(self, active: ActiveFacts) -> None:
        """Tasks the store places on hosts: what explicit reconciliation asks about, and
        what counts as used on each agent."""
        resources = {job.id: job.jobDescriptor.container.resources for job in active.jobs}
        for row in active.tasks:
            if TaskState(row.state) in TASK_ON_HOST and row.agent_id:
                self._place(row.id, Placed(row.agent_id, Usage.of(resources.get(row.job_id))))
                self._jobs[row.id] = row.job_id

    # ---- what runs where ----------------------------------------------------------------
    def launched(self, task_id: str, job_id: str, agent_id: str, usage: Usage) -> None:
        self._place(task_id, Placed(agent_id, usage))
        self._jobs[task_id] = job_id

    def _place(self, task_id: str, placed: Placed) -> None:
        self._unplace(task_id)
        self._placed[task_id] = placed
        agent = placed.agent_id
        self._used[agent] = self._used.get(agent, _NOTHING) + placed.usage
        self._counts[agent] = self._counts.get(agent, 0) + 1

    def _unplace(self, task_id: str) -> None:
        placed = self._placed.pop(task_id, None)
        if placed is None:
            return
        agent = placed.agent_id
        left = self._counts.get(agent, 0) - 1
        if left <= 0:
            # the agent's last task: nothing used, and no rounding of the sums kept
            self._counts.pop(agent, None)
            self._used.pop(agent, None)
        else:
            self._counts[agent] = left
            self._used[agent] = self._used.get(agent, _NOTHING) - placed.usage

    def launch_failed(self, task_ids: Sequence[str]) -> None:
        """An ACCEPT that did not reach Mesos: ask about its tasks at once, they may or may
        not run (Mesos answers TASK_LOST for those it does not know)."""
        for task_id in task_ids:
            placed = self._placed.get(task_id)
            if placed is not None:
                self._awaiting.setdefault(task_id, placed.agent_id)
        self._reconcile_sent = _NEVER  # ask at once

    def used_by_agent(self) -> dict[str, Usage]:
        return dict(self._used)

    # ---- kills --------------------------------------------------------------------------
    def kill_requested(self, task_id: str, agent_id: str | None) -> None:
        self._kills[task_id] = agent_id or ""

    def kills(self) -> list[str]:
        """Tasks to kill again (after a resubscription)."""
        return list(self._kills)

    # ---- updates ------------------------------------------------------------------------
    def update(self, status: Mapping[str, Any], now: float) -> UpdateOutcome:
        """Fold one status update in: who runs what, the first sync, acknowledgement."""
        task_id = id_value(status.get("task_id"))
        placed = self._placed.get(task_id)
        agent_id = id_value(status.get("agent_id")) or (placed.agent_id if placed else "")
        report = status_to_report(status, self._jobs.get(task_id, ""))
        terminal = is_terminal(status)
        if terminal:
            self._unplace(task_id)
            self._kills.pop(task_id, None)
            self._jobs.pop(task_id, None)
        elif placed is None and task_id in self._jobs:
            self._place(task_id, Placed(agent_id))
        first_sync = (
            not self._synced
            and status.get("reason") == RECONCILIATION
            and task_id in self._awaiting
        )
        self._awaiting.pop(task_id, None)
        synced = False
        if first_sync:
            self._actual.setdefault(agent_id, []).append(report)
            if not self._awaiting:
                self._finish_sync(now)
                synced = True
        has_uuid = "uuid" in status
        if has_uuid and terminal and not first_sync:
            self._unacked[id(report)] = (report, dict(status), now)
        return UpdateOutcome(
            report=report,
            agent_id=agent_id,
            ack_now=has_uuid and (not terminal or first_sync),
            forward=not first_sync,
            synced=synced,
        )

    def take_unacked(self, report: TaskReport) -> dict[str, Any] | None:
        """The status to acknowledge now that the leader persisted its report, if any."""
        entry = self._unacked.pop(id(report), None)
        if entry is not None and entry[0] is report:
            return entry[1]
        return None

    def expire_unacked(self, now: float) -> None:
        """Terminal updates the leader never acknowledged (it ignored the report): Mesos
        sends them again on the next subscription, so forgetting them here loses nothing."""
        for key, (_, _, at) in list(self._unacked.items()):
            if now - at > UNACKED_KEPT_SECONDS:
                del self._unacked[key]

    def forget_unacked(self) -> None:
        self._unacked.clear()

    # ---- reconciliation -----------------------------------------------------------------
    def subscribed(self) -> None:
        """A (re)subscription: every task placed on an agent is asked about again."""
        for task_id, placed in self._placed.items():
            self._awaiting.setdefault(task_id, placed.agent_id)

    def reconcile_due(self, now: float, retry: float, force: bool = False) -> ReconcileDue | None:
        """Explicit reconciliation of every task still unanswered, at most every `retry`
        seconds unless forced (answers are not reliable: a master failing over drops them);
        with nothing left to ask before the first sync is done, the sync is done."""
        if not force and now - self._reconcile_sent < retry:
            return None
        self._reconcile_sent = now
        awaiting = list(self._awaiting.items())
        if not awaiting and not self._synced:
            self._finish_sync(now)
            return ReconcileDue([], implicit=True)
        if not awaiting:
            return None
        return ReconcileDue(awaiting)

    def implicit_due(self, now: float, interval: float) -> bool:
        """Periodic implicit reconciliation, once the first sync is done."""
        if self._synced and now - self._last_implicit >= interval:
            self._last_implicit = now
            return True
        return False

    def _finish_sync(self, now: float) -> None:
        """Every task the store placed is answered for: the leader may act on `actual`."""
        self._synced = True
        self._last_implicit = now
        log.info(
            "Mesos reconciliation done: %d tasks answered",
            sum(len(r) for r in self._actual.values()),
        )

    def actual(self) -> dict[str, list[TaskReport]] | None:
        if not self._synced:
            return None
        return {agent: list(reports) for agent, reports in self._actual.items()}
