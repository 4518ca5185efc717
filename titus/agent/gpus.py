"""GPUs: which of this host's devices each task gets, and only those.

A host offers the GPUs it has: the device ids `agent_gpus` declares (hosts whose devices
are managed elsewhere, or to offer fewer), else the NVIDIA devices it finds
(/dev/nvidia0, /dev/nvidia1...). The master counts them like any other resource, so a task
asking for `gpu: N` goes only to a host with N free. On the host the GPU hook, set up
before the container, takes N of the free device ids for the task; the container gets
exactly those (an engine device request) and carries them in a label, so an agent that
restarts knows which devices its running tasks hold. Teardown gives them back.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from titus.agent.hooks import LaunchError, TaskContext, TaskHook
from titus.agent.runtime import LABEL_GPUS, DockerRuntime, GpusUnusable
from titus.coord.base import AgentInfo
from titus.model import names
from titus.model.states import Reason
from titus.settings import Settings

log = logging.getLogger("titus.agent.gpus")

_NVIDIA = re.compile(r"^nvidia(\d+)$")


def host_gpus(settings: Settings, dev: Path = Path("/dev")) -> list[str]:
    """The device ids this host offers (see the module docstring)."""
    if settings.agent_gpus:
        return list(dict.fromkeys(settings.agent_gpus))
    try:
        found = [m.group(1) for p in dev.iterdir() if (m := _NVIDIA.fullmatch(p.name))]
    except OSError:
        return []
    return sorted(found, key=int)


class GpuPool:
    """The host's device ids and which task holds each (thread-safe)."""

    def __init__(self, devices: list[str]):
        self.devices = list(devices)
        self._held: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        #: Why the engine cannot give containers GPUs, once a launch found out; until the
        #: agent restarts, the host offers none and takes no GPU task.
        self.unusable: str | None = None

    def give_up(self, why: str) -> None:
        with self._lock:
            first = self.unusable is None
            self.unusable = why
        if first:
            log.warning("GPUs no longer offered: %s (restart the agent once fixed)", why)

    def free(self) -> list[str]:
        with self._lock:
            return self._free()

    def _free(self) -> list[str]:
        taken = {d for ids in self._held.values() for d in ids}
        return [d for d in self.devices if d not in taken]

    def allocate(self, task_id: str, count: int) -> list[str]:
        with self._lock:
            if task_id in self._held:
                return list(self._held[task_id])
            if self.unusable is not None:
                raise LaunchError(Reason.TRANSIENT_SYSTEM_ERROR, self.unusable)
            free = self._free()
            if len(free) < count:
                # the master counted otherwise (a restart it has not seen yet): elsewhere
                raise LaunchError(
                    Reason.TRANSIENT_SYSTEM_ERROR,
                    f"task needs {count} GPUs, this host has {len(free)} free "
                    f"of {len(self.devices)}",
                )
            self._held[task_id] = free[:count]
            return list(free[:count])

    def hold(self, task_id: str, devices: list[str]) -> None:
        """An adopted task's devices, as its container's label says."""
        with self._lock:
            self._held[task_id] = [d for d in devices if d in self.devices]

    def release(self, task_id: str) -> None:
        with self._lock:
            self._held.pop(task_id, None)


class GpuHook(TaskHook):
    """Takes the task's devices before its container is made; gives them back after."""

    name = "gpu"

    def __init__(self, pool: GpuPool, runtime: DockerRuntime):
        self.pool = pool
        self.runtime = runtime

    def setup(self, ctx: TaskContext) -> None:
        count = ctx.spec.container.resources.gpu
        if count:
            ctx.gpus = self.pool.allocate(ctx.task_id, count)

    def adopt(self, ctx: TaskContext) -> None:
        container = self.runtime.get(ctx.container_id) if ctx.container_id else None
        held = (container.labels.get(LABEL_GPUS, "") if container is not None else "").split(",")
        ctx.gpus = [d for d in held if d]
        if ctx.gpus:
            self.pool.hold(ctx.task_id, ctx.gpus)

    def teardown(self, ctx: TaskContext) -> None:
        self.pool.release(ctx.task_id)
        ctx.gpus = []
        if isinstance(ctx.setup_error, GpusUnusable):
            self.pool.give_up(str(ctx.setup_error))

    def describe_host(self, info: AgentInfo) -> None:
        """No GPUs offered once the engine showed it cannot give them: GPU tasks wait,
        why-pending naming the gpu rule, instead of failing here again and again."""
        if self.pool.unusable is not None:
            info.resources[names.GPU] = 0.0
