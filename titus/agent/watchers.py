"""Hooks that watch a running task and ask for it to be killed: the limits the engine
does not enforce by itself, and containers nobody owns.

They run in the task runner's `check` phase (lifecycle.py), the same in the agent daemon
and in the Mesos executor, so a task over its runtime limit or disk quota is killed
whichever cluster driver placed it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from titus.agent.clock import AGENT_CLOCK
from titus.agent.hooks import KillRequest, TaskContext, TaskHook
from titus.agent.runtime import DockerRuntime
from titus.model.states import Reason

MB = 1024 * 1024


class RuntimeLimitHook(TaskHook):
    """A batch task running longer than its `runtimeLimitSec` is killed.

    Time counts from the container's start as the engine recorded it (StartedAt), not
    from when this process first saw the task: an agent that adopts a task after a
    restart, or an executor, counts from the same moment. That time is compared once, at
    the first look, with the agent's steady clock (titus/agent/clock.py: the wall clock at
    the agent's start carried on the monotonic clock), not with the host's wall clock as
    it reads then: a task that starts while the host's clock is stepped ahead would
    otherwise look as old as the step at its first look and be killed at once. From then
    on the count goes by the monotonic clock, so a step of the host's clock (NTP, an
    operator) neither kills a task early nor lets it run on.
    """

    name = "runtime-limit"

    def __init__(
        self,
        clock: Callable[[], float] = AGENT_CLOCK,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.clock = clock
        self.monotonic = monotonic
        # task id -> (its container's start, seconds it had run at the first look, the
        # monotonic time of that look)
        self._anchors: dict[str, tuple[float, float, float]] = {}

    def check(self, ctx: TaskContext) -> KillRequest | None:
        limit = ctx.spec.runtimeLimitSec
        started = ctx.container.started_at if ctx.container is not None else None
        if not limit or ctx.spec.jobType.upper() != "BATCH" or started is None:
            return None
        now = self.monotonic()
        anchor = self._anchors.get(ctx.task_id)
        if anchor is None or anchor[0] != started:
            anchor = (started, max(0.0, self.clock() - started), now)
            self._anchors[ctx.task_id] = anchor
        if anchor[1] + (now - anchor[2]) <= limit:
            return None
        return KillRequest(
            Reason.RUNTIME_LIMIT_EXCEEDED, f"killed after exceeding its runtime limit of {limit} s"
        )

    def release(self, ctx: TaskContext) -> None:
        self._anchors.pop(ctx.task_id, None)

    def teardown(self, ctx: TaskContext) -> None:
        self._anchors.pop(ctx.task_id, None)


class DiskQuotaHook(TaskHook):
    """Where the storage driver cannot enforce `diskMB`, the container's writable layer is
    measured every `interval_sec` and a task over its quota is killed, with a reason that
    says the quota was measured. Where the driver enforces it, this hook does nothing."""

    name = "disk-quota"

    def __init__(self, runtime: DockerRuntime, interval_sec: float):
        self.runtime = runtime
        self.interval_sec = interval_sec
        self._lock = threading.Lock()
        self._measured: dict[str, float] = {}  # task id -> monotonic time of its last measure

    def check(self, ctx: TaskContext) -> KillRequest | None:
        limit_mb = ctx.spec.container.resources.diskMB
        cid = ctx.container_id
        if self.runtime.disk_enforced or not limit_mb or not cid:
            return None
        now = time.monotonic()
        with self._lock:
            if now - self._measured.get(ctx.task_id, float("-inf")) < self.interval_sec:
                return None
            self._measured[ctx.task_id] = now
        used = self.runtime.writable_size(cid)
        if used <= limit_mb * MB:
            return None
        return KillRequest(
            Reason.FAILED,
            f"killed for exceeding its disk quota of {limit_mb} MB ({used // MB} MB written; "
            f"this host's storage driver {self.runtime.storage_driver} cannot enforce quotas, "
            "disk use is measured)",
        )

    def release(self, ctx: TaskContext) -> None:
        self.teardown(ctx)

    def teardown(self, ctx: TaskContext) -> None:
        with self._lock:
            self._measured.pop(ctx.task_id, None)


class OrphanHook(TaskHook):
    """A task nobody owns (its ownership says since when) is killed after `grace_sec`.

    Who owns a task is the host's business: the agent daemon marks tasks that appear
    behind its back or that the master leaves out of its claim; the Mesos executor runs
    only tasks Mesos gave it, so none of its tasks is ever marked.
    """

    name = "orphan"

    def __init__(self, grace_sec: float, clock: Callable[[], float] = time.monotonic):
        self.grace_sec = grace_sec
        self.clock = clock

    def check(self, ctx: TaskContext) -> KillRequest | None:
        since = ctx.ownership.orphan_since
        if since is None or self.clock() - since < self.grace_sec:
            return None
        return KillRequest(
            Reason.KILLED,
            f"container owned by no task: killed after a {self.grace_sec:.0f} s grace period",
        )
