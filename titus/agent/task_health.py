"""The container health hook: the engine's verdict on a task's health check, reported.

The engine runs the job's health check (titus/model/health.py) on its schedule; this hook
reads the verdict and its last output from the container's state, at most once per
check interval, and puts them in the task's context (`task.health`, `task.healthOutput`), which
the runner reports when it changes. The hook never kills on its own: whether an unhealthy
service task is replaced, and when, is the master's call within the job's budget.

Each check the engine ran since the last read is counted by its outcome
(`titus_agent_health_checks_total{result}`): the engine keeps its last few runs with their
start time and exit code, so a run is counted once however often the verdict is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from titus.agent.hooks import KillRequest, TaskContext, TaskHook
from titus.agent.metrics import HEALTH_CHECKS
from titus.agent.runtime import DockerRuntime, parse_docker_time
from titus.model.health import health_check_of
from titus.model.names import TaskContextKey

MAX_OUTPUT_CHARS = 256

#: The exit code the engine records for a check it stopped at its timeout.
TIMED_OUT_EXIT_CODE = -1


def check_result(exit_code: object) -> str:
    """A check run's outcome as a bounded label: passed, failed or timeout."""
    if exit_code == 0:
        return "passed"
    if exit_code == TIMED_OUT_EXIT_CODE:
        return "timeout"
    return "failed"


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
        #: per task, the start time (epoch seconds) of the newest check run already counted
        self._counted: dict[str, float] = {}

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
        self._count_runs(ctx.task_id, log)
        if log:
            output = str(log[-1].get("Output") or "").strip()
            ctx.context[TaskContextKey.HEALTH_OUTPUT] = output[-MAX_OUTPUT_CHARS:]
        return None

    def _count_runs(self, task_id: str, log: list[dict[str, object]]) -> None:
        """Count the runs in the engine's log newer than the last one counted."""
        newest = self._counted.get(task_id, 0.0)
        starts = [parse_docker_time(str(run.get("Start") or "")) or 0.0 for run in log]
        for run, start in zip(log, starts, strict=True):
            if start > newest:
                HEALTH_CHECKS.labels(result=check_result(run.get("ExitCode"))).inc()
        if starts:
            self._counted[task_id] = max(newest, *starts)

    def release(self, ctx: TaskContext) -> None:
        self._forget(ctx.task_id)

    def teardown(self, ctx: TaskContext) -> None:
        self._forget(ctx.task_id)

    def _forget(self, task_id: str) -> None:
        self._last.pop(task_id, None)
        self._counted.pop(task_id, None)
