"""The container health hook: the engine's verdict on a task's health check, reported.

The engine runs the job's health check (titus/model/health.py) on its schedule; this hook
reads the verdict and its last output from the container's state, at most once per
check interval, and puts them in the task's context (`task.health`, `task.healthOutput`), which
the runner reports when it changes. The hook never kills on its own: whether an unhealthy
service task is replaced, and when, is the master's call within the job's budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from titus.agent.hooks import KillRequest, TaskContext, TaskHook
from titus.agent.runtime import DockerRuntime
from titus.model.health import health_check_of
from titus.model.names import TaskContextKey

MAX_OUTPUT_CHARS = 256


class HealthCheckHook(TaskHook):
    name = "healthcheck"

    def __init__(
        self,
        runtime: DockerRuntime,
        poll_sec: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.runtime = runtime
        self.poll_sec = poll_sec
        self.clock = clock
        self._last: dict[str, float] = {}

    def check(self, ctx: TaskContext) -> KillRequest | None:
        health = health_check_of(ctx.spec.container.attributes)
        if health is None or not ctx.container_id:
            return None
        now = self.clock()
        # the engine's verdict changes once per check interval at most: read it no oftener
        every = max(self.poll_sec, float(health.interval_sec))
        if now - self._last.get(ctx.task_id, float("-inf")) < every:
            return None
        self._last[ctx.task_id] = now
        container = self.runtime.get(ctx.container_id)
        state = (container.attrs.get("State", {}).get("Health") or {}) if container else {}
        status = str(state.get("Status") or "")
        if not status:
            return None
        ctx.context[TaskContextKey.HEALTH] = status
        log = state.get("Log") or []
        if log:
            output = str(log[-1].get("Output") or "").strip()
            ctx.context[TaskContextKey.HEALTH_OUTPUT] = output[-MAX_OUTPUT_CHARS:]
        return None

    def release(self, ctx: TaskContext) -> None:
        self._last.pop(ctx.task_id, None)

    def teardown(self, ctx: TaskContext) -> None:
        self._last.pop(ctx.task_id, None)
