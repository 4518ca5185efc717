"""The direct cluster driver: agents registered in coordination, driven over HTTP.

Each agent is watched by one thread that long-polls its task reports, so a state change
on a host reaches the leader within milliseconds and the agent never needs to know where
the leader is. Launches and kills go through a small bounded pool so a slow host never
stalls the leader loop; a launch or kill that cannot be delivered comes back as a task
report, like any other outcome.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from titus.coord.agent_calls import agent_auth, for_agent
from titus.coord.base import AgentInfo, Coordinator, Leadership
from titus.master.cluster import HostReport, HostView, Placement, take_reports
from titus.master.scheduler.model import HostEnis
from titus.model.launch import TaskReport, TaskReportPage
from titus.model.states import Reason, TaskState
from titus.store.base import ActiveFacts

log = logging.getLogger("titus.master.direct")


class _AgentWatch:
    """Long-polls one agent's reports and remembers what it last said of each task."""

    def __init__(self, driver: DirectDriver, info: AgentInfo):
        self.driver = driver
        self.info = info
        self.seq = 0
        self.synced = False
        #: The leader should tell this agent which tasks it owns there (see `claims_due`):
        #: set for a new watch and whenever the agent may have restarted since last heard.
        self.claim_due = True
        #: The last poll was answered (claims wait until it is).
        self.reachable = False
        self.declared_lost = False
        self.last_ok = time.monotonic()
        self.tasks: dict[str, TaskReport] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"watch-{info.id}", daemon=True)

    def _run(self) -> None:
        backoff = 0.2
        wait = self.driver.poll_wait
        while not self.stop.is_set():
            try:
                r = self.driver.http.get(
                    f"{self.info.address}/v1/tasks",
                    params={"since": self.seq, "wait": 0 if not self.synced else wait},
                    headers=for_agent(self.info.id),
                    timeout=wait + 5,
                )
                r.raise_for_status()
                page = TaskReportPage.model_validate(r.json())
            except Exception as exc:  # noqa: BLE001 - this thread must outlive any answer
                # (a watch whose thread died would leave the host out of placement for good)
                log.warning("agent %s: cannot list tasks: %s", self.info.id, exc)
                # it may be restarting: once it answers, it needs to hear the claims again
                self.claim_due = True
                self.reachable = False
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            self.last_ok = time.monotonic()
            self.reachable = True
            if page.seq < self.seq:  # the agent restarted and counts anew
                self.tasks.clear()
                self.claim_due = True
            self.seq = page.seq
            for report in page.tasks:
                self.tasks[report.taskId] = report
                self.driver.reports.put(HostReport(self.info.id, report))
            self.synced = True


class DirectDriver:
    def __init__(
        self,
        coord: Coordinator,
        *,
        poll_wait: float = 10.0,
        lost_after: float = 30.0,
        kill_grace: float = 10.0,
        secret: bytes | None = None,
    ):
        self.coord = coord
        self.poll_wait = poll_wait
        self.lost_after = lost_after
        self.kill_grace = kill_grace
        #: The epoch of the leadership this driver serves: every call to an agent carries
        #: it (signed, with `secret`), so agents refuse a deposed leader's orders.
        self.epoch = 0
        self.http = httpx.Client(timeout=10.0, auth=agent_auth(secret, lambda: self.epoch))
        self.reports: queue.Queue[HostReport] = queue.Queue()
        self._watches: dict[str, _AgentWatch] = {}
        self._lost: set[str] = set()
        #: Tasks whose launch is queued or under way: an agent that does not know one of
        #: these may simply not have it yet.
        self._launching: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="agent-call")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, leadership: Leadership, active: ActiveFacts) -> None:
        self.epoch = leadership.epoch
        self._stop.clear()
        self._refresh()
        self._supervisor = threading.Thread(target=self._supervise, name="agents", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        """End this leadership's work: launches and kills still queued are dropped (a
        deposed leader must not act late; its successor decides again from the store)."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="agent-call")
        with self._lock:
            for w in self._watches.values():
                w.stop.set()
            self._watches.clear()
            self._launching.clear()
        while not self.reports.empty():
            self.reports.get_nowait()

    def _supervise(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._refresh()
            except Exception:
                # never end: without this loop no agent that comes back is watched again
                log.exception("following the agent registry failed; trying again")

    def _refresh(self) -> None:
        """Follow the registry: watch new agents, notice agents that went away."""
        registered = {a.id: a for a in self.coord.agents()}
        now = time.monotonic()
        with self._lock:
            for agent_id, info in registered.items():
                w = self._watches.get(agent_id)
                # a watch whose thread is not running (it could not start, or died) is
                # replaced too: it would keep the host out of placement for good
                if w is None or w.info.address != info.address or not w.thread.is_alive():
                    if w is not None:
                        w.stop.set()
                    w = _AgentWatch(self, info)
                    self._watches[agent_id] = w
                    w.thread.start()
                else:
                    w.info = info
            for agent_id, w in list(self._watches.items()):
                if agent_id not in registered:
                    w.stop.set()
                    del self._watches[agent_id]
                    self._lost.add(agent_id)
                    log.warning("agent %s deregistered; its tasks are lost", agent_id)
                elif now - w.last_ok > self.lost_after and not w.declared_lost:
                    w.declared_lost = True
                    self._lost.add(agent_id)
                    log.warning(
                        "agent %s unreachable for %.0fs; its tasks are lost",
                        agent_id,
                        now - w.last_ok,
                    )
                elif now - w.last_ok <= self.lost_after:
                    w.declared_lost = False

    # ---- the driver protocol ------------------------------------------------------------
    def hosts(self) -> list[HostView]:
        """The hosts to place on. A host whose last poll failed is shown unhealthy, with
        the reason, until it answers again: a launch sent there would only come back as a
        transient failure, and every retry of it would go to the same silent host."""
        with self._lock:
            watched = dict(self._watches)
        now = time.monotonic()
        out = []
        for agent in self.coord.agents():
            w = watched.get(agent.id)
            if w is None or not w.synced:
                continue
            reasons = list(agent.health_reasons)
            if not w.reachable:
                reasons.append(f"not answering the master for {now - w.last_ok:.0f} s")
            out.append(
                HostView(
                    host_id=agent.id,
                    total=dict(agent.resources),
                    attributes=dict(agent.attributes),
                    healthy=agent.healthy and w.reachable,
                    health_reasons=reasons,
                    address=agent.address,
                    enis=HostEnis.from_published(agent.network),
                )
            )
        return out

    def _address(self, host_id: str | None) -> str | None:
        if host_id is None:
            return None
        with self._lock:
            w = self._watches.get(host_id)
        return w.info.address if w else None

    def _synthesize(self, host_id: str, task_id: str, job_id: str, reason: str, msg: str) -> None:
        report = TaskReport(
            taskId=task_id,
            jobId=job_id,
            state=TaskState.FINISHED,
            reasonCode=reason,
            reasonMessage=msg,
        )
        self.reports.put(HostReport(host_id, report))

    def launch(self, placements: Sequence[Placement]) -> None:
        with self._lock:
            self._launching.update(p.spec.taskId for p in placements)
        for p in placements:
            self._pool.submit(self._launch_one, p)

    def _launch_one(self, p: Placement) -> None:
        try:
            self._deliver(p)
        finally:
            with self._lock:
                self._launching.discard(p.spec.taskId)

    def _deliver(self, p: Placement) -> None:
        if self._stop.is_set():
            return
        address = self._address(p.host_id)
        if address is None:
            self._synthesize(
                p.host_id,
                p.spec.taskId,
                p.spec.jobId,
                Reason.TRANSIENT_SYSTEM_ERROR,
                f"host {p.host_id} went away before the launch",
            )
            return
        try:
            r = self.http.post(
                f"{address}/v1/tasks",
                content=p.spec.model_dump_json(),
                headers={"content-type": "application/json", **for_agent(p.host_id)},
            )
            if r.status_code >= 400:
                reason = (
                    Reason.INVALID_REQUEST if r.status_code < 500 else Reason.TRANSIENT_SYSTEM_ERROR
                )
                self._synthesize(
                    p.host_id,
                    p.spec.taskId,
                    p.spec.jobId,
                    reason,
                    f"host {p.host_id} refused the launch: {r.text[:500]}",
                )
        except httpx.HTTPError as exc:
            self._synthesize(
                p.host_id,
                p.spec.taskId,
                p.spec.jobId,
                Reason.TRANSIENT_SYSTEM_ERROR,
                f"could not reach host {p.host_id}: {exc}",
            )

    def kill(self, task_id: str, host_id: str | None, reason: str = "killed") -> None:
        self._pool.submit(self._kill_one, task_id, host_id, reason)

    def _kill_one(self, task_id: str, host_id: str | None, reason: str) -> None:
        if self._stop.is_set():
            return
        address = self._address(host_id)
        if address is None:
            return  # the host is gone: its tasks are declared lost by the leader
        try:
            r = self.http.delete(
                f"{address}/v1/tasks/{task_id}",
                params={"reason": reason},
                headers=for_agent(host_id or ""),
            )
            if r.status_code == 404:
                with self._lock:
                    w = self._watches.get(host_id or "")
                    known = w.tasks.get(task_id) if w else None
                job_id = known.jobId if known else ""
                self._synthesize(host_id or "", task_id, job_id, reason, "not running on its host")
        except httpx.HTTPError as exc:
            log.warning("kill of %s on %s failed (retried later): %s", task_id, host_id, exc)

    def claims_due(self) -> list[str]:
        """Agents (synced, so their reports are in) that should be told again which tasks
        the leader places on them: new to this leadership, or back after being out of
        reach. Each is returned once per such event."""
        out = []
        with self._lock:
            for agent_id, w in self._watches.items():
                if w.synced and w.reachable and w.claim_due:
                    w.claim_due = False
                    out.append(agent_id)
        return out

    def claim(self, host_id: str, task_ids: Sequence[str]) -> None:
        """Tell an agent every task the leader places on it (`PUT /v1/tasks/claims`): the
        agent kills, after its grace period, the containers it adopted that are not named
        (their tasks ended or moved while it was away). Retried on the next poll's
        success when it cannot be delivered."""
        self._pool.submit(self._claim_one, host_id, list(task_ids))

    def _claim_one(self, host_id: str, task_ids: list[str]) -> None:
        if self._stop.is_set():
            return
        with self._lock:
            w = self._watches.get(host_id)
        if w is None:
            return
        try:
            r = self.http.put(
                f"{w.info.address}/v1/tasks/claims",
                json={"taskIds": task_ids},
                headers=for_agent(host_id),
            )
            r.raise_for_status()
            answer = r.json()
            self._forget_unknown(host_id, answer.get("unknown") or [])
            orphans = answer.get("orphans") or []
            if orphans:
                log.warning(
                    "agent %s runs %d containers of tasks not placed there (killed after its "
                    "grace period): %s",
                    host_id,
                    len(orphans),
                    ", ".join(orphans[:10]),
                )
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("claims to agent %s failed (sent again later): %s", host_id, exc)
            w.claim_due = True

    def _forget_unknown(self, host_id: str, unknown: list[str]) -> None:
        """Tasks the leader placed on the host that the host has never heard of (it took
        them, then restarted before starting them): they end as lost, so they are placed
        again now rather than after the stuck-task timeout. A task whose launch is still
        under way is not yet known there, and is left alone."""
        with self._lock:
            gone = [t for t in unknown if t not in self._launching]
        for task_id in gone:
            log.warning("agent %s does not know task %s: it is lost", host_id, task_id)
            self._synthesize(
                host_id,
                task_id,
                "",
                Reason.LOST,
                f"host {host_id} no longer knows the task (it restarted before starting it)",
            )

    def take_reports(self, timeout: float) -> list[HostReport]:
        return take_reports(self.reports, timeout)

    def acknowledge(self, report: HostReport) -> None:
        if not report.report.terminal:
            return
        address = self._address(report.host_id)
        if address is None:
            return
        task_id = report.report.taskId

        def ack() -> None:
            # on failure the agent forgets the report after its retention time anyway
            with contextlib.suppress(httpx.HTTPError):
                self.http.post(
                    f"{address}/v1/tasks/{task_id}/ack", headers=for_agent(report.host_id)
                )

        self._pool.submit(ack)

    def actual_tasks(self) -> dict[str, list[TaskReport]] | None:
        with self._lock:
            watches = list(self._watches.values())
        if not all(w.synced for w in watches):
            return None
        return {w.info.id: list(w.tasks.values()) for w in watches}

    def lost_hosts(self) -> set[str]:
        with self._lock:
            lost = set(self._lost)
            self._lost.clear()
        return lost

    def wants_offers(self, pending: bool) -> None:
        return None
