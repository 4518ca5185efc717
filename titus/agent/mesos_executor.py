"""The Titus executor for Mesos: one process per task, started by a Mesos agent.

On Mesos the agent daemon (daemon.py) is not there: the Mesos agent starts this module (the
command of the ExecutorInfo the framework sends, see titus/master/mesos.py) for each task,
with the TaskSpec as JSON in the TaskInfo's `data`. It runs the task with the same task
runner (lifecycle.py) and the same hooks as the direct-mode agent (`task_hooks`: log files
and their upload, the container, copying its output, runtime limit, disk quota), so a task
behaves the same whichever cluster driver placed it; this module only maps the runner's
news to Mesos status updates.

One executor per task, so a crashed executor takes one task with it. The life of a task:
LAUNCH -> TASK_STARTING, hooks set up, TASK_RUNNING, the container ends, hooks torn down,
then a terminal update (TASK_FINISHED / TASK_FAILED / TASK_KILLED) whose `data` carries the
exit code, the Titus reason and the task's context. KILL stops the container within the kill
grace period; SHUTDOWN stops everything within the agent's shutdown grace and exits.

Updates are kept until the agent says they were acknowledged by the framework (ACKNOWLEDGED):
a failed UPDATE call is retried, unacknowledged ones go with a re-subscription (pymesos sends
`driver.updates` in SUBSCRIBE), and the executor exits only once its terminal update is
acknowledged (or after a long bound: the agent keeps the update and retries it by itself).

Containers carry the executor's pid in a label. An executor killed outright leaves its
container behind; the next executor started on the same agent removes containers whose
executor process is gone, since nobody else will report or stop them, except the
container of its own task (one executor per task: the executor id is the task id): an
executor started again for the same task adopts that container, as the agent daemon does
after a restart, instead of starting a second one.

Task output goes to TITUS_LOG_DIR when it is set, else to `logs/` in the Mesos sandbox,
which Mesos keeps per run and serves to operators.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pymesos import Executor, MesosExecutorDriver, encode_data

from titus.agent.hooks import HookRunner, TaskContext
from titus.agent.lifecycle import Outcome, TaskRunner, task_hooks
from titus.agent.logs import LogFiles
from titus.agent.network.hook import container_network_mode
from titus.agent.runtime import (
    LABEL_TASK,
    DockerRuntime,
    EngineNotConfigured,
    RuntimeConfig,
    docker_client,
)
from titus.agent.server import CallGuard, bound_port, logs_router, serve_in_background
from titus.agent.upload import LogUploader
from titus.model.launch import TaskSpec
from titus.model.names import AgentContext
from titus.model.states import Reason
from titus.settings import Settings, load_settings

log = logging.getLogger("titus.agent.mesos_executor")

LABEL_EXECUTOR_PID = "titus.mesos.executorPid"
LABEL_EXECUTOR_ID = "titus.mesos.executorId"
POLL_SEC = 0.25
#: How long a terminal update may wait for its acknowledgement before the executor exits
#: anyway (the agent keeps the update and retries it; the executor only holds a process).
ACK_WAIT_SEC = 3600.0


def _grace_seconds(value: str | None, default: float) -> float:
    """Mesos durations such as `5secs`, `2mins`, `500ms`, `1hrs`."""
    if not value:
        return default
    units = (("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("secs", 1), ("mins", 60), ("hrs", 3600))
    for suffix, scale in units:
        if value.endswith(suffix):
            with contextlib.suppress(ValueError):
                return float(value[: -len(suffix)]) * scale
    with contextlib.suppress(ValueError):
        return float(value)
    return default


@dataclass
class _Run:
    """One task of this executor. A kill that comes before its runner exists waits in
    `pending_kill` (message, grace)."""

    task_id: str
    info: dict[str, Any]
    ctx: TaskContext | None = None
    runner: TaskRunner | None = None
    pending_kill: tuple[str, float | None] | None = None
    final_uuid: str | None = None
    done: threading.Event = field(default_factory=threading.Event)  # terminal update sent
    acked: threading.Event = field(default_factory=threading.Event)  # ... and acknowledged


class _Driver(MesosExecutorDriver):
    """Tells the executor when the agent relays a framework's acknowledgement."""

    def on_acknowledged(self, event: dict[str, Any]) -> None:
        super().on_acknowledged(event)
        handler = getattr(self.executor, "acknowledged", None)
        if handler is not None:
            handler(event["task_id"]["value"], event["uuid"])


class _Updates:
    """The runner's listener: its news become the executor's status updates."""

    def __init__(self, executor: TitusExecutor):
        self.executor = executor

    def started(self, runner: TaskRunner) -> None:
        self.executor.task_running(runner)

    def finished(self, runner: TaskRunner, outcome: Outcome) -> None:
        self.executor.task_ended(runner, outcome)

    def updated(self, runner: TaskRunner) -> None:
        self.executor.task_running(runner)  # TASK_RUNNING again, with the new context


class TitusExecutor(Executor):
    def __init__(
        self,
        settings: Settings,
        runtime: DockerRuntime,
        hooks: HookRunner,
        log_files: LogFiles,
        shutdown_grace: float,
    ):
        self.settings = settings
        self.runtime = runtime
        self.hooks = hooks
        self.log_files = log_files
        self.shutdown_grace = shutdown_grace
        self.agent_id = os.environ.get("MESOS_SLAVE_ID", "")
        self.agent_context: dict[str, str] = {AgentContext.ID: self.agent_id}
        self.runs: dict[str, _Run] = {}
        self.lock = threading.Lock()
        self.driver: Any = None
        self.finished = threading.Event()  # every task done and acknowledged
        self._detected = False
        self.logs_address = ""  # where this executor serves its task's output

    def is_running(self, task_id: str) -> bool:
        run = self.runs.get(task_id)
        return run is not None and not run.done.is_set()

    # ---- pymesos callbacks (its I/O thread: return quickly) ----------------------------
    def registered(self, driver: Any, executor_info: Any, framework_info: Any, agent: Any) -> None:
        self.driver = driver
        attrs: dict[str, str] = {}
        for a in agent.get("attributes") or []:
            if a.get("type") == "TEXT":
                attrs[a["name"]] = a.get("text", {}).get("value", "")
        hostname = str(agent.get("hostname", ""))
        self.agent_context = {
            AgentContext.ID: self.agent_id,
            AgentContext.HOST: hostname,
            AgentContext.ZONE: attrs.get("zone", ""),
            AgentContext.REGION: attrs.get("region", ""),
            AgentContext.INSTANCE_ID: attrs.get("instanceId", self.agent_id),
            AgentContext.INSTANCE_TYPE: attrs.get("instanceType", attrs.get("itype", "")),
        }
        if self.logs_address:
            self.agent_context[AgentContext.LOGS_ADDRESS] = self.logs_address
        log.info("registered with agent %s (%s)", self.agent_id, hostname)

    def reregistered(self, driver: Any, agent: Any) -> None:
        log.info("re-registered with agent %s", self.agent_id)

    def disconnected(self, driver: Any) -> None:
        log.warning("disconnected from the agent; pymesos reconnects")

    def launchTask(self, driver: Any, task: Any) -> None:  # noqa: N802 (pymesos's name)
        self.driver = driver
        task_id = task["task_id"]["value"]
        run = _Run(task_id, dict(task))
        with self.lock:
            if task_id in self.runs:
                return
            self.runs[task_id] = run
        threading.Thread(target=self._run, args=(run,), name=f"task-{task_id}", daemon=True).start()

    def killTask(self, driver: Any, task_id: Any) -> None:  # noqa: N802
        with self.lock:
            run = self.runs.get(task_id["value"])
        if run is not None:
            log.info("task %s: kill requested", run.task_id)
            self._kill(run, "killed on request")

    def _kill(self, run: _Run, message: str, grace: float | None = None) -> None:
        with self.lock:
            runner = run.runner
            if runner is None and run.pending_kill is None:
                run.pending_kill = (message, grace)
        if runner is not None:
            runner.kill(Reason.KILLED, message, grace)

    def shutdown(self, driver: Any) -> None:
        """Stop every task within the agent's grace period, report them, then exit."""
        log.info("shutdown: stopping every task")
        deadline = time.monotonic() + max(0.5, self.shutdown_grace - 0.5)
        with self.lock:
            runs = list(self.runs.values())
        grace = max(0.0, self.shutdown_grace - 1.0)
        for run in runs:
            self._kill(run, "executor shut down by the agent", grace)
        for run in runs:
            run.done.wait(max(0.0, deadline - time.monotonic()))
        self.finished.set()

    def frameworkMessage(self, driver: Any, message: Any) -> None:  # noqa: N802
        pass

    def error(self, driver: Any, message: str) -> None:
        log.error("agent error: %s", message)

    def acknowledged(self, task_id: str, status_uuid: str) -> None:
        with self.lock:
            run = self.runs.get(task_id)
            if run is None or run.final_uuid != status_uuid:
                return
            run.acked.set()
            if all(r.acked.is_set() for r in self.runs.values()):
                self.finished.set()

    # ---- updates ------------------------------------------------------------------------
    def _update(
        self,
        run: _Run,
        state: str,
        message: str = "",
        data: dict[str, Any] | None = None,
    ) -> str:
        """Send one status update, retrying until the agent takes it; kept in the driver's
        `updates` (sent again with a re-subscription) until acknowledged."""
        raw = uuid.uuid4().bytes
        status: dict[str, Any] = {
            "task_id": {"value": run.task_id},
            "state": state,
            "uuid": encode_data(raw),
            "timestamp": time.time(),
            "source": "SOURCE_EXECUTOR",
        }
        if message:
            status["message"] = message[:4000]
        if data is not None:
            status["data"] = base64.b64encode(json.dumps(data).encode()).decode()
        driver = self.driver
        driver.updates[uuid.UUID(bytes=raw)] = status
        delay = 0.2
        deadline = time.monotonic() + ACK_WAIT_SEC
        while True:
            try:
                driver.sendStatusUpdate(dict(status))
                break
            except Exception as exc:  # the agent restarting: it comes back, or we are killed
                if time.monotonic() > deadline:
                    log.error("task %s: giving up sending %s: %s", run.task_id, state, exc)
                    break
                log.warning("task %s: sending %s failed (%s); retrying", run.task_id, state, exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        return str(status["uuid"])

    def _data(self, run: _Run, **extra: Any) -> dict[str, Any]:
        ctx = run.ctx
        data: dict[str, Any] = {"jobId": ctx.spec.jobId if ctx else ""}
        if ctx is not None:
            data["context"] = dict(ctx.context)
            if ctx.container_id:
                data["containerId"] = ctx.container_id
        data.update(extra)
        return data

    def _finish(self, run: _Run, outcome: Outcome) -> None:
        if outcome.reason == Reason.NORMAL:
            state = "TASK_FINISHED"
        elif outcome.killed:
            state = "TASK_KILLED"
        else:
            state = "TASK_FAILED"
        data = self._data(
            run,
            reasonCode=outcome.reason.value,
            reasonMessage=outcome.message,
            exitCode=outcome.exit_code,
        )
        log.info("task %s: %s %s %s", run.task_id, state, outcome.reason.value, outcome.message)
        run.final_uuid = self._update(run, state, outcome.message, data)
        run.done.set()

    # ---- the runner's news, as status updates -------------------------------------------
    def task_running(self, runner: TaskRunner) -> None:
        run = self.runs[runner.task_id]
        self._update(run, "TASK_RUNNING", data=self._data(run))

    def task_ended(self, runner: TaskRunner, outcome: Outcome) -> None:
        self._finish(self.runs[runner.task_id], outcome)

    # ---- the task's life ----------------------------------------------------------------
    def _run(self, run: _Run) -> None:
        try:
            self._life(run)
        except Exception as exc:
            log.exception("task %s: executor failure", run.task_id)
            if not run.done.is_set():
                self._finish(run, Outcome(Reason.CRASHED, f"executor failure: {exc}"))
        if run.final_uuid is not None and not run.acked.wait(ACK_WAIT_SEC):
            log.warning("task %s: terminal update not acknowledged; exiting anyway", run.task_id)
            run.acked.set()
        with self.lock:
            if all(r.acked.is_set() for r in self.runs.values()):
                self.finished.set()

    def _life(self, run: _Run) -> None:
        try:
            raw = base64.b64decode(run.info.get("data") or "")
            spec = TaskSpec.model_validate_json(raw)
            if spec.taskId != run.task_id:
                raise ValueError(f"spec names task {spec.taskId}")
            log_dir = self.log_files.task_dir(spec.taskId)
        except ValueError as exc:
            self._update(run, "TASK_STARTING")
            self._finish(run, Outcome(Reason.INVALID_REQUEST, f"unreadable task spec: {exc}"))
            return
        run.ctx = ctx = TaskContext(
            spec=spec, agent_id=self.agent_id, log_dir=log_dir, context=dict(self.agent_context)
        )
        runner = TaskRunner(
            ctx,
            self.hooks,
            self.runtime,
            _Updates(self),
            kill_grace_sec=self.settings.kill_grace_sec,
            inspect_interval_sec=POLL_SEC,
            preflight=self._detect,
        )
        with self.lock:
            run.runner = runner
            pending = run.pending_kill
        if pending is not None:
            runner.kill(Reason.KILLED, *pending)
        self._update(run, "TASK_STARTING", data=self._data(run))
        runner.run()

    def _detect(self) -> None:
        """Ask the engine what it enforces, once per executor, before the first launch."""
        if not self._detected:
            self.runtime.detect()
            self._detected = True

    def abandon(self) -> None:
        """The executor is going away with tasks unfinished: stop their containers, since
        no one else would report or stop them."""
        with self.lock:
            runners = [r.runner for r in self.runs.values() if not r.done.is_set() and r.runner]
        for runner in runners:
            with contextlib.suppress(Exception):
                runner.abandon()


def remove_abandoned(runtime: DockerRuntime, agent_id: str, keep_task: str = "") -> list[str]:
    """Remove this agent's task containers whose executor process is gone (it was killed
    before it could stop them), but that of `keep_task` (this executor's own task, which
    it adopts). Returns the removed task ids."""
    removed = []
    running: set[str] | None = None
    for container in runtime.task_containers(agent_id):
        pid = container.labels.get(LABEL_EXECUTOR_PID, "")
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        if keep_task and container.labels.get(LABEL_TASK, "") == keep_task:
            continue
        if running is None:
            running = _running_executor_ids()
        if container.labels.get(LABEL_EXECUTOR_ID, "") in running:
            continue  # adopted by a later executor of the same task
        log.warning(
            "removing container %s of task %s: its executor (pid %s) is gone",
            container.short_id,
            container.labels.get(LABEL_TASK, ""),
            pid,
        )
        with contextlib.suppress(Exception):
            runtime.remove(str(container.id))
            removed.append(container.labels.get(LABEL_TASK, ""))
    return removed


def _running_executor_ids() -> set[str]:
    """The executor ids (MESOS_EXECUTOR_ID) of the executor processes running here."""
    ids: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid() or not _alive(int(proc.name)):
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        for var in environ.split(b"\0"):
            if var.startswith(b"MESOS_EXECUTOR_ID="):
                ids.add(var.partition(b"=")[2].decode(errors="replace"))
    return ids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie or a reused pid that is not an executor does not hold the container
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/stat").read_text().split()
    except OSError:
        return False
    return b"mesos_executor" in cmdline and (len(status) < 3 or status[2] != "Z")


def logs_app(
    settings: Settings, agent_id: str, log_files: LogFiles, is_running: Callable[[str], bool]
) -> FastAPI:
    """The executor's log endpoint: the agent's own log route, behind the same guard (calls
    signed for this Mesos agent, when the platform's secret is set)."""
    app = FastAPI(title="titus executor logs")
    app.include_router(
        logs_router(
            log_files,
            is_running,
            CallGuard.from_settings(settings, agent_id),
            settings.agent_max_log_follows,
        )
    )
    return app


def serve_logs(
    settings: Settings, agent_id: str, log_files: LogFiles, is_running: Callable[[str], bool]
) -> tuple[uvicorn.Server, str]:
    """Serve the log endpoint on `agent_host` (a free port) and say the address to publish
    for it: on `agent_advertise_host` when set, as the agent's own API is published."""
    server = serve_in_background(
        logs_app(settings, agent_id, log_files, is_running), settings.agent_host, 0
    )
    published = settings.agent_advertise_host or settings.agent_host
    return server, f"http://{published}:{bound_port(server)}"


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("urllib3", "docker", "botocore", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_settings()
    sandbox = Path(os.environ.get("MESOS_SANDBOX") or os.environ.get("MESOS_DIRECTORY") or ".")
    root = Path(settings.log_dir) if settings.log_dir else sandbox / "logs"
    log_files = LogFiles(root)
    root.mkdir(parents=True, exist_ok=True)
    agent_id = os.environ.get("MESOS_SLAVE_ID", "")
    executor_id = os.environ.get("MESOS_EXECUTOR_ID", "")
    try:
        client = docker_client(settings.docker_url)
    except EngineNotConfigured as e:
        log.error("%s", e)
        return 1
    runtime = DockerRuntime(
        client,
        RuntimeConfig(
            disk_enforcement=settings.agent_disk_enforcement,
            network_mode=container_network_mode(settings),
            extra_labels={
                LABEL_EXECUTOR_PID: str(os.getpid()),
                LABEL_EXECUTOR_ID: executor_id,
            },
        ),
    )
    with contextlib.suppress(Exception):
        remove_abandoned(runtime, agent_id, keep_task=executor_id)
    uploader = LogUploader(settings, root)
    uploader.start()
    grace = _grace_seconds(os.environ.get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"), 5.0)
    executor = TitusExecutor(
        settings,
        runtime,
        HookRunner(task_hooks(settings, client, runtime, uploader)),
        log_files,
        grace,
    )
    # the task's output is served while it runs, as the direct-mode agent does: the API
    # finds this address in the task's context (agent.logsAddress)
    logs_server, executor.logs_address = serve_logs(
        settings, agent_id, log_files, executor.is_running
    )
    driver = _Driver(executor, use_addict=False)
    executor.driver = driver

    def on_term(signum: int, frame: Any) -> None:
        threading.Thread(target=executor.shutdown, args=(driver,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    driver.start()
    try:
        while not executor.finished.wait(0.5):
            if driver.aborted:
                log.error("the executor driver stopped")
                break
    except (Exception, KeyboardInterrupt) as exc:  # pymesos relays its thread's error here
        log.error("the executor driver failed: %s", exc)
    finally:
        executor.abandon()
        with contextlib.suppress(Exception):
            driver.stop()
        uploader.stop()
        logs_server.should_exit = True
        with contextlib.suppress(Exception):
            client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
