"""A task's life on a host as a sequence of hooks.

Each concern a task needs on a host (log files, network, IAM proxy, the container itself)
is a hook with a `setup` and a `teardown`. Hooks run in order; when one fails, the ones
already set up are torn down in reverse, so a failed launch leaves nothing behind. When
the task ends, all hooks are torn down in reverse. A new concern is a new hook, not an
`if` in the daemon.

After an agent restart, running tasks are not set up again: each hook is asked to `adopt`
what is already there (find the container, resume following its logs). When the agent
stops and its tasks keep running, each hook is asked to `release` what it holds (threads,
handles) without undoing anything, so the next agent process can adopt cleanly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from titus.model.launch import TaskSpec
from titus.model.states import Reason

log = logging.getLogger(__name__)


class LaunchError(Exception):
    """A launch that cannot go on, with the reason the task finishes with."""

    def __init__(self, reason: Reason, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class TaskContext:
    """What hooks share about one task on this host.

    `context` is what the task reports to the master (`agent.host`, `task.containerId`...);
    `values` is scratch space hooks use to hand things to later hooks or to their own
    teardown.
    """

    spec: TaskSpec
    agent_id: str
    log_dir: Path
    container_id: str | None = None
    context: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        return self.spec.taskId


class TaskHook(Protocol):
    """One concern of a task's life on a host."""

    name: str

    def setup(self, ctx: TaskContext) -> None:
        """Prepare this concern; raise (LaunchError for a known reason) when impossible.

        A hook whose setup raises cleans up what it made itself: it is not torn down.
        """
        ...

    def adopt(self, ctx: TaskContext) -> None:
        """Take over a task that was set up by an earlier agent process."""
        ...

    def release(self, ctx: TaskContext) -> None:
        """The agent stops, the task keeps running: let go of threads and handles."""
        ...

    def teardown(self, ctx: TaskContext) -> None:
        """Undo setup. Must be safe to call when setup only partly happened or twice."""
        ...


class HookRunner:
    """Runs a task's hooks in order and tears them down in reverse."""

    def __init__(self, hooks: Sequence[TaskHook]):
        self.hooks = list(hooks)

    def setup(self, ctx: TaskContext) -> None:
        """Set up every hook; on a failure tear down those already set up, then re-raise."""
        done: list[TaskHook] = []
        for hook in self.hooks:
            try:
                hook.setup(ctx)
            except BaseException:
                log.info("task %s: hook %s setup failed", ctx.task_id, hook.name)
                self._teardown(ctx, done)
                raise
            done.append(hook)

    def adopt(self, ctx: TaskContext) -> None:
        for hook in self.hooks:
            hook.adopt(ctx)

    def release(self, ctx: TaskContext) -> None:
        for hook in reversed(self.hooks):
            try:
                hook.release(ctx)
            except Exception:
                log.exception("task %s: hook %s release failed", ctx.task_id, hook.name)

    def teardown(self, ctx: TaskContext) -> None:
        """Tear down every hook in reverse; one failing teardown does not stop the others."""
        self._teardown(ctx, self.hooks)

    @staticmethod
    def _teardown(ctx: TaskContext, hooks: Sequence[TaskHook]) -> None:
        for hook in reversed(hooks):
            try:
                hook.teardown(ctx)
            except Exception:
                log.exception("task %s: hook %s teardown failed", ctx.task_id, hook.name)
