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

Each task's life is a TaskRunner (lifecycle.py) on a thread of its own, the same runner
the Mesos executor uses; this daemon maps what runners tell it to TaskReports and its
HTTP/poll API. Per-task enforcement (runtime limit, disk quota, orphans) is in the
runners' watcher hooks (watchers.py). The HTTP server only waits on conditions. Exits
arrive through the engine's event stream, and a periodic listing catches any event the
stream missed (engine restart, dropped connection); the sweep keeps only what is
agent-wide: registration refresh, report expiry, reconciling with the engine's listing.

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
from collections.abc import Sequence
from typing import Any

import docker
from docker.models.containers import Container as DockerContainer

from titus.agent import host
from titus.agent.health import HealthChecker, HealthStatus
from titus.agent.hooks import HookRunner, LaunchError, TaskContext, TaskHook
from titus.agent.lifecycle import Outcome, Phase, TaskRunner, task_hooks
from titus.agent.logs import LogFiles
from titus.agent.network.hook import container_network_mode
from titus.agent.quarantine import ATTR_UNHEALTHY_SINCE, TerminationReporter
from titus.agent.runtime import (
    LABEL_JOB,
    LABEL_SPEC,
    LABEL_TASK,
    DockerRuntime,
    RuntimeConfig,
    docker_client,
    is_engine_error,
    is_live,
)
from titus.agent.upload import LogUploader
from titus.coord.base import Coordinator
from titus.model.job import Container, Image
from titus.model.launch import TaskReport, TaskReportPage, TaskSpec
from titus.model.states import Reason, TaskState
from titus.settings import Settings

log = logging.getLogger(__name__)

MAX_POLL_WAIT_SEC = 60.0
SWEEP_INTERVAL_SEC = 1.0
RECONCILE_INTERVAL_SEC = 2.0
# A runner inspects its container by itself this often; exits come sooner through the
# engine's events and the reconciling listing, which poke the runner.
INSPECT_INTERVAL_SEC = 10.0
# Bound on tasks one agent holds (running or starting): a runaway master cannot make the
# agent queue work without end.
MAX_TASKS = 1024

__all__ = ["AgentDaemon", "task_hooks"]  # task_hooks: imported from here before lifecycle.py


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
        self.runtime = DockerRuntime(
            self.client,
            runtime_config
            or RuntimeConfig(
                disk_enforcement=settings.agent_disk_enforcement,
                network_mode=container_network_mode(settings),
            ),
        )
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
        self.hooks.describe_host(self.info)
        self._engine_ready = False
        self._claims_declared = False
        self._cond = threading.Condition()
        self._tasks: dict[str, TaskRunner] = {}
        self._reports: dict[str, TaskReport] = {}
        self._finished_at: dict[str, float] = {}  # monotonic time of terminal reports
        # Sequence numbers grow across agent restarts (they start from the clock), so a
        # master polling with the last number it saw never misses a restarted agent's news.
        self._seq = time.time_ns() // 1000
        self._stop = threading.Event()
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
            (self._upkeep_loop, "upkeep"),
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
        for runner in tasks:
            runner.release()
        for thread in self._threads:
            thread.join(timeout=5)
        self.uploader.stop()
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
                known.ctx.ownership.orphan_since = None  # the master wants what it adopted
                return
            if spec.taskId in self._reports:
                return
            if len(self._tasks) >= MAX_TASKS:
                raise RuntimeError(f"agent is full: {MAX_TASKS} tasks")
            runner = self._runner(ctx)
            self._tasks[spec.taskId] = runner
            self._record(ctx, TaskState.START_INITIATED)
        self._run(runner)

    def kill(self, task_id: str, reason: str = "killed", message: str = "") -> bool:
        """Stop a task's container within the grace period. False if the task is unknown."""
        try:
            why = Reason(reason)
        except ValueError:
            why = Reason.KILLED
        with self._cond:
            runner = self._tasks.get(task_id)
            if runner is None:
                return task_id in self._reports
        runner.kill(
            why,
            message or ("killed on request" if reason == Reason.KILLED else f"killed ({reason})"),
        )
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
            for task_id, runner in self._tasks.items():
                ownership = runner.ctx.ownership
                if task_id in wanted:
                    ownership.orphan_since = None
                elif runner.phase == Phase.RUNNING and runner.kill_requested is None:
                    if ownership.orphan_since is None:
                        ownership.orphan_since = now
                    orphans.append(task_id)
        return orphans

    def unknown(self, task_ids: Sequence[str]) -> list[str]:
        """Of the tasks the master names, those this agent has never heard of: no task, no
        report. After a restart these are tasks the agent took but never started (killed
        between its StartInitiated report and the container): nothing will ever report
        them, so the master learns it here instead of waiting for its stuck-task timeout."""
        with self._cond:
            return [t for t in task_ids if t not in self._tasks and t not in self._reports]

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

    # the task's life: runners on threads of their own, mapped to reports

    def _runner(self, ctx: TaskContext, adopting: bool = False) -> TaskRunner:
        """A runner for `ctx`. One adopting a container needs no engine check: adoption
        happens once the engine answered."""
        return TaskRunner(
            ctx,
            self.hooks,
            self.runtime,
            self,
            kill_grace_sec=self.settings.kill_grace_sec,
            inspect_interval_sec=INSPECT_INTERVAL_SEC,
            preflight=None if adopting else self._preflight,
        )

    def _run(self, runner: TaskRunner, existing: DockerContainer | None = None) -> None:
        threading.Thread(
            target=runner.run, args=(existing,), name=f"task-{runner.task_id}", daemon=True
        ).start()

    def _preflight(self) -> None:
        """A host whose engine is not there runs nothing: the master tries elsewhere."""
        if not self._engine_ready or not self.health.status.docker_ok:
            reasons = "; ".join(self.health.status.reasons) or "docker engine not connected"
            raise LaunchError(Reason.TRANSIENT_SYSTEM_ERROR, f"host cannot run tasks: {reasons}")

    def started(self, runner: TaskRunner) -> None:
        with self._cond:
            self._record(runner.ctx, TaskState.STARTED)

    def updated(self, runner: TaskRunner) -> None:
        with self._cond:
            if self._tasks.get(runner.task_id) is runner:
                self._record(runner.ctx, TaskState.STARTED)

    def finished(self, runner: TaskRunner, outcome: Outcome) -> None:
        with self._cond:
            self._tasks.pop(runner.task_id, None)
            self._record(
                runner.ctx, TaskState.FINISHED, outcome.reason, outcome.message, outcome.exit_code
            )

    def _record(
        self,
        ctx: TaskContext,
        state: TaskState,
        reason: Reason = Reason.NORMAL,
        message: str = "",
        exit_code: int | None = None,
    ) -> TaskReport:
        """Replace the task's report with a newer one. Caller holds the condition."""
        self._seq += 1
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

    # adoption after a restart

    def _adopt_all(
        self, containers: Sequence[DockerContainer] | None = None, orphans: bool = False
    ) -> None:
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
                context=dict(self._agent_context),
            )
            if orphans:
                ctx.ownership.orphan_since = time.monotonic()
                log.warning(
                    "container %s of task %s was not started by this agent: killed in %.0f s "
                    "unless the master claims it",
                    container.short_id,
                    task_id,
                    self.settings.agent_orphan_grace_sec,
                )
            runner = self._runner(ctx, adopting=True)
            with self._cond:
                if task_id in self._tasks or task_id in self._reports:
                    continue
                self._tasks[task_id] = runner
            self._run(runner, container)

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
                        runner = self._tasks.get(attrs.get(LABEL_TASK, ""))
                    if runner is not None and runner.ctx.container_id == event.get("id"):
                        runner.poke()
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
                self._expire_reports(now)
                if self._engine_ready and now - last_reconcile >= RECONCILE_INTERVAL_SEC:
                    last_reconcile = now
                    self._reconcile()
            except Exception as e:
                if is_engine_error(e):
                    log.warning("agent sweep: engine unavailable (%s)", e)
                else:
                    log.exception("agent sweep failed")

    # health

    def _publish(self) -> None:
        """Register (or refresh) this host with its current health, and what its hooks
        say of it (the network's ENIs), in coordination."""
        self.hooks.describe_host(self.info)
        self.coord.register_agent(self.info)

    def _upkeep_loop(self) -> None:
        """The hooks' agent-wide upkeep (network sweep), on a thread of its own so that a
        slow cloud call never delays report expiry or the registration refresh. The host
        is published again when what the hooks say of it changed."""
        while not self._stop.wait(SWEEP_INTERVAL_SEC):
            if not self._engine_ready:
                # Until the engine answered and its containers were adopted, the tasks
                # held here are not known: nothing may be released as "not running".
                continue
            with self._cond:
                running = list(self._tasks)
            self.hooks.upkeep(running)
            before = (dict(self.info.resources), dict(self.info.network))
            self.hooks.describe_host(self.info)
            if (self.info.resources, self.info.network) != before:
                try:
                    self.coord.register_agent(self.info)
                except Exception:
                    log.exception("publishing the host failed")

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

    # agent-wide upkeep

    def _expire_reports(self, now: float) -> None:
        keep = self.settings.finished_retention_sec
        with self._cond:
            for task_id, at in list(self._finished_at.items()):
                if now - at > keep:
                    del self._finished_at[task_id]
                    self._reports.pop(task_id, None)

    def _reconcile(self) -> None:
        """Catch exits the event stream missed, and take in containers labelled for this
        agent that it did not start."""
        containers = self.runtime.task_containers(self.agent_id)
        live = {c.id for c in containers if is_live(c)}
        with self._cond:
            unknown = any(
                c.labels.get(LABEL_TASK, "") not in self._tasks
                and c.labels.get(LABEL_TASK, "") not in self._reports
                for c in containers
            )
        if unknown:
            self._adopt_all(containers, orphans=True)
        with self._cond:
            running = [
                r for r in self._tasks.values() if r.phase in (Phase.RUNNING, Phase.STOPPING)
            ]
        for runner in running:
            if runner.ctx.container_id not in live:
                runner.poke()


def _default_client(settings: Settings) -> docker.DockerClient:
    return docker_client(settings.docker_url)
