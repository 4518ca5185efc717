"""The Mesos cluster driver: the leader as a Mesos framework, placing tasks on offers.

`MesosDriver` implements the leader's ClusterDriver protocol by composing the parts of this
package, each one concern:

- translate.py: pure mapping between Mesos's wire format and the leader's terms;
- offers.py: the offers held, declined, rescinded, suppressed and revived;
- tasks.py: what runs where, acknowledgements, explicit and implicit reconciliation;
- connection.py: the pymesos driver's lifecycle, the calls worker, reconnecting, the
  framework id in the store;
- accepts.py: ACCEPTs sent several at once beside pymesos, every other call after them;
- scheduler.py: the thin adapter pymesos calls back, turning callbacks into typed calls.

The driver holds the one lock the book and the tracker are used under, hears the
adapter's cluster events and the connection's changes, and sends what the parts decide.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from titus.coord.base import Leadership
from titus.master.cluster import HostReport, HostView, Placement, take_reports
from titus.master.mesos.accepts import Accept
from titus.master.mesos.config import MesosConfig
from titus.master.mesos.connection import Call, Connection
from titus.master.mesos.offers import OfferBook, OfferCycle
from titus.master.mesos.scheduler import SchedulerDriver
from titus.master.mesos.tasks import ReconcileDue, TaskTracker
from titus.master.mesos.translate import (
    Executor,
    HostDefaults,
    SpecData,
    Usage,
    ack_body,
    fit,
    host_view,
    ids,
    parse_offer,
    reconcile_body,
    refused_report,
    task_info,
)
from titus.model.launch import TaskReport
from titus.settings import Settings
from titus.store.base import ActiveFacts, JobStore

log = logging.getLogger("titus.master.mesos")

_NOTHING = Usage()


class MesosDriver:
    """The ClusterDriver on Mesos. See the package docstring for what it guarantees."""

    def __init__(
        self,
        store: JobStore,
        config: MesosConfig,
        *,
        driver_factory: Callable[..., SchedulerDriver] | None = None,
    ):
        self.store = store
        self.config = config
        self._lock = threading.RLock()
        self.connection = Connection(store, config, self._lock, self, self, driver_factory)
        self.master = self.connection.master
        self.offer_book = OfferBook()
        self.tracker = TaskTracker()
        self._reports: queue.Queue[HostReport] = queue.Queue()
        self._host_defaults = HostDefaults(config.network_mbps, config.ip_slots)

    @classmethod
    def from_settings(cls, settings: Settings, store: JobStore) -> MesosDriver:
        return cls(store, MesosConfig.from_settings(settings))

    @property
    def framework_id(self) -> str | None:
        return self.connection.framework_id

    @property
    def connected(self) -> bool:
        return self.connection.connected

    @property
    def cycles(self) -> list[OfferCycle]:
        """Recent offer cycles (newest last), for the benchmark and operators' logs."""
        return self.offer_book.cycles

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, leadership: Leadership, active: ActiveFacts) -> None:
        """Subscribe as the stored framework (or a new one) and begin the first sync."""
        with self._lock:
            self.offer_book.reset()
            self.tracker = TaskTracker(active)
        self.connection.start(leadership.epoch)

    def stop(self) -> None:
        """Step down: disconnect without tearing the framework down, so its tasks keep
        running for the next leader."""
        self.connection.stop()
        with self._lock:
            self.offer_book.drop_all()
            self.tracker.forget_unacked()
        while not self._reports.empty():
            self._reports.get_nowait()

    # ---- sending ------------------------------------------------------------------------
    def _submit(self, what: str, run: Callable[[SchedulerDriver], None]) -> None:
        self.connection.submit(Call(what, run))

    def _decline(self, offer_ids: list[str]) -> None:
        body = ids(offer_ids)
        filters = {"refuse_seconds": self.config.refuse_seconds}
        with self._lock:
            self.offer_book.answered(declined=len(offer_ids))
        self._submit("decline", lambda d: d.declineOffer(body, filters))

    def _ack(self, status: dict[str, Any]) -> None:
        body = ack_body(status)
        self._submit("acknowledge", lambda d: d.acknowledgeStatusUpdate(body))

    def _kill(self, task_id: str) -> None:
        self._submit(f"kill {task_id}", lambda d: d.killTask({"value": task_id}))

    def _reconcile(self, due: ReconcileDue) -> None:
        if due.explicit:
            tasks = reconcile_body(due.explicit)
            log.info("reconciling %d tasks with Mesos", len(tasks))
            self._submit("reconcile", lambda d: d.reconcileTasks(tasks))
        if due.implicit:
            self._submit("reconcile", lambda d: d.reconcileTasks([]))

    def _reconcile_explicit(self, force: bool = False) -> None:
        with self._lock:
            if not self.connection.connected:
                return
            due = self.tracker.reconcile_due(time.monotonic(), self.config.reconcile_retry, force)
        if due is not None:
            self._reconcile(due)

    # ---- the connection's changes (ConnectionListener) ----------------------------------
    def on_subscribing(self) -> None:
        self.offer_book.subscribed()
        self.tracker.subscribed()

    def on_connected(self) -> None:
        # refusal filters outlive a failover: ask for everything again
        self._submit("revive", lambda d: d.reviveOffers())
        for task_id in self.tracker.kills():
            self._kill(task_id)
        self._reconcile_explicit(force=True)

    def on_connection_lost(self) -> None:
        self.offer_book.drop_all()

    def on_tick(self, now: float) -> None:
        with self._lock:
            stale = self.offer_book.take_stale(now, self.config.offer_hold_seconds)
        if stale:
            self._decline(stale)
        self._reconcile_explicit()
        with self._lock:
            implicit = self.tracker.implicit_due(now, self.config.reconcile_interval)
            self.tracker.expire_unacked(now)
        if implicit:
            self._reconcile(ReconcileDue([], implicit=True))

    # ---- cluster events (ClusterEvents, pymesos's thread) -------------------------------
    def on_offers(self, offers: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        parsed = [parse_offer(o, now) for o in offers]
        with self._lock:
            decline = self.offer_book.receive(parsed, now)
            if decline:
                # queued under the lock, as wants_offers queues a REVIVE: a DECLINE decided
                # before work arrived never reaches Mesos after the REVIVE that work sent,
                # which would leave the agents refused (refuse_seconds) with work pending
                self._decline(decline)

    def on_rescind(self, offer_id: str) -> None:
        with self._lock:
            self.offer_book.rescind(offer_id)

    def on_status(self, status: dict[str, Any]) -> None:
        with self._lock:
            outcome = self.tracker.update(status, time.monotonic())
        if outcome.ack_now:
            self._ack(status)
        if outcome.synced:
            self._reconcile(ReconcileDue([], implicit=True))
        if outcome.forward:
            self._reports.put(HostReport(outcome.agent_id, outcome.report))

    def on_agent_lost(self, agent_id: str) -> None:
        with self._lock:
            self.offer_book.agent_lost(agent_id)
        log.warning("Mesos agent %s is gone; its tasks are lost", agent_id)

    def on_executor_lost(self, executor_id: str, agent_id: str, status: Any) -> None:
        # one executor per task: it ends with its task, and its task's update says how
        log.info("executor %s on agent %s ended (wait status %s)", executor_id, agent_id, status)

    # ---- the driver protocol ------------------------------------------------------------
    def hosts(self) -> list[HostView]:
        with self._lock:
            used = self.tracker.used_by_agent()
            return [
                host_view(agent_id, offers, used.get(agent_id, _NOTHING), self._host_defaults)
                for agent_id, offers in self.offer_book.by_agent().items()
            ]

    def launch(self, placements: Sequence[Placement]) -> None:
        by_host: dict[str, list[Placement]] = {}
        for p in placements:
            by_host.setdefault(p.host_id, []).append(p)
        executor = Executor.of(self.config)
        data = SpecData()
        for agent_id, group in by_host.items():
            with self._lock:
                offers = self.offer_book.take_agent(agent_id)
                placed = fit(agent_id, offers, [p.spec for p in group])
                for spec, need in placed.accepted:
                    self.tracker.launched(spec.taskId, spec.jobId, agent_id, need)
            # built outside the lock: status updates need not wait for the encoding
            infos = [
                task_info(spec, agent_id, need, executor, data) for spec, need in placed.accepted
            ]
            for spec, why in placed.refused:
                self._reports.put(HostReport(agent_id, refused_report(spec, why)))
            if not offers:
                continue
            if not infos:
                self._decline([o.id for o in offers])
                continue
            self._accept([o.id for o in offers], infos)

    def _accept(self, offer_ids: list[str], infos: list[dict[str, Any]]) -> None:
        """ACCEPT with LAUNCH of the task infos; the unused rest is refused for a while."""
        body = ids(offer_ids)
        filters = {"refuse_seconds": self.config.refuse_seconds}
        task_ids = [i["task_id"]["value"] for i in infos]
        with self._lock:
            self.offer_book.answered(accepted=len(offer_ids))

        def failed() -> None:
            with self._lock:
                self.tracker.launch_failed(task_ids)

        self.connection.submit(
            Call(
                f"launch {','.join(task_ids)}",
                on_failure=failed,
                accept=Accept(body, infos, filters),
            )
        )

    def kill(self, task_id: str, host_id: str | None, reason: str = "killed") -> None:
        with self._lock:
            self.tracker.kill_requested(task_id, host_id)
        self._kill(task_id)

    def take_reports(self, timeout: float) -> list[HostReport]:
        return take_reports(self._reports, timeout)

    def acknowledge(self, report: HostReport) -> None:
        with self._lock:
            status = self.tracker.take_unacked(report.report)
        if status is not None:
            self._ack(status)

    def actual_tasks(self) -> dict[str, list[TaskReport]] | None:
        with self._lock:
            return self.tracker.actual()

    def lost_hosts(self) -> set[str]:
        with self._lock:
            return self.offer_book.take_lost_agents()

    def wants_offers(self, pending: bool) -> None:
        """Revive when work arrives, suppress (and decline what is held) when none is left."""
        with self._lock:  # decided and queued in one go (see on_offers)
            wish = self.offer_book.want(pending, self.connection.connected)
            if wish.decline:
                self._decline(wish.decline)
            if wish.revive:
                self._submit("revive", lambda d: d.reviveOffers())
            elif wish.suppress:
                self._submit("suppress", lambda d: d.suppressOffers())

    def claims_due(self) -> list[str]:
        """None: Mesos reconciles what its agents run by itself."""
        return []

    def claim(self, host_id: str, task_ids: Sequence[str]) -> None:
        return None
