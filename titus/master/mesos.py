"""The Mesos cluster driver: the leader as a Mesos framework, placing tasks on offers.

Where users outgrow hosts registered in coordination, the platform runs on Apache Mesos as
Titus did. This driver speaks the Mesos v1 scheduler API through pymesos's
MesosSchedulerDriver and turns it into the leader's ClusterDriver protocol:

- Offers become HostViews, so the same scheduler plugins place tasks on them. An offer holds
  an agent's *free* resources while the leader subtracts what its own view places on a host,
  so each HostView's total is the offer plus what this driver knows runs there.
- Placements are launched with ACCEPT/LAUNCH of TaskInfos naming the Titus executor
  (titus/agent/mesos_executor.py) with the TaskSpec as JSON in `data`; what a task does not
  use of an accepted offer is refused for `refuse_seconds`; offers not used are declined.
- Offers are suppressed while nothing is pending and revived when work arrives, and revived
  after every (re)subscription since refusal filters outlive a failover.
- Status updates become TaskReports. Updates that carry a uuid must be acknowledged, and
  Mesos re-sends an update until it is: a terminal one is acknowledged only once the leader
  persisted it (ClusterDriver.acknowledge). Non-terminal ones are acknowledged on receipt,
  because Mesos holds a task's next update until the previous one is acknowledged, and losing
  one costs nothing: states only move forward and reconciliation tells the latest.
- The framework id lives in the store, so a new leader subscribes with the same id (Mesos
  failover) and keeps the tasks; `failover_timeout` (default a week) is how long Mesos waits.
- After every (re)subscription it reconciles explicitly every task the store thinks is on a
  host; `actual_tasks()` is None until all are answered. Mesos answers TASK_LOST for a task it
  does not know, which becomes `lost` (and the job replaces it). It also reconciles
  implicitly, then periodically: a task Mesos runs that the store does not know is reported,
  and the leader kills it.
- A lost connection (master down, ERROR, heartbeats missing) is retried with backoff; while
  it lasts no task is declared lost: only Mesos's own words (updates, FAILURE of an agent)
  lose tasks.

pymesos runs calls on the caller's thread and raises on any non-2xx answer; an exception in
its I/O thread is re-raised in the main thread through SIGINT. Every call here therefore
goes through one worker thread that catches and logs, every callback is guarded, and the
module neutralises that SIGINT relay (see _guard_pymesos) so that a Mesos hiccup can never
stop the master process: the supervisor thread restarts a dead pymesos driver instead.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import queue
import random
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from titus.coord.base import Leadership
from titus.master.cluster import HostReport, HostView, Placement, take_reports
from titus.master.reports import KNOWN_REASONS
from titus.model.launch import TaskReport, TaskSpec
from titus.model.states import TASK_ON_HOST, Reason, TaskState
from titus.store.base import ActiveIndex, JobStore, StaleEpoch

log = logging.getLogger("titus.master.mesos")

#: Store meta key holding the framework id, so every leader subscribes as the same framework.
FRAMEWORK_ID_META = "mesos.framework_id"
#: Executor module the agents run (`python -m titus.agent.mesos_executor`).
EXECUTOR_MODULE = "titus.agent.mesos_executor"

TERMINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
        "TASK_LOST",
    }
)
_LOST_STATES = frozenset(
    {"TASK_LOST", "TASK_GONE", "TASK_DROPPED", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"}
)
#: Reasons of a TASK_FAILED that say the executor (not the task) died.
_EXECUTOR_GONE = frozenset(
    {
        "REASON_EXECUTOR_TERMINATED",
        "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
        "REASON_EXECUTOR_REREGISTRATION_TIMEOUT",
        "REASON_EXECUTOR_UNREGISTERED",
        "REASON_AGENT_RESTARTED",
        "REASON_AGENT_REMOVED",
        "REASON_AGENT_DISCONNECTED",
        "REASON_CONTAINER_LAUNCH_FAILED",
        "REASON_INVALID_OFFERS",
    }
)
_NON_TERMINAL = {
    "TASK_STAGING": TaskState.LAUNCHED,
    "TASK_STARTING": TaskState.START_INITIATED,
    "TASK_RUNNING": TaskState.STARTED,
    "TASK_KILLING": TaskState.KILL_INITIATED,
    "TASK_UNREACHABLE": TaskState.DISCONNECTED,
}


# ---- pymesos, made safe for a long-running master -----------------------------------------
def _guard_pymesos() -> None:
    """pymesos installs a SIGINT handler at import and, when its I/O thread dies, calls
    `interrupt_main()` so the main thread re-raises the error. In the master that would stop
    the whole process (or, with the CLI's own SIGINT handler, stop it quietly). Put the
    previous handler back and make the relay a no-op: the driver's supervisor notices a dead
    I/O thread itself and restarts it."""
    import pymesos.process as pp

    class _NoRelay:
        @staticmethod
        def interrupt_main(*_args: Any) -> None:
            log.warning("pymesos I/O thread ended with an error; its supervisor restarts it")

    pp.thread = _NoRelay()  # type: ignore[attr-defined]
    with contextlib.suppress(ValueError, TypeError):  # not the main thread: nothing to undo
        if signal.getsignal(signal.SIGINT) is pp._handle_sigint:
            previous = pp._prev_handler
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


_guard_pymesos()

from pymesos import MesosSchedulerDriver  # noqa: E402  (after the guard, on purpose)


def master_uri(url: str) -> str:
    """The pymesos form of a cluster URL: `mesos://host[:5050]` -> `host:5050`,
    `mesos+zk://zk1:2181,zk2:2181/mesos` -> `zk://zk1:2181,zk2:2181/mesos`."""
    if url.startswith("mesos+zk://"):
        rest = url[len("mesos+zk://") :]
        if "/" not in rest.strip("/"):
            raise ValueError(f"{url!r}: a mesos+zk:// URL names the ZooKeeper path, e.g. /mesos")
        return f"zk://{rest}"
    if url.startswith("mesos://"):
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"{url!r}: no master host")
        return f"{parts.hostname}:{parts.port or 5050}"
    raise ValueError(f"{url!r}: use mesos://host:5050 or mesos+zk://zk1:2181/mesos")


def default_executor_command() -> str:
    """This interpreter running the executor module: the agents share the platform's install."""
    return f"{shlex.quote(sys.executable)} -m {EXECUTOR_MODULE}"


@dataclass
class MesosConfig:
    """The framework's knobs; `titus.settings.Settings` carries each with its default."""

    url: str
    framework_name: str = "titus"
    user: str = "root"
    role: str = "*"
    failover_timeout: float = 7 * 24 * 3600.0
    #: Refuse time of declined offers and of the unused part of accepted ones.
    refuse_seconds: float = 5.0
    #: Offers not used for this long are declined, so Mesos may offer them afresh.
    offer_hold_seconds: float = 5.0
    reconcile_interval: float = 300.0
    #: Explicit reconciliation is sent again for tasks still unanswered after this.
    reconcile_retry: float = 5.0
    #: No event (heartbeats come every 15 s) for this long: the connection is dead.
    heartbeat_timeout: float = 75.0
    executor_command: str = ""
    #: Environment given to every executor (on top of what the agent gives it).
    executor_env: dict[str, str] = field(default_factory=dict)
    #: Host capacities Mesos does not offer: from agent attributes of the same name if any.
    network_mbps: float = 10_000.0
    ip_slots: float = 32.0
    restart_backoff_max: float = 15.0

    @classmethod
    def from_settings(cls, settings: object) -> MesosConfig:
        def get(name: str, default: Any) -> Any:
            return getattr(settings, name, default)

        return cls(
            url=str(get("cluster", "")),
            framework_name=str(get("mesos_framework_name", "titus")),
            user=str(get("mesos_user", "root")),
            role=str(get("mesos_role", "*")),
            failover_timeout=float(get("mesos_failover_timeout_sec", 7 * 24 * 3600.0)),
            refuse_seconds=float(get("mesos_refuse_sec", 5.0)),
            reconcile_interval=float(get("mesos_reconcile_interval_sec", 300.0)),
            executor_command=str(get("mesos_executor_command", "")),
            network_mbps=float(get("agent_network_mbps", 10_000)),
        )


@dataclass
class _Offer:
    id: str
    agent_id: str
    hostname: str
    resources: dict[str, float]
    attributes: dict[str, str]
    received: float = field(default_factory=time.monotonic)


@dataclass
class _Live:
    """A task this driver believes is on an agent, and what it uses there."""

    agent_id: str
    cpus: float = 0.0
    mem: float = 0.0
    disk: float = 0.0
    gpus: float = 0.0


def _value(obj: Any) -> str:
    if isinstance(obj, dict):
        return str(obj.get("value") or "")
    return ""


def _scalars(resources: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in resources or []:
        if isinstance(r, dict) and r.get("type", "SCALAR") == "SCALAR" and "scalar" in r:
            name = str(r.get("name"))
            out[name] = out.get(name, 0.0) + float(r["scalar"].get("value", 0.0))
    return out


def _attributes(attrs: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in attrs or []:
        if not isinstance(a, dict) or "name" not in a:
            continue
        if a.get("type") == "SCALAR":
            out[str(a["name"])] = f"{float(a.get('scalar', {}).get('value', 0.0)):g}"
        elif a.get("type") == "TEXT":
            out[str(a["name"])] = str(a.get("text", {}).get("value", ""))
    return out


def _scalar(name: str, value: float, role: str) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": role}


def _decode_data(status: dict[str, Any]) -> dict[str, Any]:
    """What the Titus executor put in a status's `data`: exit code, reason, context."""
    raw = status.get("data")
    if not raw:
        return {}
    try:
        data = json.loads(base64.b64decode(raw))
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def status_to_report(status: dict[str, Any], job_id: str = "") -> TaskReport:
    """A Mesos TaskStatus as the report a host would send (see the module docstring)."""
    state = str(status.get("state", ""))
    reason = str(status.get("reason", ""))
    message = str(status.get("message", ""))
    data = _decode_data(status)
    exit_code = data.get("exitCode")
    context = {str(k): str(v) for k, v in (data.get("context") or {}).items()}
    given = str(data.get("reasonCode", ""))
    titus_reason = given if given in KNOWN_REASONS else ""
    ts = status.get("timestamp")
    timestamp = int(float(ts) * 1000) if isinstance(ts, int | float) else None
    if state in _NON_TERMINAL:
        new_state = _NON_TERMINAL[state]
        code = Reason.NORMAL.value
        if state == "TASK_KILLING":
            code = Reason.KILLED.value
        elif state == "TASK_UNREACHABLE":
            code = Reason.LOST.value
    else:
        new_state = TaskState.FINISHED
        if state == "TASK_FINISHED":
            code = titus_reason or Reason.NORMAL.value
        elif state == "TASK_KILLED":
            code = titus_reason or Reason.KILLED.value
        elif state == "TASK_ERROR":
            code = Reason.INVALID_REQUEST.value
        elif state in _LOST_STATES:
            code = Reason.LOST.value
        elif state == "TASK_FAILED":
            if titus_reason:
                code = titus_reason
            elif reason in _EXECUTOR_GONE:
                code = Reason.LOST.value
            else:
                code = Reason.FAILED.value
        else:  # a state this driver does not know: the task is not known to run
            code = Reason.UNKNOWN_SYSTEM_ERROR.value
    text = str(data.get("reasonMessage") or message)
    if reason and not data:
        text = f"{state} ({reason}): {message}" if message else f"{state} ({reason})"
    report = TaskReport(
        taskId=_value(status.get("task_id")),
        jobId=str(data.get("jobId") or job_id),
        state=new_state,
        reasonCode=code,
        reasonMessage=text,
        exitCode=int(exit_code) if isinstance(exit_code, int) else None,
        containerId=str(data["containerId"]) if data.get("containerId") else None,
        context=context,
    )
    if timestamp:
        report.timestamp = timestamp
    return report


class _Callbacks:
    """pymesos's Scheduler interface for one pymesos driver instance (one generation).

    Every callback is guarded: an exception must not reach pymesos, whose I/O thread would
    die of it. Callbacks of an older generation (a driver being replaced) are ignored."""

    def __init__(self, owner: MesosDriver, gen: int):
        self.owner = owner
        self.gen = gen

    def _call(self, name: str, *args: Any) -> None:
        owner = self.owner
        if owner._gen != self.gen:
            return
        owner._last_event = time.monotonic()
        try:
            getattr(owner, f"_on_{name}")(*args)
        except Exception:
            log.exception("mesos callback %s failed", name)

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self._call("subscribed", _value(framework_id), master_info)

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self._call("subscribed", "", master_info)

    def disconnected(self, driver: Any) -> None:
        self._call("disconnected")

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:  # noqa: N802
        self._call("offers", offers)

    def inverseOffers(self, driver: Any, offers: list[Any]) -> None:  # noqa: N802
        pass

    def offerRescinded(self, driver: Any, offer_id: Any) -> None:  # noqa: N802
        self._call("rescind", _value(offer_id))

    def inverseOfferRescinded(self, driver: Any, offer_id: Any) -> None:  # noqa: N802
        pass

    def statusUpdate(self, driver: Any, status: Any) -> None:  # noqa: N802
        self._call("update", dict(status))

    def operationStatusUpdate(self, driver: Any, status: Any) -> None:  # noqa: N802
        pass

    def frameworkMessage(self, driver: Any, *args: Any) -> None:  # noqa: N802
        pass

    def slaveLost(self, driver: Any, agent_id: Any) -> None:  # noqa: N802
        self._call("agent_lost", _value(agent_id))

    def executorLost(self, driver: Any, executor_id: Any, agent_id: Any, status: Any) -> None:  # noqa: N802
        self._call("executor_lost", _value(executor_id), _value(agent_id), status)

    def error(self, driver: Any, message: str) -> None:
        self._call("error", driver, str(message))

    def processHeartBeat(self, driver: Any) -> None:  # noqa: N802
        if self.owner._gen == self.gen:
            self.owner._last_event = time.monotonic()


@dataclass
class OfferCycle:
    """One batch of offers and how long until every one of them was answered."""

    received: float
    offers: int
    answered: float | None = None
    accepted: int = 0
    declined: int = 0


class MesosDriver:
    """The ClusterDriver on Mesos. See the module docstring for what it guarantees."""

    def __init__(
        self,
        store: JobStore,
        config: MesosConfig,
        *,
        driver_factory: Callable[..., Any] | None = None,
    ):
        self.store = store
        self.config = config
        self.master = master_uri(config.url)
        self._factory = driver_factory or MesosSchedulerDriver
        self._lock = threading.RLock()
        self._gen = 0
        self._driver: Any = None
        self._epoch: int | None = None
        self._running = False
        self._failed_over = False
        self._connected = False
        self._framework_id: str | None = None
        self._last_event = time.monotonic()
        self._offers: dict[str, _Offer] = {}
        self._by_agent: dict[str, set[str]] = {}
        self._live: dict[str, _Live] = {}
        self._jobs: dict[str, str] = {}  # task id -> job id, for reports without data
        self._reports: queue.Queue[HostReport] = queue.Queue()
        self._unacked: dict[int, tuple[TaskReport, dict[str, Any], float]] = {}
        self._lost_agents: set[str] = set()
        self._kills: dict[str, str] = {}  # task id -> agent id, sent again on resubscription
        # explicit reconciliation of the first sync: tasks asked for and not yet answered
        self._awaiting: dict[str, str] = {}
        self._actual: dict[str, list[TaskReport]] = {}
        self._synced = False
        self._reconcile_sent = 0.0
        self._last_implicit = 0.0
        self._pending = False
        self._suppressed = False
        self._calls: queue.Queue[tuple[int, str, Callable[[Any], None]] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._restart_at: float | None = None
        self._restart_backoff = 0.5
        #: Recent offer cycles (newest last), for the benchmark and operators' logs.
        self.cycles: list[OfferCycle] = []

    @classmethod
    def from_settings(cls, settings: object, store: JobStore) -> MesosDriver:
        return cls(store, MesosConfig.from_settings(settings))

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, leadership: Leadership, active: ActiveIndex) -> None:
        """Subscribe as the stored framework (or a new one) and begin the first sync."""
        with self._lock:
            self._epoch = leadership.epoch
            self._running = True
            self._failed_over = False
            self._synced = False
            self._actual = {}
            self._awaiting = {}
            self._offers.clear()
            self._by_agent.clear()
            self._lost_agents.clear()
            self._kills.clear()
            self._unacked.clear()
            self._pending = False
            self._suppressed = False
            self._jobs = {}
            self._live = self._load_live(active)
        self._stop = threading.Event()
        self._calls = queue.Queue()
        self._threads = [
            threading.Thread(target=self._call_loop, name="mesos-calls", daemon=True),
            threading.Thread(target=self._supervise, name="mesos-supervisor", daemon=True),
        ]
        self._connect()
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Step down: disconnect without tearing the framework down, so its tasks keep
        running for the next leader (stop(failover=True); TEARDOWN would kill them all)."""
        with self._lock:
            self._running = False
            self._gen += 1
            driver, self._driver = self._driver, None
            self._connected = False
            self._offers.clear()
            self._by_agent.clear()
            self._unacked.clear()
        self._stop.set()
        self._calls.put(None)
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.stop(failover=True)
            with contextlib.suppress(Exception):
                driver.join()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5)
        self._threads = []
        while not self._reports.empty():
            self._reports.get_nowait()

    def _load_live(self, active: ActiveIndex) -> dict[str, _Live]:
        """Tasks the store places on hosts: what explicit reconciliation asks about, and
        what counts as used on each agent (an offer shows only free resources)."""
        live: dict[str, _Live] = {}
        resources: dict[str, Any] = {}
        for job in active.jobs:
            resources[job.id] = job.jobDescriptor.container.resources
        for row in active.tasks:
            if TaskState(row.state) in TASK_ON_HOST and row.agent_id:
                live[row.id] = self._live_of(row.agent_id, resources.get(row.job_id))
                self._jobs[row.id] = row.job_id
        return live

    @staticmethod
    def _live_of(agent_id: str, r: Any) -> _Live:
        if r is None:
            return _Live(agent_id)
        return _Live(agent_id, float(r.cpu), float(r.memoryMB), float(r.diskMB), float(r.gpu))

    def _framework_info(self, framework_id: str | None) -> dict[str, Any]:
        info: dict[str, Any] = {
            "user": self.config.user,
            "name": self.config.framework_name,
            "failover_timeout": self.config.failover_timeout,
            "checkpoint": True,
            "hostname": socket.gethostname(),
        }
        if self.config.role and self.config.role != "*":
            info["roles"] = [self.config.role]
            info["capabilities"] = [{"type": "MULTI_ROLE"}]
        if framework_id:
            info["id"] = {"value": framework_id}
        return info

    def _connect(self) -> None:
        """Start a pymesos driver subscribing with the stored framework id, if any."""
        framework_id = self.store.get_meta(FRAMEWORK_ID_META) or None
        with self._lock:
            if not self._running or self._failed_over:
                return
            self._gen += 1
            gen = self._gen
            self._framework_id = framework_id
            self._connected = False
            self._last_event = time.monotonic()
            driver = self._factory(
                _Callbacks(self, gen),
                self._framework_info(framework_id),
                self.master,
                use_addict=False,
                implicit_acknowledgements=False,
                failover=True,
            )
            self._driver = driver
        log.info(
            "subscribing to Mesos at %s as %s",
            self.master,
            f"framework {framework_id}" if framework_id else "a new framework",
        )
        driver.start()

    def _restart(self, why: str) -> None:
        """Drop the current pymesos driver (without teardown) and connect anew, later."""
        with self._lock:
            if not self._running or self._failed_over:
                return
            driver, self._driver = self._driver, None
            self._gen += 1
            self._connected = False
            self._drop_offers()
            delay = self._restart_backoff * random.uniform(0.5, 1.0)
            self._restart_backoff = min(self._restart_backoff * 2, self.config.restart_backoff_max)
            self._restart_at = time.monotonic() + delay
        log.warning("Mesos connection restarted in %.1fs: %s", delay, why)
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.stop(failover=True)

    # ---- the calls worker ---------------------------------------------------------------
    def _submit(self, what: str, call: Callable[[Any], None]) -> None:
        self._calls.put((self._gen, what, call))

    def _call_loop(self) -> None:
        """Runs every call to Mesos in order, off the leader's thread: a slow or refusing
        master never stalls placement, and pymesos's exceptions stop here."""
        while True:
            item = self._calls.get()
            if item is None or self._stop.is_set():
                return
            gen, what, call = item
            with self._lock:
                driver = self._driver if gen == self._gen else None
                connected = self._connected
            if driver is None or not connected:
                self._call_failed(what, None)
                continue
            try:
                call(driver)
            except Exception as exc:
                log.warning("Mesos call %s failed: %s", what, exc)
                self._call_failed(what, exc)

    def _call_failed(self, what: str, exc: Exception | None) -> None:
        """A call that did not reach Mesos. Launches and kills are not lost for it: the
        tasks are reconciled (or killed again) once subscribed again."""
        kind, _, task_ids = what.partition(":")
        if kind == "launch" and exc is not None:
            with self._lock:
                for task_id in task_ids.split(","):
                    live = self._live.get(task_id)
                    if live is not None:
                        self._awaiting.setdefault(task_id, live.agent_id)
                self._reconcile_sent = 0.0  # ask at once

    # ---- callbacks (pymesos's thread) ---------------------------------------------------
    def _on_subscribed(self, framework_id: str, master_info: Any) -> None:
        with self._lock:
            if framework_id:
                self._framework_id = framework_id
            framework_id = self._framework_id or ""
            self._restart_backoff = 0.5
            self._suppressed = False
            for task_id, agent_id in self._live_items():
                self._awaiting.setdefault(task_id, agent_id)
            kills = dict(self._kills)
            epoch = self._epoch
        log.info("subscribed to Mesos as framework %s", framework_id)
        if framework_id and self.store.get_meta(FRAMEWORK_ID_META) != framework_id:
            try:
                self.store.set_meta(FRAMEWORK_ID_META, framework_id, epoch=epoch)
            except StaleEpoch:
                log.warning("a newer leader exists: leaving the framework to it")
                self._give_up()
                return
        # connected only once the id is stored: a successor reading the store then always
        # fails over to this framework instead of registering a second one
        with self._lock:
            self._connected = True
        # refusal filters outlive a failover: ask for everything again
        self._submit("revive", lambda d: d.reviveOffers())
        for task_id in kills:
            self._submit(f"kill:{task_id}", _kill_call(task_id))
        self._reconcile_explicit(force=True)

    def _live_items(self) -> list[tuple[str, str]]:
        return [(t, live.agent_id) for t, live in self._live.items()]

    def _on_disconnected(self) -> None:
        with self._lock:
            self._connected = False
            self._drop_offers()
        log.warning("Mesos connection lost; pymesos reconnects (no task is lost for it)")

    def _drop_offers(self) -> None:
        self._offers.clear()
        self._by_agent.clear()

    def _on_offers(self, offers: list[Any]) -> None:
        now = time.monotonic()
        decline: list[str] = []
        with self._lock:
            cycle = OfferCycle(received=now, offers=len(offers))
            self.cycles.append(cycle)
            del self.cycles[:-100]
            for o in offers:
                offer = _Offer(
                    id=_value(o.get("id")),
                    agent_id=_value(o.get("agent_id")),
                    hostname=str(o.get("hostname", "")),
                    resources=_scalars(o.get("resources")),
                    attributes=_attributes(o.get("attributes")),
                    received=now,
                )
                if not self._pending or offer.agent_id in self._lost_agents:
                    decline.append(offer.id)
                    continue
                self._offers[offer.id] = offer
                self._by_agent.setdefault(offer.agent_id, set()).add(offer.id)
        if decline:
            self._decline(decline)

    def _decline(self, offer_ids: list[str], refuse: float | None = None) -> None:
        seconds = self.config.refuse_seconds if refuse is None else refuse
        ids = [{"value": o} for o in offer_ids]
        self._count("declined", len(offer_ids))
        self._submit("decline", lambda d: d.declineOffer(ids, {"refuse_seconds": seconds}))

    def _count(self, what: str, n: int) -> None:
        """Offer cycle bookkeeping: the newest cycle is answered when all its offers are."""
        with self._lock:
            if not self.cycles:
                return
            cycle = self.cycles[-1]
            setattr(cycle, what, getattr(cycle, what) + n)
            if cycle.answered is None and cycle.accepted + cycle.declined >= cycle.offers:
                cycle.answered = time.monotonic()

    def _on_rescind(self, offer_id: str) -> None:
        with self._lock:
            offer = self._offers.pop(offer_id, None)
            if offer is not None:
                ids = self._by_agent.get(offer.agent_id)
                if ids is not None:
                    ids.discard(offer_id)
                    if not ids:
                        del self._by_agent[offer.agent_id]

    def _on_update(self, status: dict[str, Any]) -> None:
        task_id = _value(status.get("task_id"))
        state = str(status.get("state", ""))
        with self._lock:
            live = self._live.get(task_id)
            agent_id = _value(status.get("agent_id")) or (live.agent_id if live else "")
            report = status_to_report(status, self._jobs.get(task_id, ""))
            terminal = state in TERMINAL_STATES
            if terminal:
                self._live.pop(task_id, None)
                self._kills.pop(task_id, None)
                self._jobs.pop(task_id, None)
            elif live is None and task_id in self._jobs:
                self._live[task_id] = _Live(agent_id)
            first_sync = (
                not self._synced
                and status.get("reason") == "REASON_RECONCILIATION"
                and task_id in self._awaiting
            )
            self._awaiting.pop(task_id, None)
            if first_sync:
                self._actual.setdefault(agent_id, []).append(report)
                if not self._awaiting:
                    self._finish_sync()
            if "uuid" in status and terminal and not first_sync:
                self._unacked[id(report)] = (report, status, time.monotonic())
        if "uuid" in status and (not terminal or first_sync):
            self._ack(status)
        if not first_sync:
            self._reports.put(HostReport(agent_id, report))

    def _finish_sync(self) -> None:
        """Every task the store placed is answered for: the leader may act on `actual`.
        Then ask Mesos for everything it runs for this framework (implicit), which
        reveals tasks the store does not know."""
        self._synced = True
        self._last_implicit = time.monotonic()
        log.info(
            "Mesos reconciliation done: %d tasks answered",
            sum(len(r) for r in self._actual.values()),
        )
        self._submit("reconcile", lambda d: d.reconcileTasks([]))

    def _ack(self, status: dict[str, Any]) -> None:
        body = {k: status[k] for k in ("agent_id", "task_id", "uuid") if k in status}
        self._submit("acknowledge", lambda d: d.acknowledgeStatusUpdate(body))

    def _on_agent_lost(self, agent_id: str) -> None:
        with self._lock:
            self._lost_agents.add(agent_id)
            for offer_id in self._by_agent.pop(agent_id, set()):
                self._offers.pop(offer_id, None)
        log.warning("Mesos agent %s is gone; its tasks are lost", agent_id)

    def _on_executor_lost(self, executor_id: str, agent_id: str, status: Any) -> None:
        # one executor per task: it ends with its task, and its task's update says how
        log.info("executor %s on agent %s ended (wait status %s)", executor_id, agent_id, status)

    def _on_error(self, driver: Any, message: str) -> None:
        log.error("Mesos ERROR event: %s", message)
        if "failed over" in message.lower():
            # another scheduler subscribed with this framework id: it is the leader now.
            # pymesos would reconnect by itself and the two would take turns: stop for good.
            self._give_up(driver)
            return
        if "removed" in message.lower() or "torn down" in message.lower():
            # the framework is gone (failover timeout passed, or an operator removed it):
            # its id is dead, and so are its tasks; subscribe afresh
            with contextlib.suppress(StaleEpoch):
                self.store.set_meta(FRAMEWORK_ID_META, "", epoch=self._epoch)
        self._restart(f"ERROR {message}")

    def _give_up(self, driver: Any = None) -> None:
        with self._lock:
            self._failed_over = True
            self._connected = False
            self._drop_offers()
            driver = driver or self._driver
            self._gen += 1
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.stop(failover=True)

    # ---- the supervisor -----------------------------------------------------------------
    def _supervise(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._supervise_once()
            except Exception:
                log.exception("Mesos supervisor pass failed")

    def _supervise_once(self) -> None:
        now = time.monotonic()
        with self._lock:
            driver = self._driver
            restart_at = self._restart_at
            connected = self._connected
            failed_over = self._failed_over
        if failed_over:
            return
        if driver is None:
            if restart_at is not None and now >= restart_at:
                self._restart_at = None
                self._connect()
            return
        thread = getattr(driver, "_io_thread", None)
        if thread is not None and not thread.is_alive():
            self._restart("the pymesos I/O thread ended")
            return
        if connected and now - self._last_event > self.config.heartbeat_timeout:
            self._restart(f"no event from Mesos for {now - self._last_event:.0f}s")
            return
        if not connected:
            return
        self._decline_stale(now)
        self._reconcile_explicit()
        if self._synced and now - self._last_implicit >= self.config.reconcile_interval:
            self._last_implicit = now
            self._submit("reconcile", lambda d: d.reconcileTasks([]))
        self._expire_unacked(now)

    def _decline_stale(self, now: float) -> None:
        with self._lock:
            stale = [
                o.id
                for o in self._offers.values()
                if now - o.received >= self.config.offer_hold_seconds
            ]
            for offer_id in stale:
                self._on_rescind(offer_id)
        if stale:
            self._decline(stale)

    def _reconcile_explicit(self, force: bool = False) -> None:
        """Ask Mesos about every task still awaiting an answer; again after a while, since
        reconciliation answers are not reliable (a master failing over drops them)."""
        now = time.monotonic()
        with self._lock:
            if not self._connected or (
                not force and now - self._reconcile_sent < self.config.reconcile_retry
            ):
                return
            awaiting = list(self._awaiting.items())
            self._reconcile_sent = now
            if not awaiting and not self._synced:
                self._finish_sync()
                return
        if awaiting:
            tasks = [{"task_id": {"value": t}, "agent_id": {"value": a}} for t, a in awaiting]
            log.info("reconciling %d tasks with Mesos", len(tasks))
            self._submit("reconcile", lambda d: d.reconcileTasks(tasks))

    def _expire_unacked(self, now: float) -> None:
        """Terminal updates the leader never acknowledged (it ignored the report): Mesos
        sends them again on the next subscription, so forgetting them here loses nothing."""
        with self._lock:
            for key, (_, _, at) in list(self._unacked.items()):
                if now - at > 600:
                    del self._unacked[key]

    # ---- the driver protocol ------------------------------------------------------------
    def hosts(self) -> list[HostView]:
        with self._lock:
            used: dict[str, list[float]] = {}
            for live in self._live.values():
                u = used.setdefault(live.agent_id, [0.0, 0.0, 0.0, 0.0])
                u[0] += live.cpus
                u[1] += live.mem
                u[2] += live.disk
                u[3] += live.gpus
            out = []
            for agent_id, offer_ids in self._by_agent.items():
                offers = [self._offers[o] for o in offer_ids if o in self._offers]
                if not offers:
                    continue
                free = {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}
                for o in offers:
                    for name in free:
                        free[name] += o.resources.get(name, 0.0)
                u = used.get(agent_id, [0.0, 0.0, 0.0, 0.0])
                attrs = offers[0].attributes
                total = {
                    "cpu": free["cpus"] + u[0],
                    "memoryMB": free["mem"] + u[1],
                    "diskMB": free["disk"] + u[2],
                    "gpu": free["gpus"] + u[3],
                    "networkMbps": _float(attrs.get("networkMbps"), self.config.network_mbps),
                    "ipSlots": _float(attrs.get("ipSlots"), self.config.ip_slots),
                }
                attributes = dict(attrs)
                attributes.update(
                    host=offers[0].hostname,
                    instanceId=agent_id,
                    zone=attrs.get("zone", ""),
                    itype=attrs.get("instanceType", attrs.get("itype", "")),
                )
                out.append(
                    HostView(
                        host_id=agent_id,
                        total=total,
                        attributes=attributes,
                        address=offers[0].hostname,
                        offer_ids=sorted(o.id for o in offers),
                    )
                )
        return out

    def launch(self, placements: Sequence[Placement]) -> None:
        by_host: dict[str, list[Placement]] = {}
        for p in placements:
            by_host.setdefault(p.host_id, []).append(p)
        command = self.config.executor_command or default_executor_command()
        variables = [{"name": k, "value": v} for k, v in sorted(self.config.executor_env.items())]
        role = self.config.role or "*"
        for agent_id, group in by_host.items():
            with self._lock:
                popped = [self._offers.pop(o, None) for o in self._by_agent.pop(agent_id, set())]
                offers = [o for o in popped if o is not None]
                left = {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}
                for o in offers:
                    for name in left:
                        left[name] += o.resources.get(name, 0.0)
                infos = []
                refused: list[tuple[Placement, str]] = []
                for p in group:
                    r = p.spec.container.resources
                    need = {
                        "cpus": float(r.cpu),
                        "mem": float(r.memoryMB),
                        "disk": float(r.diskMB),
                        "gpus": float(r.gpu),
                    }
                    if not offers:
                        refused.append((p, f"the offers of agent {agent_id} went away"))
                        continue
                    if any(need[k] > left[k] + 1e-9 for k in need):
                        refused.append((p, f"no longer fits the offers of agent {agent_id}"))
                        continue
                    for k in need:
                        left[k] -= need[k]
                    infos.append(self._task_info(p.spec, agent_id, need, command, variables, role))
                    self._live[p.spec.taskId] = _Live(
                        agent_id, need["cpus"], need["mem"], need["disk"], need["gpus"]
                    )
                    self._jobs[p.spec.taskId] = p.spec.jobId
            for p, why in refused:
                self._reports.put(
                    HostReport(
                        agent_id,
                        TaskReport(
                            taskId=p.spec.taskId,
                            jobId=p.spec.jobId,
                            state=TaskState.FINISHED,
                            reasonCode=Reason.LOST,
                            reasonMessage=f"not launched: {why}",
                        ),
                    )
                )
            if not offers:
                continue
            offer_ids = [{"value": o.id} for o in offers]
            if not infos:
                self._decline([o.id for o in offers])
                continue
            ids = ",".join(i["task_id"]["value"] for i in infos)
            refuse = {"refuse_seconds": self.config.refuse_seconds}
            self._count("accepted", len(offers))
            self._submit(f"launch:{ids}", _launch_call(offer_ids, infos, refuse))

    @staticmethod
    def _task_info(
        spec: TaskSpec,
        agent_id: str,
        need: dict[str, float],
        command: str,
        variables: list[dict[str, str]],
        role: str,
    ) -> dict[str, Any]:
        resources = [_scalar(k, v, role) for k, v in need.items() if v > 0]
        data = spec.model_dump_json(by_alias=True, exclude_none=True).encode()
        return {
            "name": f"{spec.applicationName or 'titus'}-{spec.taskIndex}",
            "task_id": {"value": spec.taskId},
            "agent_id": {"value": agent_id},
            "resources": resources,
            "executor": {
                # one executor per task: a crashed executor takes one task with it
                "executor_id": {"value": spec.taskId},
                "name": "titus-executor",
                "command": {"value": command, "environment": {"variables": variables}},
            },
            "data": base64.b64encode(data).decode(),
        }

    def kill(self, task_id: str, host_id: str | None, reason: str = "killed") -> None:
        with self._lock:
            self._kills[task_id] = host_id or ""
        self._submit(f"kill:{task_id}", _kill_call(task_id))

    def take_reports(self, timeout: float) -> list[HostReport]:
        return take_reports(self._reports, timeout)

    def acknowledge(self, report: HostReport) -> None:
        with self._lock:
            entry = self._unacked.pop(id(report.report), None)
        if entry is not None and entry[0] is report.report:
            self._ack(entry[1])

    def actual_tasks(self) -> dict[str, list[TaskReport]] | None:
        with self._lock:
            if not self._synced:
                return None
            return {agent: list(reports) for agent, reports in self._actual.items()}

    def lost_hosts(self) -> set[str]:
        with self._lock:
            lost, self._lost_agents = set(self._lost_agents), set()
        return lost

    def wants_offers(self, pending: bool) -> None:
        """Revive when work arrives, suppress (and decline what is held) when none is left."""
        with self._lock:
            was, self._pending = self._pending, pending
            # offers that came while nothing was pending were declined (their agents are
            # filtered for a while): every time work arrives, revive clears the filters
            revive = self._connected and pending and (self._suppressed or not was)
            suppress = self._connected and not pending and not self._suppressed
            if revive:
                self._suppressed = False
            if suppress:
                self._suppressed = True
            held = [] if pending else list(self._offers)
            if held:
                self._drop_offers()
        if held:
            self._decline(held)
        if revive:
            self._submit("revive", lambda d: d.reviveOffers())
        elif suppress:
            self._submit("suppress", lambda d: d.suppressOffers())

    def claims_due(self) -> list[str]:
        """None: Mesos reconciles what its agents run by itself."""
        return []

    def claim(self, host_id: str, task_ids: Sequence[str]) -> None:
        return None

    # ---- introspection ------------------------------------------------------------------
    @property
    def framework_id(self) -> str | None:
        return self._framework_id

    @property
    def connected(self) -> bool:
        return self._connected


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def _kill_call(task_id: str) -> Callable[[Any], None]:
    def call(driver: Any) -> None:
        driver.killTask({"value": task_id})

    return call


def _launch_call(
    offer_ids: list[dict[str, str]], infos: list[dict[str, Any]], filters: dict[str, float]
) -> Callable[[Any], None]:
    def call(driver: Any) -> None:
        driver.launchTasks(offer_ids, infos, filters)

    return call
