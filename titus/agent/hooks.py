"""A task's life on a host as a sequence of hooks.

Each concern a task needs on a host (log files, network, IAM proxy, the container itself,
a limit the engine cannot enforce) is a hook. The task runner (lifecycle.py) walks every
task through the same phases and calls, in order, the hooks that care about each one:

- `setup` (prepare and start): make what the task needs; the container hook starts the
  container here. When one hook fails, the ones already set up are torn down in reverse,
  so a failed launch leaves nothing behind.
- `adopt`: after an agent restart a running task is not set up again; each hook takes over
  what is already there (find the container, resume following its logs).
- `check` (running, periodic): a watcher looks at the running task and may ask for it to
  be killed, with the reason the task finishes with (runtime limit, disk quota, orphan).
- `release`: the agent stops and the task keeps running: let go of threads and handles
  without undoing anything, so the next agent process can adopt cleanly.
- `teardown`: the task ended; undo setup, in reverse order.

`TaskHook` gives every phase a no-op default, so a hook implements only the phases it
needs. Hooks hand each other typed results on the `TaskContext` (the container's id and
start time); what a hook keeps for its own later phases it keeps itself, keyed by task.
A new concern is a new hook, not an `if` in the daemon or the executor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from titus.agent.metrics import ADOPTED, HOOK_SECONDS, LAUNCH_SECONDS
from titus.coord.base import AgentInfo
from titus.model.launch import TaskSpec
from titus.model.names import TaskContextKey
from titus.model.states import Reason

log = logging.getLogger(__name__)


class LaunchError(Exception):
    """A launch that cannot go on, with the reason the task finishes with."""

    def __init__(self, reason: Reason, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class KillRequest:
    """A watcher's verdict on a running task: kill it, and finish it with this reason."""

    reason: Reason
    message: str


@dataclass
class ContainerRecord:
    """The task's container as the container hook made or found it.

    `started_at` is the engine's start time (docker State.StartedAt, epoch seconds), None
    until the container has started: limits that count time count from it, so an agent
    that adopts a task after a restart counts from the same moment as the one that
    started it.
    """

    id: str
    started_at: float | None = None
    ip: str = ""
    #: Its main process when the record was made (0: not running then), so hooks right
    #: after the start need not ask the engine again.
    pid: int = 0


@dataclass
class Ownership:
    """Whether anyone wants the task: `orphan_since` is the monotonic time it was found to
    be nobody's (started behind the agent's back, or left out of the master's claim);
    None while it is owned."""

    orphan_since: float | None = None


@dataclass
class TaskContext:
    """What hooks share about one task on this host.

    `context` is what the task reports to the master (`agent.host`, `task.containerId`...);
    `container` is the container hook's result for later hooks and phases.
    """

    spec: TaskSpec
    agent_id: str
    log_dir: Path
    container: ContainerRecord | None = None
    context: dict[str, str] = field(default_factory=dict)
    ownership: Ownership = field(default_factory=Ownership)
    #: The host's GPU device ids the task holds (gpus.py), given to its container.
    gpus: list[str] = field(default_factory=list)
    #: Why the setup failed, for the hooks torn down after it (set by HookRunner.setup).
    setup_error: BaseException | None = None

    @property
    def task_id(self) -> str:
        return self.spec.taskId

    @property
    def container_id(self) -> str | None:
        return self.container.id if self.container is not None else None

    def describe_container(self, record: ContainerRecord) -> None:
        """Keep the container's record and say it in the task's context."""
        self.container = record
        self.context[TaskContextKey.CONTAINER_ID] = record.id
        if record.ip:
            self.context[TaskContextKey.CONTAINER_IP] = record.ip


class TaskHook:
    """One concern of a task's life on a host; every phase is a no-op unless overridden."""

    name = "hook"

    def setup(self, ctx: TaskContext) -> None:
        """Prepare this concern; raise (LaunchError for a known reason) when impossible.

        A hook whose setup raises cleans up what it made itself: it is not torn down.
        """

    def adopt(self, ctx: TaskContext) -> None:
        """Take over a task that was set up by an earlier agent process."""

    def check(self, ctx: TaskContext) -> KillRequest | None:
        """The task runs: a kill it needs now, or None. Called about once a second."""
        return None

    def release(self, ctx: TaskContext) -> None:
        """The agent stops, the task keeps running: let go of threads and handles."""

    def teardown(self, ctx: TaskContext) -> None:
        """Undo setup. Must be safe to call when setup only partly happened or twice."""

    # agent-wide phases (not one task's)

    def describe_host(self, info: AgentInfo) -> None:
        """Add what this concern tells the master about the host (resources it counts,
        state the scheduler reads) to the host's registration; called before each one."""

    def upkeep(self, running: Collection[str]) -> None:
        """Agent-wide periodic work, given the ids of the tasks the agent holds now (those
        starting, running or stopping): called about once a second from the agent's
        upkeep thread, so a hook paces itself. What a task's end does not clean up (after
        a crash, say) is cleaned up here."""


class HookRunner:
    """Runs a task's hooks phase by phase: in order, and teardown in reverse."""

    def __init__(self, hooks: Sequence[TaskHook]):
        self.hooks = list(hooks)

    def setup(self, ctx: TaskContext) -> None:
        """Set up every hook; on a failure tear down those already set up, then re-raise."""
        done: list[TaskHook] = []
        launch = time.perf_counter()
        for hook in self.hooks:
            began = time.perf_counter()
            try:
                hook.setup(ctx)
            except BaseException as exc:
                log.info("task %s: hook %s setup failed", ctx.task_id, hook.name)
                HOOK_SECONDS.labels(hook.name, "failed").observe(time.perf_counter() - began)
                LAUNCH_SECONDS.labels("failed").observe(time.perf_counter() - launch)
                ctx.setup_error = exc
                self._teardown(ctx, done)
                raise
            HOOK_SECONDS.labels(hook.name, "ok").observe(time.perf_counter() - began)
            done.append(hook)
        LAUNCH_SECONDS.labels("ok").observe(time.perf_counter() - launch)

    def adopt(self, ctx: TaskContext) -> None:
        ADOPTED.inc()
        for hook in self.hooks:
            hook.adopt(ctx)

    def check(self, ctx: TaskContext) -> KillRequest | None:
        """The first kill a watcher asks for; a watcher that fails is logged and skipped."""
        for hook in self.hooks:
            try:
                verdict = hook.check(ctx)
            except Exception:
                log.exception("task %s: hook %s check failed", ctx.task_id, hook.name)
                continue
            if verdict is not None:
                return verdict
        return None

    def release(self, ctx: TaskContext) -> None:
        for hook in reversed(self.hooks):
            try:
                hook.release(ctx)
            except Exception:
                log.exception("task %s: hook %s release failed", ctx.task_id, hook.name)

    def teardown(self, ctx: TaskContext) -> None:
        """Tear down every hook in reverse; one failing teardown does not stop the others."""
        self._teardown(ctx, self.hooks)

    def describe_host(self, info: AgentInfo) -> None:
        for hook in self.hooks:
            try:
                hook.describe_host(info)
            except Exception:
                log.exception("hook %s could not describe the host", hook.name)

    def upkeep(self, running: Collection[str]) -> None:
        """Each hook's upkeep; one failing does not stop the others."""
        for hook in self.hooks:
            try:
                hook.upkeep(running)
            except Exception:
                log.exception("hook %s upkeep failed", hook.name)

    @staticmethod
    def _teardown(ctx: TaskContext, hooks: Sequence[TaskHook]) -> None:
        for hook in reversed(hooks):
            try:
                hook.teardown(ctx)
            except Exception:
                log.exception("task %s: hook %s teardown failed", ctx.task_id, hook.name)
