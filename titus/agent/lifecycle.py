"""The life of one task on a host, written once for the agent daemon and the Mesos executor.

A `TaskRunner` walks a task through its phases and calls the hooks (hooks.py) that care
about each one:

    starting  (prepare, start)  hooks set up in order; or, for a container that is already
                                there (an agent restart, a launch repeated), adopted
    running                     watchers check about once a second (runtime limit, disk
                                quota, orphan: watchers.py)
    stopping                    a kill, asked for or a watcher's, stops the container
                                within its grace period (retried if the engine fails)
    exited                      the container ended or vanished: how it ended
                                (container_outcome, or the kill's reason) is the outcome
    teardown                    hooks torn down in reverse
    done                        the host is told the outcome

The host owns the runner's thread and maps what it hears to its own protocol: the daemon
to TaskReports (StartInitiated, Started, Finished) for the master's long poll, the
executor to Mesos status updates. Everything between (launch failure reasons, waiting for
the exit, kill with grace, outcome, teardown) is here, so the two cannot drift apart.

A runner told to `release` (the agent stops; the task keeps running for the next agent
process) lets go of its hooks' threads and ends without an outcome; one told to `abandon`
(the executor goes away) stops the container at once and tears down, without an outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import docker
from docker.models.containers import Container

from titus.agent.gate import StartGateHook, start_gate
from titus.agent.gpus import GpuHook, GpuPool, host_gpus
from titus.agent.hooks import HookRunner, KillRequest, LaunchError, TaskContext, TaskHook
from titus.agent.host import agent_id
from titus.agent.logs import LogFollowHook, LogsHook
from titus.agent.metadata.hook import metadata_hooks
from titus.agent.network.hook import network_hooks
from titus.agent.runtime import (
    ContainerHook,
    DockerRuntime,
    container_outcome,
    container_record,
    is_engine_error,
    is_live,
)
from titus.agent.task_health import HealthCheckHook
from titus.agent.upload import LogUploader, LogUploadHook
from titus.agent.watchers import DiskQuotaHook, OrphanHook, RuntimeLimitHook
from titus.model.states import Reason
from titus.settings import Settings

log = logging.getLogger(__name__)

#: How often watchers look at a running task.
CHECK_INTERVAL_SEC = 1.0
#: Pause before asking the engine again after it did not answer.
RETRY_SEC = 1.0


class Phase(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    EXITED = "exited"
    TEARDOWN = "teardown"
    DONE = "done"


@dataclass(frozen=True)
class Outcome:
    """How a task finished: its reason, a message for people, the container's exit code,
    and whether a kill (asked for, or a watcher's) ended it."""

    reason: Reason
    message: str
    exit_code: int | None = None
    killed: bool = False


class RunnerListener(Protocol):
    """What a host hears from its runners (on the runner's thread)."""

    def started(self, runner: TaskRunner) -> None:
        """The task runs (its container started, or was adopted running)."""

    def finished(self, runner: TaskRunner, outcome: Outcome) -> None:
        """The task ended and its hooks are torn down; told once."""

    def updated(self, runner: TaskRunner) -> None:
        """The running task's context changed (its health, say): report it again."""


def task_hooks(
    settings: Settings,
    client: docker.DockerClient,
    runtime: DockerRuntime,
    uploader: LogUploader,
) -> list[TaskHook]:
    """The task life on a host: log files and their upload, the GPUs it holds, its IAM
    role's credentials, the container, its metadata service and network, the start gate
    its command waits behind until those are ready (gate.py), copying its output, and the
    watchers of what the engine does not enforce (runtime limit, disk
    quota, orphans). The upload hook sits before the container so
    that its teardown (journal every file) runs after the copies have drained. Shared by
    the agent daemon and the Mesos executor, so a task runs the same way whichever cluster
    driver placed it."""
    upload = LogUploadHook(settings, uploader)
    before_container, after_container = metadata_hooks(settings, runtime)
    # per agent: agents sharing a data directory each sweep only their own tasks' gates
    gate = start_gate(Path(settings.data_dir) / "gates" / agent_id(settings))
    return [
        LogsHook(),
        upload,
        GpuHook(GpuPool(host_gpus(settings)), runtime),
        *before_container,
        ContainerHook(runtime, gate),
        *after_container,
        *network_hooks(settings, runtime),
        *([StartGateHook(gate)] if gate is not None else []),
        LogFollowHook(
            client,
            rotate_bytes=settings.agent_log_rotate_bytes,
            on_rotate=upload.on_rotate,
        ),
        RuntimeLimitHook(),
        HealthCheckHook(runtime),
        DiskQuotaHook(runtime, settings.agent_disk_check_interval_sec),
        OrphanHook(settings.agent_orphan_grace_sec),
    ]


def launch_failure(exc: BaseException) -> Outcome:
    """The outcome of a launch that raised: the hook's reason for a LaunchError, a
    transient system error for engine trouble (the master tries elsewhere), else a crash."""
    if isinstance(exc, LaunchError):
        return Outcome(exc.reason, exc.message)
    reason = Reason.TRANSIENT_SYSTEM_ERROR if is_engine_error(exc) else Reason.CRASHED
    return Outcome(reason, f"launch failed: {exc}")


class TaskRunner:
    """One task's life on this host; `run` is blocking and meant for a thread of its own."""

    def __init__(
        self,
        ctx: TaskContext,
        hooks: HookRunner,
        runtime: DockerRuntime,
        listener: RunnerListener,
        *,
        kill_grace_sec: float,
        inspect_interval_sec: float,
        check_interval_sec: float = CHECK_INTERVAL_SEC,
        preflight: Callable[[], None] | None = None,
    ):
        self.ctx = ctx
        self.hooks = hooks
        self.runtime = runtime
        self.listener = listener
        self.kill_grace_sec = kill_grace_sec
        self.inspect_interval_sec = inspect_interval_sec
        self.check_interval_sec = check_interval_sec
        self.preflight = preflight
        self.phase = Phase.STARTING
        self._cond = threading.Condition()
        self._kill: KillRequest | None = None
        self._stopping = False
        self._poked = False
        self._released = False

    @property
    def task_id(self) -> str:
        return self.ctx.task_id

    @property
    def kill_requested(self) -> KillRequest | None:
        with self._cond:
            return self._kill

    # ---- what the host asks -------------------------------------------------------------

    def kill(self, reason: Reason, message: str, grace_sec: float | None = None) -> bool:
        """Ask for the task to be stopped (once running) within `grace_sec` (default: the
        kill grace). The first kill's reason stands; False when the task is done."""
        with self._cond:
            if self.phase == Phase.DONE:
                return False
            if self._kill is None:
                self._kill = KillRequest(reason, message)
            if grace_sec is not None:
                self.kill_grace_sec = min(self.kill_grace_sec, grace_sec)
            self._cond.notify_all()
        return True

    def poke(self) -> None:
        """The container may have ended (an engine event, a listing): look now."""
        with self._cond:
            self._poked = True
            self._cond.notify_all()

    def release(self) -> None:
        """The host stops, the task keeps running: let go of the hooks' threads and end
        the runner without an outcome."""
        with self._cond:
            self._released = True
            self._cond.notify_all()
        self.hooks.release(self.ctx)

    def abandon(self) -> None:
        """The host goes away for good: stop the container now, tear down, no outcome."""
        with self._cond:
            if self.phase == Phase.DONE:
                return
            self._released = True
            self._cond.notify_all()
        cid = self.ctx.container_id
        try:
            if cid:
                self.runtime.stop(cid, 0)
        except Exception:
            log.exception("task %s: stopping its container failed", self.task_id)
        self.hooks.teardown(self.ctx)

    # ---- the life -----------------------------------------------------------------------

    def run(self, existing: Container | None = None) -> None:
        """Start the task (or adopt `existing`, its container found already there), wait
        for it to end, tear down and tell the listener how it ended."""
        try:
            self._life(existing)
        except Exception as exc:
            log.exception("task %s: task runner failure", self.task_id)
            if self.phase != Phase.DONE:
                self._done(Outcome(Reason.CRASHED, f"task runner failure: {exc}"))

    def _life(self, existing: Container | None) -> None:
        launched = self._launch(existing)
        if isinstance(launched, Outcome):
            self._done(launched)
            return
        if launched:
            with self._cond:
                released = self._released
                if not released:
                    self.phase = Phase.RUNNING
            if released:  # the host stopped while this task was being set up
                self.hooks.release(self.ctx)
                return
            self.listener.started(self)
            if not self._wait_for_exit():
                return
        with self._cond:
            self.phase = Phase.EXITED
        outcome = self._outcome()
        if outcome is None:
            return
        with self._cond:
            self.phase = Phase.TEARDOWN
        self.hooks.teardown(self.ctx)
        self._done(outcome)

    def _launch(self, existing: Container | None) -> bool | Outcome:
        """True: running; False: found already ended; an Outcome: the launch failed."""
        ctx = self.ctx
        try:
            if self.preflight is not None:
                self.preflight()
            if existing is None:
                # a container from an earlier launch of the same task: never a second one
                existing = self.runtime.get(self.runtime.container_name(ctx.task_id))
            if existing is None:
                self.hooks.setup(ctx)
                return True
            ctx.container = container_record(existing)
            if not is_live(existing):
                return False
            self.hooks.adopt(ctx)
            log.info("task %s: adopted running container %s", ctx.task_id, existing.short_id)
            return True
        except Exception as exc:
            if not isinstance(exc, LaunchError):
                log.exception("task %s: launch failed", ctx.task_id)
            return launch_failure(exc)

    def _wait_for_exit(self) -> bool:
        """Watch the running task until its container ends (True) or the runner is
        released (False): run watchers, stop the container once a kill is asked for."""
        last_check = last_inspect = float("-inf")
        while True:
            with self._cond:
                if self._released:
                    return False
                kill, stop_now = self._kill, self._kill is not None and not self._stopping
                if stop_now:
                    self._stopping = True
                    self.phase = Phase.STOPPING
                poked, self._poked = self._poked, False
                grace = self.kill_grace_sec
            if stop_now:
                threading.Thread(
                    target=self._stop, args=(grace,), name=f"stop-{self.task_id}", daemon=True
                ).start()
            now = time.monotonic()
            if kill is None and now - last_check >= self.check_interval_sec:
                last_check = now
                before = dict(self.ctx.context)
                verdict = self.hooks.check(self.ctx)
                if self.ctx.context != before:
                    self.listener.updated(self)
                if verdict is not None:
                    log.warning("task %s: %s", self.task_id, verdict.message)
                    self.kill(verdict.reason, verdict.message)
                    continue
            if poked or now - last_inspect >= self.inspect_interval_sec:
                last_inspect = now
                try:
                    if not is_live(self.runtime.get(self.ctx.container_id or "")):
                        return True
                except Exception as exc:
                    log.warning("task %s: cannot inspect its container: %s", self.task_id, exc)
            with self._cond:
                if not (self._poked or self._released or (self._kill and not self._stopping)):
                    timeout = min(
                        self.check_interval_sec,
                        max(0.0, last_inspect + self.inspect_interval_sec - time.monotonic()),
                    )
                    self._cond.wait(max(0.01, timeout))

    def _stop(self, grace_sec: float) -> None:
        cid = self.ctx.container_id
        try:
            if cid:
                self.runtime.stop(cid, grace_sec)
        except Exception:
            log.exception("task %s: stopping its container failed; will retry", self.task_id)
            time.sleep(RETRY_SEC)
            with self._cond:
                self._stopping = False
            return
        self.poke()

    def _outcome(self) -> Outcome | None:
        """How the ended task finishes; None if released while the engine did not answer."""
        ctx = self.ctx
        while True:
            try:
                container = self.runtime.get(ctx.container_id) if ctx.container_id else None
                break
            except Exception as exc:
                log.warning("task %s: cannot inspect its container: %s", ctx.task_id, exc)
                with self._cond:
                    if self._released or self._cond.wait_for(lambda: self._released, RETRY_SEC):
                        return None
        reason, message, code = container_outcome(container, ctx.spec.container.resources.memoryMB)
        kill = self.kill_requested
        if kill is not None:
            reason, message = kill.reason, kill.message
        return Outcome(reason, message, code, killed=kill is not None)

    def _done(self, outcome: Outcome) -> None:
        with self._cond:
            self.phase = Phase.DONE
            self._cond.notify_all()
        log.info("task %s finished: %s %s", self.task_id, outcome.reason.value, outcome.message)
        self.listener.finished(self, outcome)
