"""Tasks as Docker containers, through the Docker SDK.

One container per task, named `titus-<taskId>` and labelled with its task, job and agent,
so an agent that restarts finds its containers again from the engine alone. The task's
full spec rides along in a label for the same reason.

Isolation is the engine's: CPU shares and a CFS quota, a hard memory limit without swap,
a pids limit, a file-descriptor limit, no new privileges, every capability dropped but a
small set, and a disk quota where the storage driver enforces one (btrfs, zfs). Where it
cannot (overlay2 on ext4 refuses `size=`), each container's writable layer is measured
periodically and a task over its quota is killed with a reason that says so; the agent
says once at start which way it enforces disk. What a job may ask beyond the defaults
(bursting, capabilities, read-only root) and what it is refused is in isolation.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

from titus.agent.gate import StartGate, missing_command
from titus.agent.hooks import ContainerRecord, LaunchError, TaskContext, TaskHook
from titus.agent.isolation import DEFAULT_CAP_ALLOW_LIST, ContainerPolicy
from titus.model.health import health_check_of
from titus.model.launch import TaskSpec
from titus.model.states import Reason

log = logging.getLogger(__name__)

LABEL_TASK = "titus.task.id"
LABEL_JOB = "titus.job.id"
LABEL_AGENT = "titus.agent.id"
LABEL_SPEC = "titus.task.spec"
#: The GPU device ids a task holds (gpus.py).
LABEL_GPUS = "titus.gpus"

CPU_PERIOD_US = 100_000
MIN_API_VERSION = "1.41"  # Docker Engine 20.10
SHARES_PER_CPU = 1024

# Capabilities a task keeps after `cap_drop=ALL`: enough for ordinary programs that start
# as root to change owners and users of their own files, signal their own processes and
# bind ports below 1024; not enough to mount, trace, load modules or touch the network
# stack (no NET_ADMIN, NET_RAW, SYS_ADMIN, SYS_PTRACE, MKNOD).
DEFAULT_CAP_ADD: tuple[str, ...] = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "NET_BIND_SERVICE",
)

_QUOTA_DRIVERS = frozenset({"btrfs", "zfs"})

#: Container states in which a task is alive. `created` is not one: a container created
#: but never started runs nothing and never will by itself (container_outcome reports it
#: as such); `exited`, `dead` and `removing` are ends. The one definition every part of
#: the agent and the executor uses.
LIVE_STATES = frozenset({"running", "paused", "restarting"})


def is_live(container: Container | None) -> bool:
    """True while `container` exists and its task is running (see LIVE_STATES)."""
    return container is not None and container.status in LIVE_STATES


def parse_docker_time(value: str) -> float | None:
    """Epoch seconds of Docker's RFC 3339 timestamps (nanoseconds; Python parses
    microseconds); None for the zero time of a container that never started."""
    if not value or value.startswith("0001-"):
        return None
    try:
        main, _, frac = value.rstrip("Z").partition(".")
        frac = (frac + "000000")[:6]
        return datetime.fromisoformat(f"{main}.{frac}+00:00").timestamp()
    except ValueError:
        return None


def container_record(container: Container) -> ContainerRecord:
    """The typed record hooks share of a container: id, engine start time, address."""
    assert container.id is not None
    attrs = container.attrs
    ip = ""
    for net in (attrs.get("NetworkSettings", {}).get("Networks") or {}).values():
        if net.get("IPAddress"):
            ip = str(net["IPAddress"])
            break
    state = attrs.get("State", {})
    started = parse_docker_time(str(state.get("StartedAt") or ""))
    pid = int(state.get("Pid") or 0) if state.get("Running") else 0
    return ContainerRecord(id=container.id, started_at=started, ip=ip, pid=pid)


@dataclass
class RuntimeConfig:
    """Limits every container gets beyond what its job asks for. All have sane defaults."""

    pids_limit: int = 4096
    # Must not exceed the engine's own hard limit, which a container cannot raise (it
    # runs in a user namespace); scripts/docker-engine.sh raises the engine's where it can.
    nofile_soft: int = 16_384
    nofile_hard: int = 16_384
    default_shm_mb: int = 64
    cap_add: tuple[str, ...] = DEFAULT_CAP_ADD
    # capabilities a job may add by name (isolation.py says why these)
    cap_allow_list: tuple[str, ...] = DEFAULT_CAP_ALLOW_LIST
    # size of the tmpfs on /tmp of a container whose root filesystem is read-only
    read_only_tmp_mb: int = 64
    # "auto": enforce disk with the storage driver's quota where it can, else measure;
    # "measure": always measure and kill over quota (hosts whose quota is untrusted, tests)
    disk_enforcement: str = "auto"
    # the engine's network for task containers; empty: its default bridge (the network
    # hooks of a later issue give each task its own)
    network_mode: str = ""
    # the engine's device driver for a task's GPUs (the NVIDIA container toolkit's)
    gpu_driver: str = "nvidia"
    # No registry is reachable on these hosts: a missing image is the job's error, at once.
    pull_missing_images: bool = False
    # Bound the engine's own copy of a task's output (the agent keeps the full files).
    engine_log_max_size: str = "64m"
    engine_log_max_files: int = 2
    extra_labels: dict[str, str] = field(default_factory=dict)


class EngineNotConfigured(ValueError):
    """No Docker engine is configured, or its address is not one a client can use."""


#: Where the engine's address comes from, for messages: the setting, then the environment.
ENGINE_SETTING = "docker_url (TITUS_DOCKER_URL)"
ENGINE_ENVIRONMENT = "DOCKER_HOST"


def engine_url(url: str = "") -> tuple[str, str]:
    """The engine's address and what said it: `url` (the docker_url setting), else the
    environment's DOCKER_HOST. Neither is an error: the agent never guesses a default
    socket, which on a host may be another engine than the platform's."""
    if url:
        return url, ENGINE_SETTING
    env = os.environ.get("DOCKER_HOST", "")
    if env:
        return env, ENGINE_ENVIRONMENT
    raise EngineNotConfigured(
        f"no Docker engine configured: set {ENGINE_SETTING} or {ENGINE_ENVIRONMENT} to the "
        "engine's address (e.g. unix:///run/titus/docker.sock); the agent does not fall "
        "back to a default socket"
    )


def docker_client(url: str = "", timeout: int = 60) -> docker.DockerClient:
    """A client for `url`, or for the environment's DOCKER_HOST when `url` is empty; with
    neither, or an address no client can use, EngineNotConfigured names the setting.

    The pool is large because each running task holds connections for following its logs.
    """
    base_url, source = engine_url(url)
    log.info("docker engine: %s (from %s)", base_url, source)
    try:
        return docker.DockerClient(
            base_url=base_url, version="auto", timeout=timeout, max_pool_size=64
        )
    except docker.errors.DockerException as e:
        # the engine is down: the agent must start anyway (unhealthy) and talk to the
        # engine once it is back, with the API version of the oldest engine it supports
        log.warning(
            "docker engine at %s (from %s) does not answer (%s): unhealthy until it does",
            base_url,
            source,
            e,
        )
    try:
        return docker.DockerClient(
            base_url=base_url, version=MIN_API_VERSION, timeout=timeout, max_pool_size=64
        )
    except docker.errors.DockerException as e:
        raise EngineNotConfigured(
            f"Docker engine address {base_url!r} (from {source}) cannot be used: {e}"
        ) from None


def is_engine_error(exc: BaseException) -> bool:
    """True for failures of the engine or the way to it (not of the task)."""
    if isinstance(exc, docker.errors.APIError):
        return exc.is_server_error() or exc.status_code is None
    return isinstance(exc, requests.exceptions.RequestException | ConnectionError | OSError)


T = TypeVar("T")

RETRY_ATTEMPTS = 4
RETRY_BASE_SEC = 0.1
RETRY_MAX_SEC = 2.0


def with_retries(call: Callable[[], T], what: str, attempts: int = RETRY_ATTEMPTS) -> T:
    """Run an idempotent engine call, retrying engine errors with backoff and full jitter.

    Errors that are the task's (not found, conflict, bad request) are raised at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as e:
            if attempt == attempts or not is_engine_error(e):
                raise
            delay = random.uniform(0, min(RETRY_MAX_SEC, RETRY_BASE_SEC * 2**attempt))
            log.warning("engine call %s failed (%s); retry %d in %.2fs", what, e, attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def exit_outcome(state: dict[str, Any], memory_mb: int) -> tuple[Reason, str, int]:
    """How a container's end reads to its owner: (reason, message, exit code)."""
    code = int(state.get("ExitCode", -1))
    if state.get("OOMKilled"):
        return (
            Reason.FAILED,
            f"killed for exceeding its memory limit of {memory_mb} MB (exit code {code})",
            code,
        )
    if code == 0:
        return Reason.NORMAL, "exited with code 0", 0
    error = state.get("Error") or ""
    message = f"exited with code {code}" + (f": {error}" if error else "")
    return Reason.FAILED, message, code


def container_outcome(
    container: Container | None, memory_mb: int
) -> tuple[Reason, str, int | None]:
    """How a task whose container ended, or vanished, finishes: (reason, message, exit code)."""
    if container is None:
        return Reason.UNKNOWN_SYSTEM_ERROR, "container disappeared from the engine", None
    state = container.attrs.get("State", {})
    if state.get("Status") == "created":
        return Reason.TRANSIENT_SYSTEM_ERROR, "container was created but never started", None
    if state.get("ExitCode") == 127 and not state.get("OOMKilled"):
        name = missing_command(_last_stderr_line(container))
        if name is not None:
            # what the engine said of an ungated container whose command is not there
            return Reason.FAILED, f"its command was not found in the image: {name}", 127
    return exit_outcome(state, memory_mb)


def _last_stderr_line(container: Container) -> str:
    try:
        tail = container.logs(stdout=False, stderr=True, tail=1)
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return ""
    text = tail.decode("utf-8", "replace") if isinstance(tail, bytes) else ""
    return text.strip()


# The engine answers 500 when a container's own command cannot run; that is the job's
# fault, not the platform's.
_JOB_START_ERRORS = (
    "executable file not found",
    "no such file or directory",
    "permission denied",
    "exec format error",
)


class GpusUnusable(LaunchError):
    """The engine cannot give containers GPUs (no device driver for them): the task goes
    elsewhere, and this host offers no GPUs any more (gpus.py)."""


def gpus_unusable(exc: docker.errors.APIError) -> bool:
    """Docker's answer to a device request when no GPU driver is installed."""
    return "could not select device driver" in str(exc.explanation or "")


def start_failure_reason(exc: docker.errors.APIError) -> Reason | None:
    """The reason a failed container start finishes its task with; None: engine trouble."""
    if exc.is_client_error():
        return Reason.INVALID_REQUEST
    text = str(exc.explanation or "").lower()
    if any(marker in text for marker in _JOB_START_ERRORS):
        return Reason.FAILED
    return None


class DockerRuntime:
    """The agent's view of its Docker engine."""

    def __init__(self, client: docker.DockerClient, config: RuntimeConfig | None = None):
        self.client = client
        self.config = config or RuntimeConfig()
        self.storage_driver = ""
        self.disk_enforced = False

    def detect(self) -> None:
        """Ask the engine what it can enforce; say how disk limits will be handled."""
        info = self.client.info()
        self.storage_driver = str(info.get("Driver", ""))
        self.disk_enforced = (
            self.storage_driver in _QUOTA_DRIVERS and self.config.disk_enforcement != "measure"
        )
        if self.disk_enforced:
            log.info("disk limits enforced by the %s storage driver", self.storage_driver)
        else:
            log.warning(
                "storage driver %s cannot enforce disk quotas: disk is measured, not enforced",
                self.storage_driver,
            )

    @staticmethod
    def container_name(task_id: str) -> str:
        return f"titus-{task_id}"

    def ensure_image(self, reference: str) -> dict[str, Any]:
        """The image's configuration (its entrypoint and command among it), pulling the
        image when it is missing and pulls are allowed."""
        try:
            image = with_retries(lambda: self.client.images.get(reference), "image inspect")
            return dict(image.attrs.get("Config") or {})
        except docker.errors.ImageNotFound:
            pass
        if not self.config.pull_missing_images:
            raise LaunchError(Reason.INVALID_REQUEST, f"image {reference} not found on host")
        try:
            image = self.client.images.pull(reference)
        except docker.errors.NotFound as e:
            raise LaunchError(Reason.INVALID_REQUEST, f"image {reference} not found") from e
        return dict(image.attrs.get("Config") or {})

    def create_kwargs(
        self, spec: TaskSpec, agent_id: str, gpus: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Everything `containers.create` gets for a task: its command, env and limits,
        and exactly the GPU devices `gpus` (the GPU hook chose them).

        Raises LaunchError(invalidRequest) for a task asking for what is never granted.
        """
        c = spec.container
        r = c.resources
        cfg = self.config
        policy = ContainerPolicy.for_spec(spec, cfg.cap_allow_list)
        command = list(c.entryPoint) + list(c.command)
        memory = f"{r.memoryMB}m"
        labels = {
            **cfg.extra_labels,
            LABEL_TASK: spec.taskId,
            LABEL_JOB: spec.jobId,
            LABEL_AGENT: agent_id,
            LABEL_SPEC: spec.model_dump_json(by_alias=True, exclude_none=True),
        }
        env = {
            **c.env,
            "TITUS_TASK_ID": spec.taskId,
            "TITUS_JOB_ID": spec.jobId,
            "TITUS_TASK_INDEX": str(spec.taskIndex),
        }
        kwargs: dict[str, Any] = {
            "image": c.image.reference(),
            "command": command or None,
            "name": self.container_name(spec.taskId),
            "environment": env,
            "labels": labels,
            "init": True,
            "detach": True,
            "cpu_shares": max(2, int(r.cpu * SHARES_PER_CPU)),
            "mem_limit": memory,
            "memswap_limit": memory,
            "shm_size": f"{r.shmSizeMB or cfg.default_shm_mb}m",
            "pids_limit": cfg.pids_limit,
            "ulimits": [
                docker.types.Ulimit(name="nofile", soft=cfg.nofile_soft, hard=cfg.nofile_hard)
            ],
            # the engine's default seccomp profile applies: it is never turned off here
            "security_opt": ["no-new-privileges"],
            "privileged": False,
            "cap_drop": ["ALL"],
            "cap_add": list(dict.fromkeys([*cfg.cap_add, *policy.cap_add])),
            "log_config": docker.types.LogConfig(
                type="json-file",
                config={
                    "max-size": cfg.engine_log_max_size,
                    "max-file": str(cfg.engine_log_max_files),
                },
            ),
        }
        if not policy.cpu_bursting:
            # a quota of the job's cpu per 100 ms period: never more, even on an idle host
            kwargs["cpu_period"] = CPU_PERIOD_US
            kwargs["cpu_quota"] = max(1000, int(r.cpu * CPU_PERIOD_US))
        if cfg.network_mode:
            kwargs["network_mode"] = cfg.network_mode
        if policy.read_only_root_fs:
            kwargs["read_only"] = True
            kwargs["tmpfs"] = {"/tmp": f"rw,nosuid,nodev,size={cfg.read_only_tmp_mb}m"}
        if not command:
            # an imported image has no default command: say so instead of an engine error
            kwargs.pop("command")
        if self.disk_enforced and r.diskMB:
            kwargs["storage_opt"] = {"size": f"{r.diskMB}M"}
        health = health_check_of(c.attributes)
        if health is not None:
            kwargs["healthcheck"] = health.engine_form()
        if gpus:
            labels[LABEL_GPUS] = ",".join(gpus)
            kwargs["device_requests"] = [
                docker.types.DeviceRequest(
                    driver=cfg.gpu_driver, device_ids=list(gpus), capabilities=[["gpu"]]
                )
            ]
        return kwargs

    def create(
        self,
        spec: TaskSpec,
        agent_id: str,
        gpus: Sequence[str] = (),
        gate: StartGate | None = None,
        image_config: dict[str, Any] | None = None,
    ) -> Container:
        """The task's container, created; behind `gate` (its command waits for the gate
        to open) when given, `image_config` being its image's configuration."""
        kwargs = self.create_kwargs(spec, agent_id, gpus)
        if gate is not None:
            behind_gate(kwargs, image_config or {}, gate, spec.taskId)
        try:
            return self.client.containers.create(**kwargs)
        except docker.errors.ImageNotFound as e:
            ref = spec.container.image.reference()
            raise LaunchError(Reason.INVALID_REQUEST, f"image {ref} not found on host") from e
        except docker.errors.APIError as e:
            if e.is_client_error() and e.status_code != 409:
                raise LaunchError(
                    Reason.INVALID_REQUEST, f"container refused: {e.explanation}"
                ) from e
            raise

    def get(self, container_id: str) -> Container | None:
        try:
            return with_retries(lambda: self.client.containers.get(container_id), "inspect")
        except docker.errors.NotFound:
            return None

    def pid(self, container_id: str) -> int:
        """The process id of the container's main process; 0 when it does not run."""
        container = self.get(container_id) if container_id else None
        return int(container.attrs.get("State", {}).get("Pid") or 0) if container else 0

    def stop(self, container_id: str, grace_sec: float) -> None:
        timeout = max(0, int(round(grace_sec)))
        with contextlib.suppress(docker.errors.NotFound):
            with_retries(lambda: self.client.api.stop(container_id, timeout=timeout), "stop")

    def remove(self, container_id: str) -> None:
        try:
            with_retries(
                lambda: self.client.api.remove_container(container_id, force=True), "remove"
            )
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: removal already in progress
                raise

    @staticmethod
    def _labels(agent_id: str) -> list[str]:
        # several agents may share one engine (one machine playing many hosts): each sees
        # only the containers it launched
        return [LABEL_TASK, f"{LABEL_AGENT}={agent_id}"]

    def task_containers(self, agent_id: str) -> list[Container]:
        """The task containers this agent launched, running or not. One removed between the
        engine's listing and its inspection is left out, not an error: the sweep meets that
        whenever a container ends and is removed at the wrong moment."""
        filters = {"label": self._labels(agent_id)}
        return with_retries(
            lambda: list(
                self.client.containers.list(all=True, filters=filters, ignore_removed=True)
            ),
            "list",
        )

    def writable_size(self, container_id: str) -> int:
        """Bytes in a container's writable layer (the engine walks that layer only)."""
        filters = {"id": container_id}
        rows = with_retries(
            lambda: self.client.api.containers(all=True, size=True, filters=filters),
            "size",
        )
        return sum(int(row.get("SizeRw") or 0) for row in rows if row["Id"] == container_id)

    def die_events(self, agent_id: str) -> Iterator[dict[str, Any]]:
        """The engine's `die` events for this agent's containers; close() the result to stop."""
        return self.client.events(
            decode=True,
            filters={"type": "container", "event": ["die"], "label": self._labels(agent_id)},
        )


def behind_gate(
    kwargs: dict[str, Any], image_config: dict[str, Any], gate: StartGate, task_id: str
) -> None:
    """Have the container run its command once `gate` opens (gate.py): the gate's shell
    is the entrypoint, and the command is the whole argv the engine would have run, the
    image's entrypoint then the task's command or else the image's. A container with
    nothing to run is left as it is, for the engine to refuse as it would."""
    command = kwargs.get("command") or list(image_config.get("Cmd") or [])
    argv = [*(image_config.get("Entrypoint") or []), *command]
    if not argv:
        return
    kwargs["entrypoint"] = gate.entrypoint()
    kwargs["command"] = argv
    kwargs["mounts"] = [*kwargs.get("mounts", []), *gate.prepare(task_id)]


class ContainerHook(TaskHook):
    """The task's container: create and start it; remove it when the task ends. With a
    start gate, its command waits for the gate (made here, removed with the container,
    opened by `StartGateHook` once the hooks after this one are set up)."""

    name = "container"

    def __init__(self, runtime: DockerRuntime, gate: StartGate | None = None):
        self.runtime = runtime
        self.gate = gate

    def setup(self, ctx: TaskContext) -> None:
        rt = self.runtime
        image_config = rt.ensure_image(ctx.spec.container.image.reference())
        try:
            container = rt.create(ctx.spec, ctx.agent_id, ctx.gpus, self.gate, image_config)
        except BaseException:
            self.teardown(ctx)  # the gate made for it
            raise
        assert container.id is not None
        ctx.container = ContainerRecord(id=container.id)
        try:
            container.start()
            container.reload()
        except BaseException as e:
            self.teardown(ctx)
            if isinstance(e, docker.errors.APIError):
                if ctx.gpus and gpus_unusable(e):
                    raise GpusUnusable(
                        Reason.TRANSIENT_SYSTEM_ERROR,
                        f"this host's engine cannot give containers GPUs: {e.explanation}",
                    ) from e
                reason = start_failure_reason(e)
                if reason is not None:
                    raise LaunchError(reason, f"container did not start: {e.explanation}") from e
            raise
        ctx.describe_container(container_record(container))

    def adopt(self, ctx: TaskContext) -> None:
        if ctx.container_id:
            container = self.runtime.get(ctx.container_id)
            if container is not None:
                ctx.describe_container(container_record(container))

    def teardown(self, ctx: TaskContext) -> None:
        if ctx.container_id:
            self.runtime.remove(ctx.container_id)
        if self.gate is not None:
            self.gate.remove(ctx.task_id)
