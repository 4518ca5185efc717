"""The agent: the daemon on each host that runs the master's tasks as containers.

It registers the host in coordination, takes launch and kill requests, runs each task's
hooks, and keeps one report per task (StartInitiated, Started, Finished) that the master
pulls by long poll. The agent never needs to know where the master is, and never reads the
store: after a restart it rebuilds its view from the engine alone (containers carry their
task and agent in labels) and adopts every container labelled with its agent id, so an
agent restart neither kills nor duplicates a task. Adopted tasks are reported as they are
(Started, or Finished if they ended meanwhile) even when the master no longer wants them:
the master decides their fate. Containers of other agents sharing the engine are left
alone.

Docker calls block, so they run on worker threads; the HTTP server only waits on
conditions. Exits arrive through the engine's event stream, and a periodic sweep catches
any event the stream missed (engine restart, dropped connection).

The agent starts even when its engine is down: it registers as unhealthy (so the master
sends nothing), answers any launch with `transientSystemError` (retried elsewhere), and
keeps trying; once the engine answers it adopts what runs and becomes healthy again.

Containers nobody owns are killed after `agent_orphan_grace_sec`: one labelled for this
agent that appears while it runs (started behind its back), and, once the master has
declared the tasks it believes are here (`claim`), an adopted one it did not name (its
task finished or moved while the agent was away). A master that never declares leaves
adopted containers alone: killing running work on a guess is worse than an orphan.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import docker

from titus.agent import host
from titus.agent.health import HealthChecker, HealthStatus
from titus.agent.hooks import HookRunner, LaunchError, TaskContext, TaskHook
from titus.agent.logs import LogFiles, LogFollowHook, LogsHook
from titus.agent.quarantine import ATTR_UNHEALTHY_SINCE, TerminationReporter
from titus.agent.runtime import (
    LABEL_JOB,
    LABEL_SPEC,
    LABEL_TASK,
    ContainerHook,
    DockerRuntime,
    RuntimeConfig,
    container_outcome,
    docker_client,
    is_engine_error,
)
from titus.agent.upload import LogUploader, LogUploadHook
from titus.coord.base import Coordinator
from titus.model.job import Container, Image
from titus.model.launch import TaskReport, TaskReportPage, TaskSpec
from titus.model.states import Reason, TaskState
from titus.settings import Settings

log = logging.getLogger(__name__)

MAX_POLL_WAIT_SEC = 60.0
SWEEP_INTERVAL_SEC = 1.0
RECONCILE_INTERVAL_SEC = 2.0
MAX_WORKERS = 32
# Bound on tasks one agent holds (running or starting): a runaway master cannot make the
# agent queue work without end.
MAX_TASKS = 1024

_STARTING, _RUNNING, _FINISHING, _DONE = "starting", "running", "finishing", "done"
_LIVE_STATUSES = frozenset({"running", "paused", "restarting"})


@dataclass
class _Task:
    """One task this agent runs (or adopted), while it is on the host."""

    ctx: TaskContext
    phase: str = _STARTING
    started_at: float | None = None  # wall clock, seconds
    kill_reason: Reason | None = None
    kill_message: str = ""
    stopping: bool = False
    # monotonic time it was found to be nobody's (found behind the agent's back, or left
    # out of the master's claim); None while the task is owned
    orphan_since: float | None = None


def task_hooks(
    settings: Settings,
    client: docker.DockerClient,
    runtime: DockerRuntime,
    uploader: LogUploader,
) -> list[TaskHook]:
    """The task life on a host: log files and their upload, the container, copying its
    output. The upload hook sits before the container so that its teardown (journal every
    file) runs after the copies have drained. Shared by this daemon and the Mesos executor
    (mesos_executor.py), so a task runs the same way whichever cluster driver placed it."""
    upload = LogUploadHook(settings, uploader)
    return [
        LogsHook(),
        upload,
        ContainerHook(runtime),
        LogFollowHook(
            client,
            rotate_bytes=settings.agent_log_rotate_bytes,
            on_rotate=upload.on_rotate,
        ),
    ]


def _parse_docker_time(value: str) -> float | None:
    """Docker's RFC 3339 timestamps carry nanoseconds; Python parses microseconds."""
    if not value or value.startswith("0001-"):
        return None
    try:
        main, _, frac = value.rstrip("Z").partition(".")
        frac = (frac + "000000")[:6]
        return datetime.fromisoformat(f"{main}.{frac}+00:00").timestamp()
    except ValueError:
        return None


class AgentDaemon:
    def __init__(
        self,
        settings: Settings,
        coord: Coordinator,
        docker_client: docker.DockerClient | None = None,
        runtime_config: RuntimeConfig | None = None,
        hooks: Sequence[TaskHook] | None = None,
        asg_client: Any = None,
    ):
        self.settings = settings
        self.coord = coord
        self._own_client = docker_client is None
        self.client = docker_client or _default_client(settings)
        self.runtime = DockerRuntime(self.client, runtime_config)
        self.log_files = LogFiles(settings.logs_path)
        self.info = host.agent_info(settings)
        self.agent_id = self.info.id
        self._agent_context = host.task_context(self.info)
        self.uploader = LogUploader(settings, self.log_files.root)
        self.health = HealthChecker(settings, self.client, self.agent_id)
        self.reporter = TerminationReporter(
            settings, coord, self.info, self._publish, asg_client=asg_client
        )
        self.hooks = HookRunner(hooks if hooks is not None else self.default_hooks())
        self._engine_ready = False
        self._claims_declared = False
        self._last_disk_check = float("-inf")
        self._cond = threading.Condition()
        self._tasks: dict[str, _Task] = {}
        self._reports: dict[str, TaskReport] = {}
        self._finished_at: dict[str, float] = {}  # monotonic time of terminal reports
        # Sequence numbers grow across agent restarts (they start from the clock), so a
        # master polling with the last number it saw never misses a restarted agent's news.
        self._seq = time.time_ns() // 1000
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="agent-task")
        self._threads: list[threading.Thread] = []
        self._events: Any = None
        self._started = False

    def default_hooks(self) -> list[TaskHook]:
        return task_hooks(self.settings, self.client, self.runtime, self.uploader)

    # lifecycle

    def start(self) -> None:
        """Check the engine, adopt what runs, register the host, then begin watching.

        An engine that does not answer does not stop the start: the host registers as
        unhealthy and the health loop keeps trying to reach it.
        """
        self.log_files.root.mkdir(parents=True, exist_ok=True)
        # ping only: the probe container would make every start wait for a container
        self._apply_health(self.health.check(probe=False))
        self._connect_engine()
        self.coord.register_agent(self.info)
        self.uploader.start()
        for target, name in (
            (self._watch_events, "events"),
            (self._sweep_loop, "sweep"),
            (self._health_loop, "health"),
        ):
            t = threading.Thread(target=target, name=f"agent-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        self._started = True
        log.info(
            "agent %s started (%s), %s",
            self.agent_id,
            self.info.resources,
            "healthy" if self.info.healthy else f"unhealthy: {self.info.health_reasons}",
        )

    def _connect_engine(self) -> bool:
        """Detect the engine's abilities and adopt its containers, once it answers."""
        if self._engine_ready:
            return True
        try:
            self.runtime.detect()
            self._adopt_all()
        except Exception as e:
            if not is_engine_error(e):
                raise
            log.warning("docker engine unavailable (%s); the host stays unhealthy", e)
            return False
        self._engine_ready = True
        return True

    def stop(self) -> None:
        """Stop the agent; its containers keep running for the next agent process."""
        if self._stop.is_set():
            return
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            tasks = list(self._tasks.values())
        self._close_events()
        for t in tasks:
            self.hooks.release(t.ctx)
        for thread in self._threads:
            thread.join(timeout=5)
        self.uploader.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._started:
            try:
                self.coord.unregister_agent(self.agent_id)
            except Exception:
                log.exception("unregistering agent %s failed", self.agent_id)
        if self._own_client:
            self.client.close()

    # requests from the master

    def launch(self, spec: TaskSpec) -> None:
        """Start a task. Idempotent: a task this agent has or just finished is left alone."""
        ctx = TaskContext(
            spec=spec,
            agent_id=self.agent_id,
            log_dir=self.log_files.task_dir(spec.taskId),  # refuses ids unfit for a path
            context=dict(self._agent_context),
        )
        with self._cond:
            if self._stop.is_set():
                raise RuntimeError("agent is stopping")
            known = self._tasks.get(spec.taskId)
            if known is not None:
                known.orphan_since = None  # the master wants what the agent adopted
                return
            if spec.taskId in self._reports:
                return
            if len(self._tasks) >= MAX_TASKS:
                raise RuntimeError(f"agent is full: {MAX_TASKS} tasks")
            task = _Task(ctx)
            self._tasks[spec.taskId] = task
            self._record(task, TaskState.START_INITIATED)
        self._pool.submit(self._launch, task)

    def kill(self, task_id: str, reason: str = "killed", message: str = "") -> bool:
        """Stop a task's container within the grace period. False if the task is unknown."""
        try:
            why = Reason(reason)
        except ValueError:
            why = Reason.KILLED
        with self._cond:
            task = self._tasks.get(task_id)
            if task is None:
                return task_id in self._reports
            if task.kill_reason is None:
                task.kill_reason = why
                task.kill_message = message or (
                    "killed on request" if reason == Reason.KILLED else f"killed ({reason})"
                )
            go = self._begin_stop(task)
        if go:
            self._pool.submit(self._stop_container, task)
        return True

    def claim(self, task_ids: Sequence[str]) -> list[str]:
        """The master names every task it believes runs here; the others become orphans.

        Returns the ids of tasks on this host the master did not name: they are killed
        after the orphan grace period unless a later claim or launch names them.
        """
        wanted = set(task_ids)
        now = time.monotonic()
        orphans: list[str] = []
        with self._cond:
            self._claims_declared = True
            for task_id, task in self._tasks.items():
                if task_id in wanted:
                    task.orphan_since = None
                elif task.phase == _RUNNING and task.kill_reason is None:
                    if task.orphan_since is None:
                        task.orphan_since = now
                    orphans.append(task_id)
        return orphans

    def ack(self, task_id: str) -> bool:
        """The master persisted a terminal report: forget it. False if there is none."""
        with self._cond:
            report = self._reports.get(task_id)
            if report is None or not report.terminal:
                return False
            del self._reports[task_id]
            self._finished_at.pop(task_id, None)
            return True

    def reports(self, since: int = 0, wait: float = 0.0) -> TaskReportPage:
        """Reports newer than `since`, at once; or the first to come within `wait` seconds.

        A `since` from the future (the agent restarted with a lower clock) gets everything.
        """
        deadline = time.monotonic() + max(0.0, min(wait, MAX_POLL_WAIT_SEC))
        with self._cond:
            if since > self._seq:
                since = 0
            while True:
                new = [r for r in self._reports.values() if r.seq > since]
                left = deadline - time.monotonic()
                if new or left <= 0 or self._stop.is_set():
                    new.sort(key=lambda r: r.seq)
                    return TaskReportPage(agentId=self.agent_id, seq=self._seq, tasks=new)
                self._cond.wait(left)

    # queries

    def known(self, task_id: str) -> bool:
        with self._cond:
            return task_id in self._tasks or task_id in self._reports

    def is_running(self, task_id: str) -> bool:
        """True while the task may still write output."""
        with self._cond:
            return task_id in self._tasks

    # the task's life

    def _record(
        self,
        task: _Task,
        state: TaskState,
        reason: Reason = Reason.NORMAL,
        message: str = "",
        exit_code: int | None = None,
    ) -> TaskReport:
        """Replace the task's report with a newer one. Caller holds the condition."""
        self._seq += 1
        ctx = task.ctx
        report = TaskReport(
            taskId=ctx.task_id,
            jobId=ctx.spec.jobId,
            state=state,
            reasonCode=reason.value,
            reasonMessage=message,
            seq=self._seq,
            exitCode=exit_code,
            containerId=ctx.container_id,
            context=dict(ctx.context),
        )
        self._reports[ctx.task_id] = report
        if report.terminal:
            self._finished_at[ctx.task_id] = time.monotonic()
        self._cond.notify_all()
        return report

    def _launch(self, task: _Task) -> None:
        ctx = task.ctx
        if not self._engine_ready or not self.health.status.docker_ok:
            reasons = "; ".join(self.health.status.reasons) or "docker engine not connected"
            message = f"host cannot run tasks: {reasons}"
            self._finish(task, Reason.TRANSIENT_SYSTEM_ERROR, message, None)
            return
        try:
            existing = self.runtime.get(self.runtime.container_name(ctx.task_id))
            if existing is not None:
                # a container from an earlier launch of the same task: never a second one
                ctx.container_id = existing.id
                self.hooks.adopt(ctx)
            else:
                self.hooks.setup(ctx)
        except LaunchError as e:
            self._finish(task, e.reason, e.message, None)
            return
        except Exception as e:
            reason = Reason.TRANSIENT_SYSTEM_ERROR if is_engine_error(e) else Reason.CRASHED
            log.exception("task %s: launch failed", ctx.task_id)
            self._finish(task, reason, f"launch failed: {e}", None)
            return
        self._mark_running(task)
        self._check_exited(task)

    @staticmethod
    def _begin_stop(task: _Task) -> bool:
        """True when the caller is to stop the task's container now: it runs, a kill was
        asked for, and no stop is under way. Caller holds the condition."""
        if task.phase != _RUNNING or task.kill_reason is None or task.stopping:
            return False
        task.stopping = True
        return True

    def _mark_running(self, task: _Task) -> None:
        started = _parse_docker_time(str(task.ctx.values.get("started_at", "")))
        with self._cond:
            task.phase = _RUNNING
            task.started_at = started or time.time()
            self._record(task, TaskState.STARTED)
            stop_now = self._begin_stop(task)
        if stop_now:
            self._stop_container(task)

    def _stop_container(self, task: _Task) -> None:
        cid = task.ctx.container_id
        try:
            if cid:
                self.runtime.stop(cid, self.settings.kill_grace_sec)
        except Exception:
            log.exception("task %s: stopping container failed; will retry", task.ctx.task_id)
            with self._cond:
                task.stopping = False
            return
        self._check_exited(task)

    def _check_exited(self, task: _Task) -> None:
        cid = task.ctx.container_id
        try:
            container = self.runtime.get(cid) if cid else None
        except Exception:
            return  # the sweep asks again
        if container is None or container.status not in _LIVE_STATUSES:
            self._on_exit(task)

    def _on_exit(self, task: _Task) -> None:
        """The container ended (or vanished): finish the task, once."""
        with self._cond:
            if task.phase != _RUNNING:
                return
            task.phase = _FINISHING
        if not self._stop.is_set():
            self._pool.submit(self._finish_exited, task)

    def _finish_exited(self, task: _Task) -> None:
        ctx = task.ctx
        try:
            container = self.runtime.get(ctx.container_id) if ctx.container_id else None
        except Exception as e:
            log.warning("task %s: cannot inspect its container: %s", ctx.task_id, e)
            with self._cond:
                task.phase = _RUNNING  # the sweep tries again
            return
        reason, message, code = container_outcome(container, ctx.spec.container.resources.memoryMB)
        if task.kill_reason is not None:
            reason, message = task.kill_reason, task.kill_message
        self.hooks.teardown(ctx)
        self._finish(task, reason, message, code)

    def _finish(self, task: _Task, reason: Reason, message: str, exit_code: int | None) -> None:
        with self._cond:
            task.phase = _DONE
            self._tasks.pop(task.ctx.task_id, None)
            self._record(task, TaskState.FINISHED, reason, message, exit_code)
        log.info("task %s finished: %s %s", task.ctx.task_id, reason.value, message)

    # adoption after a restart

    def _adopt_all(self, containers: Sequence[Any] | None = None, orphans: bool = False) -> None:
        """Take over every container labelled for this agent that no task here holds
        (from `containers`, a listing just made, or else from the engine).

        At start these are the previous process's tasks; later (`orphans=True`) they were
        started behind the agent's back, and are nobody's until the master claims them.
        """
        if containers is None:
            containers = self.runtime.task_containers(self.agent_id)
        for container in containers:
            labels = container.labels
            task_id = labels.get(LABEL_TASK, "")
            if not task_id or self.known(task_id):
                continue
            try:
                log_dir = self.log_files.task_dir(task_id)
            except ValueError:
                log.warning("container %s has an unusable task id label", container.id)
                continue
            ctx = TaskContext(
                spec=self._spec_from_labels(labels, container),
                agent_id=self.agent_id,
                log_dir=log_dir,
                container_id=container.id,
                context=dict(self._agent_context),
            )
            task = _Task(ctx)
            if orphans:
                task.orphan_since = time.monotonic()
                log.warning(
                    "container %s of task %s was not started by this agent: killed in %.0f s "
                    "unless the master claims it",
                    container.short_id,
                    task_id,
                    self.settings.agent_orphan_grace_sec,
                )
            with self._cond:
                if task_id in self._tasks or task_id in self._reports:
                    continue
                self._tasks[task_id] = task
            if container.status in _LIVE_STATUSES:
                self.hooks.adopt(ctx)
                self._mark_running(task)
                log.info("task %s: adopted running container %s", task_id, container.short_id)
            else:
                with self._cond:
                    task.phase = _RUNNING
                self._on_exit(task)

    @staticmethod
    def _spec_from_labels(labels: dict[str, str], container: Any) -> TaskSpec:
        task_id = labels[LABEL_TASK]
        try:
            spec = TaskSpec.model_validate_json(labels.get(LABEL_SPEC, ""))
            if spec.taskId == task_id:
                return spec
        except ValueError:
            pass
        image = (container.attrs.get("Config", {}) or {}).get("Image", "unknown")
        name, _, tag = str(image).partition(":")
        return TaskSpec(
            taskId=task_id,
            jobId=labels.get(LABEL_JOB, ""),
            jobType="",
            applicationName="",
            container=Container(image=Image(name=name, tag=tag or None)),
        )

    # background: events, sweep

    def _watch_events(self) -> None:
        while not self._stop.is_set():
            try:
                self._events = self.runtime.die_events(self.agent_id)
                if self._stop.is_set():
                    break
                for event in self._events:
                    attrs = (event.get("Actor") or {}).get("Attributes") or {}
                    with self._cond:
                        task = self._tasks.get(attrs.get(LABEL_TASK, ""))
                    if task is not None and task.ctx.container_id == event.get("id"):
                        self._on_exit(task)
            except Exception as e:
                if self._stop.is_set():
                    break
                log.warning("engine event stream failed (%s); reconnecting", e)
                self._stop.wait(1.0)
            finally:
                self._close_events()

    def _close_events(self) -> None:
        events, self._events = self._events, None
        if events is not None:
            with contextlib.suppress(Exception):
                events.close()

    def _sweep_loop(self) -> None:
        register_every = max(1.0, self.settings.agent_lost_after_sec / 3)
        last_register = last_reconcile = time.monotonic()
        while not self._stop.wait(SWEEP_INTERVAL_SEC):
            now = time.monotonic()
            try:
                if now - last_register >= register_every:
                    last_register = now
                    self._publish()
                self._enforce_runtime_limits()
                self._expire_reports(now)
                if not self._engine_ready:
                    continue
                if now - last_reconcile >= RECONCILE_INTERVAL_SEC:
                    last_reconcile = now
                    self._reconcile()
                    self._kill_orphans(now)
                interval = self.settings.agent_disk_check_interval_sec
                if not self.runtime.disk_enforced and now - self._last_disk_check >= interval:
                    self._last_disk_check = now
                    self._enforce_disk_quotas()
            except Exception as e:
                if is_engine_error(e):
                    log.warning("agent sweep: engine unavailable (%s)", e)
                else:
                    log.exception("agent sweep failed")

    # health

    def _publish(self) -> None:
        """Register (or refresh) this host with its current health in coordination."""
        self.coord.register_agent(self.info)

    def _apply_health(self, status: HealthStatus) -> bool:
        """Copy a health verdict into the registration; True when it changed."""
        info = self.info
        changed = info.healthy != status.healthy or info.health_reasons != status.reasons
        info.healthy = status.healthy
        info.health_reasons = list(status.reasons)
        if status.unhealthy_since is None:
            info.attributes.pop(ATTR_UNHEALTHY_SINCE, None)
        else:
            info.attributes[ATTR_UNHEALTHY_SINCE] = f"{status.unhealthy_since:.3f}"
        return changed

    def check_health(self) -> HealthStatus:
        """One health pass: check, reconnect the engine if it came back, publish changes,
        and report the host for termination when it has been unhealthy too long."""
        status = self.health.check()
        if status.docker_ok and not self._engine_ready:
            self._connect_engine()
        if self._apply_health(status):
            if status.healthy:
                log.info("host healthy again")
            else:
                log.warning("host unhealthy: %s", "; ".join(status.reasons))
            self._publish()
        self.reporter.consider(status.unhealthy_since)
        return status

    def _health_loop(self) -> None:
        while not self._stop.wait(max(0.05, self.settings.agent_health_interval_sec)):
            try:
                self.check_health()
            except Exception:
                log.exception("health check failed")

    # limits the engine cannot enforce; containers nobody owns

    def _kill_where(self, reason: Reason, verdict: Callable[[_Task], str | None]) -> list[str]:
        """Kill every running task not already being killed for which `verdict` gives a
        message (the kill's message); return their ids."""
        with self._cond:
            due = [
                (task.ctx.task_id, message)
                for task in self._tasks.values()
                if task.phase == _RUNNING
                and task.kill_reason is None
                and (message := verdict(task)) is not None
            ]
        for task_id, message in due:
            self.kill(task_id, reason.value, message)
        return [task_id for task_id, _ in due]

    def _enforce_disk_quotas(self) -> None:
        """Kill tasks whose writable layer outgrew their diskMB (engines without quotas)."""
        sizes = self.runtime.writable_sizes(self.agent_id)
        driver = self.runtime.storage_driver

        def over_quota(task: _Task) -> str | None:
            limit_mb = task.ctx.spec.container.resources.diskMB
            used = sizes.get(task.ctx.container_id or "", 0)
            if not limit_mb or used <= limit_mb * 1024 * 1024:
                return None
            return (
                f"killed for exceeding its disk quota of {limit_mb} MB "
                f"({used // (1024 * 1024)} MB written; this host's storage driver {driver} "
                "cannot enforce quotas, disk use is measured)"
            )

        self._kill_where(Reason.FAILED, over_quota)

    def _kill_orphans(self, now: float) -> None:
        grace = self.settings.agent_orphan_grace_sec

        def unowned(task: _Task) -> str | None:
            if task.orphan_since is None or now - task.orphan_since < grace:
                return None
            return f"container owned by no task: killed after a {grace:.0f} s grace period"

        for task_id in self._kill_where(Reason.KILLED, unowned):
            log.warning("task %s: no task owns its container; killed", task_id)

    def _enforce_runtime_limits(self) -> None:
        now = time.time()

        def over_runtime(task: _Task) -> str | None:
            limit = task.ctx.spec.runtimeLimitSec
            if (
                not limit
                or task.ctx.spec.jobType.upper() != "BATCH"
                or task.started_at is None
                or now - task.started_at <= limit
            ):
                return None
            return f"killed after exceeding its runtime limit of {limit} s"

        self._kill_where(Reason.RUNTIME_LIMIT_EXCEEDED, over_runtime)

    def _expire_reports(self, now: float) -> None:
        keep = self.settings.finished_retention_sec
        with self._cond:
            for task_id, at in list(self._finished_at.items()):
                if now - at > keep:
                    del self._finished_at[task_id]
                    self._reports.pop(task_id, None)

    def _reconcile(self) -> None:
        """Catch exits the event stream missed, retry kills that failed, and take in
        containers labelled for this agent that it did not start."""
        containers = self.runtime.task_containers(self.agent_id)
        live = {c.id for c in containers if c.status in _LIVE_STATUSES}
        with self._cond:
            unknown = any(
                c.labels.get(LABEL_TASK, "") not in self._tasks
                and c.labels.get(LABEL_TASK, "") not in self._reports
                for c in containers
            )
        if unknown:
            self._adopt_all(containers, orphans=True)
        with self._cond:
            tasks = [t for t in self._tasks.values() if t.phase == _RUNNING]
        for task in tasks:
            if task.ctx.container_id not in live:
                self._on_exit(task)
                continue
            with self._cond:
                retry_stop = self._begin_stop(task)
            if retry_stop:
                self._pool.submit(self._stop_container, task)


def _default_client(settings: Settings) -> docker.DockerClient:
    return docker_client(settings.docker_url)
