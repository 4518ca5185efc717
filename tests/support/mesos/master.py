"""A test double of the Apache Mesos master and its agents, over the real v1 HTTP APIs.

No Mesos master can be installed here, so the platform's Mesos path (a pymesos framework and
executor) is tested against this double. It follows the protocol facts in the project's Mesos
reference: what the real master accepts it accepts, what it refuses it refuses with the same
status code and a message in the same words, and its events come in the same order and shape.
It is not a scheduler: it offers each agent's free resources whole to one framework at a time.

Agents are objects inside the double. Each one serves the executor API on its own loopback
port (started when its first executor is launched) and runs executors as real processes, each
in its own process group, with the environment a Mesos agent gives them. Tasks live on the
agents, so restarting the master keeps them running, and the restarted master learns them back
from the agents, as a real master learns them from re-registering agents.

All state is guarded by one lock; events are queued on the streams under that lock, so every
client sees them in the order they happened.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import queue
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.mesos.httpserver import EventStream, Request, Response, Server, StreamResponse
from tests.support.mesos.resources import Resources

#: How often the double looks for timeouts and updates to send again (seconds).
HOUSEKEEPING_INTERVAL = 0.1
#: The agents start no process until the master has had no scheduler call for this long
#: (seconds), waiting at most AGENT_YIELD_MAX per process (see `_yield_to_master`).
AGENT_YIELD = 0.05
AGENT_YIELD_MAX = 2.0

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
SCHEDULER_PATH = "/api/v1/scheduler"
EXECUTOR_PATH = "/api/v1/executor"

TERMINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
        "TASK_LOST",
    }
)
TASK_STATES = TERMINAL_STATES | {
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_UNREACHABLE",
    "TASK_UNKNOWN",
}


@dataclass
class Config:
    """How the double behaves; the defaults are the real master's, tests shorten the times."""

    host: str = "127.0.0.1"
    port: int = 0
    version: str = "1.11.0"
    heartbeat_interval: float = 15.0
    allocation_interval: float = 1.0
    default_refuse_seconds: float = 5.0
    status_update_retry_seconds: float = 10.0
    executor_registration_timeout: float = 60.0
    executor_shutdown_grace_period: float = 5.0
    offer_timeout: float | None = None
    # pymesos's executor SIGKILLs its process group on SHUTDOWN unless MESOS_LOCAL is set.
    executor_local: bool = True
    # Split every RecordIO record over two chunks, to prove clients reassemble records.
    fragment_records: bool = False
    work_dir: Path | None = None
    zk: str | None = None  # "host:port" of ZooKeeper to publish the master in
    zk_path: str = "/mesos"


@dataclass
class AgentSpec:
    hostname: str
    cpus: float = 4.0
    mem: float = 8192.0
    disk: float = 65536.0
    gpus: float = 0.0
    ports: list[tuple[int, int]] = field(default_factory=lambda: [(31000, 32000)])
    attributes: dict[str, str | float] = field(default_factory=dict)

    def resources(self) -> Resources:
        scalars = {"cpus": self.cpus, "mem": self.mem, "disk": self.disk}
        if self.gpus:
            scalars["gpus"] = self.gpus
        return Resources(scalars, {"ports": list(self.ports)})

    def attributes_proto(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name, value in self.attributes.items():
            if isinstance(value, int | float):
                out.append({"name": name, "type": "SCALAR", "scalar": {"value": float(value)}})
            else:
                out.append({"name": name, "type": "TEXT", "text": {"value": str(value)}})
        return out


class CallError(Exception):
    """A call the master refuses: becomes an HTTP answer with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _uuid_b64() -> str:
    return base64.b64encode(uuid.uuid4().bytes).decode()


def _valid_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def _value(obj: Any) -> str | None:
    """The `value` of an ID message such as {"value": "..."}; None if absent or malformed."""
    if isinstance(obj, dict) and isinstance(obj.get("value"), str) and obj["value"]:
        return str(obj["value"])
    return None


def _accepts_json(accept: str | None) -> bool:
    if not accept:
        return True
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                with contextlib.suppress(ValueError):
                    q = float(param[2:])
        if q > 0 and media.lower() in (JSON, "application/*", "*/*"):
            return True
    return False


def _ip_as_int(ip: str) -> int:
    """MasterInfo.ip: the IPv4 address as Mesos stores it (network order read little-endian)."""
    return int(struct.unpack("<I", socket.inet_aton(ip))[0])


@dataclass
class Task:
    framework_id: str
    task_id: str
    agent_id: str
    info: dict[str, Any]
    resources: Resources
    executor_id: str | None  # None for command tasks (run by the double's command executor)
    state: str = "TASK_STAGING"
    status: dict[str, Any] = field(default_factory=dict)
    # Unacknowledged status updates, oldest first; only the oldest is sent (Mesos's
    # per-task status update stream), the next one once the framework acknowledges it.
    pending: deque[dict[str, Any]] = field(default_factory=deque)
    last_sent: float = 0.0
    kill_requested: bool = False

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass
class Executor:
    """An executor process on an agent (a custom one from ExecutorInfo, or a command task's)."""

    framework_id: str
    executor_id: str
    info: dict[str, Any]
    framework_info: dict[str, Any]
    resources: Resources
    #: Where its sandbox is, as text: a Path per executor, parsed while the master answers
    #: the ACCEPT, cost more than the rest of a launch's checks.
    sandbox_dir: str
    proc: subprocess.Popen[bytes] | None = None
    stream: EventStream | None = None
    subscribed: bool = False
    queued: list[dict[str, Any]] = field(default_factory=list)  # TaskInfos awaiting SUBSCRIBE
    task_ids: set[str] = field(default_factory=set)
    launched_at: float = field(default_factory=time.monotonic)
    kill_at: float | None = None  # SIGKILL the process group at this time (shutdown grace)
    terminated: bool = False
    command_task: str | None = None  # set for the double's own command executor
    pending_state: str | None = None  # terminal state to report for its tasks when it exits

    @property
    def sandbox(self) -> Path:
        return Path(self.sandbox_dir)


@dataclass
class _Launch:
    """An executor process an agent is to start (see `MesosMasterDouble._spawn`)."""

    framework: Framework
    agent: Agent
    executor: Executor
    command: dict[str, Any]
    started: Callable[[], None] | None
    failed: Callable[[OSError], None] | None


@dataclass
class Agent:
    id: str
    spec: AgentSpec
    index: int
    tasks: dict[tuple[str, str], Task] = field(default_factory=dict)
    executors: dict[tuple[str, str], Executor] = field(default_factory=dict)
    server: Server | None = None
    #: Set once the agent is stopped: launches still queued for it are dropped.
    stopped: bool = False

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        host = self.server.server_address[0]
        return f"{host!s}:{self.server.port}"

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": {"value": self.id},
            "hostname": self.spec.hostname,
            "resources": self.spec.resources().to_proto(),
            "attributes": self.spec.attributes_proto(),
        }
        if self.server is not None:
            out["port"] = self.server.port
        return out


@dataclass
class Offer:
    id: str
    framework_id: str
    agent_id: str
    resources: Resources
    created: float = field(default_factory=time.monotonic)


@dataclass
class Framework:
    id: str
    info: dict[str, Any]
    stream: EventStream | None = None
    stream_id: str | None = None
    offers: set[str] = field(default_factory=set)
    filters: dict[str, float] = field(default_factory=dict)  # agent id -> refused until
    suppressed: bool = False
    disconnected_at: float | None = None

    @property
    def connected(self) -> bool:
        return self.stream is not None

    @property
    def partition_aware(self) -> bool:
        caps = self.info.get("capabilities") or []
        return any(isinstance(c, dict) and c.get("type") == "PARTITION_AWARE" for c in caps)

    @property
    def failover_timeout(self) -> float:
        return float(self.info.get("failover_timeout") or 0.0)

    @property
    def checkpoint(self) -> bool:
        return bool(self.info.get("checkpoint"))


class MesosMasterDouble:
    """The master and its agents. Start with `start()`, stop with `stop()`.

    Inspection: `calls` (every scheduler call with the status it got), `executor_calls`,
    `events` (every event sent to a framework, as (framework id, event)), `state()`.
    Operator actions: `add_agent`, `remove_agent`, `rescind_offer`, `restart`,
    `kill_executor`, `teardown_framework`, `set_leader`.
    """

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.lock = threading.RLock()
        self.master_id = str(uuid.uuid4())
        self.work_dir = self.config.work_dir or Path(tempfile.mkdtemp(prefix="mesos-double-"))
        self.agents: dict[str, Agent] = {}
        self.removed_agents: dict[str, Agent] = {}
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: set[str] = set()
        self.offers: dict[str, Offer] = {}
        self.tasks: dict[tuple[str, str], Task] = {}
        # Tasks no longer active (terminal and acknowledged, or on a removed agent).
        self.completed_tasks: dict[tuple[str, str], Task] = {}
        #: Every scheduler call: type, body, status, stream id, when it was received and
        #: when answered (`time`), wall clock.
        self.calls: list[dict[str, Any]] = []
        #: When each executor process started (wall clock), in order: the agents' work.
        self.executor_starts: list[tuple[str, float]] = []
        self.executor_calls: list[dict[str, Any]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.redirect_to: str | None = None  # answer 307 to this "host:port" (not the leader)
        self.leading = True  # False: answer 503, no leader elected
        self._framework_seq = 0
        self._offer_seq = 0
        self._agent_seq = 0
        self._allocate_now = threading.Event()
        self._next_allocation = 0.0
        # Agents whose resources changed since the last allocation (offered again at once,
        # as Mesos's allocator does for an agent whose resources were recovered); every
        # agent is looked at every `allocation_interval`, or at once when `_reallocate()`
        # was asked for all.
        self._changed_agents: set[str] = set()
        self._reallocate_all = True
        self._next_housekeeping = 0.0
        self._server: Server | None = None
        self._port = self.config.port
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        self._zk: Any = None
        self._zk_node: str | None = None
        # Exceptions inside the double itself (not refusals): the fixture fails the test on them.
        self.errors: list[BaseException] = []
        # Executor processes to start, in order: agents start them after the master has
        # answered the call that launched them (see `_spawn`).
        self._launches: queue.Queue[_Launch] = queue.Queue()
        self._launcher: threading.Thread | None = None
        # Held while a process is started, and while an agent is stopped: a process is
        # never started for an agent already stopped (nobody would kill it).
        self._spawn_lock = threading.Lock()
        self._master_busy_until = 0.0
        # Scheduler calls are handled in the order they arrived (`_in_arrival_order`).
        self._turns = threading.Condition()
        self._next_turn = 0
        self._serving = 0

    # ----------------------------------------------------------------- lifecycle

    @property
    def address(self) -> str:
        """`host:port` of the master, the form pymesos's MesosSchedulerDriver takes."""
        return f"{self.config.host}:{self._port}"

    @property
    def zk_uri(self) -> str | None:
        """`zk://host:port/path` for pymesos when the master is published in ZooKeeper."""
        if not self.config.zk:
            return None
        return f"zk://{self.config.zk}{self.config.zk_path}"

    def start(self) -> MesosMasterDouble:
        self._stopping.clear()
        self._server = Server(self.config.host, self._port, self._handle, self.errors)
        self._port = self._server.port
        self._ticker = threading.Thread(target=self._tick_loop, name="mesos-double", daemon=True)
        self._ticker.start()
        if self.config.zk:
            self._publish()
        return self

    def stop(self) -> None:
        """Stop the master and every agent, and kill every executor process group."""
        self._shutdown_master()
        with self.lock:
            agents = list(self.agents.values())
        for agent in agents:
            self._stop_agent(agent)
        if self._zk is not None:
            with contextlib.suppress(Exception):
                self._zk.stop()
                self._zk.close()
            self._zk = None

    def __enter__(self) -> MesosMasterDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _shutdown_master(self) -> None:
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None
        self._unpublish()
        with self.lock:
            streams = [f.stream for f in self.frameworks.values() if f.stream is not None]
            for fw in self.frameworks.values():
                fw.stream = None
        for stream in streams:
            stream.abort()
        if self._server is not None:
            self._server.close()
            self._server = None

    def restart(self, downtime: float = 0.0) -> None:
        """Crash and restart the master on the same port, with a new master id.

        Streams are cut without a terminating chunk; frameworks and offers are forgotten;
        agents and their executors keep running, and the new master learns their tasks back
        (the frameworks of those tasks are known again, disconnected, until they subscribe
        with their framework id or their failover timeout runs out).
        """
        self._shutdown_master()
        with self.lock:
            self.master_id = str(uuid.uuid4())
            old = self.frameworks
            self.frameworks = {}
            self.offers = {}
            self.completed_tasks = {}
            self.tasks = {}
            now = time.monotonic()
            for agent in self.agents.values():
                for key, task in agent.tasks.items():
                    self.tasks[key] = task
                    if task.framework_id not in self.frameworks:
                        info = dict(old[task.framework_id].info) if task.framework_id in old else {}
                        for ex in agent.executors.values():
                            if ex.framework_id == task.framework_id:
                                info = info or dict(ex.framework_info)
                        self.frameworks[task.framework_id] = Framework(
                            task.framework_id, info, disconnected_at=now
                        )
        if downtime:
            time.sleep(downtime)
        self.start()

    def set_leader(self, leading: bool = True, redirect_to: str | None = None) -> None:
        """Make the master answer 307 to `redirect_to`, or 503 when not leading and none."""
        self.leading = leading
        self.redirect_to = redirect_to

    # ------------------------------------------------------------------- ZooKeeper

    def master_info(self) -> dict[str, Any]:
        host = self.config.host
        return {
            "id": self.master_id,
            "ip": _ip_as_int(host),
            "port": self._port,
            "pid": f"master@{host}:{self._port}",
            "hostname": host,
            "version": self.config.version,
            "address": {"hostname": host, "ip": host, "port": self._port},
        }

    def _publish(self) -> None:
        """Register as Mesos does: an ephemeral sequential `json.info_` node with MasterInfo."""
        from kazoo.client import KazooClient

        if self._zk is None:
            self._zk = KazooClient(hosts=self.config.zk, timeout=10)
            self._zk.start(timeout=10)
        path = self.config.zk_path.rstrip("/") + "/json.info_"
        data = json.dumps(self.master_info()).encode()
        self._zk_node = self._zk.create(path, data, ephemeral=True, sequence=True, makepath=True)

    def _unpublish(self) -> None:
        if self._zk is not None and self._zk_node is not None:
            with contextlib.suppress(Exception):
                self._zk.delete(self._zk_node)
        self._zk_node = None

    # ---------------------------------------------------------------- operator API

    def add_agent(
        self,
        hostname: str | None = None,
        *,
        cpus: float = 4.0,
        mem: float = 8192.0,
        disk: float = 65536.0,
        gpus: float = 0.0,
        ports: list[tuple[int, int]] | None = None,
        attributes: dict[str, str | float] | None = None,
    ) -> str:
        """Register an agent; it is offered at the next allocation. Returns its agent id."""
        with self.lock:
            self._agent_seq += 1
            index = self._agent_seq
            spec = AgentSpec(
                hostname or f"agent-{index}",
                cpus,
                mem,
                disk,
                gpus,
                list(ports) if ports is not None else [(31000, 32000)],
                dict(attributes or {}),
            )
            agent_id = f"{self.master_id}-S{index - 1}"
            self.agents[agent_id] = Agent(agent_id, spec, index)
            self._reallocate(agent_id)
            return agent_id

    def remove_agent(self, agent_id: str, announce: bool = True) -> None:
        """The agent is gone: its executors are killed and its offers rescinded.

        With `announce`, frameworks get UPDATE TASK_LOST (TASK_GONE when partition-aware,
        reason REASON_AGENT_REMOVED) for its live tasks and FAILURE {agent_id}; without it,
        they find out only by reconciling.
        """
        with self.lock:
            agent = self.agents.pop(agent_id)
            self.removed_agents[agent_id] = agent
            for offer in [o for o in self.offers.values() if o.agent_id == agent_id]:
                self._remove_offer(offer, rescind=True)
            for key, task in list(agent.tasks.items()):
                fw = self.frameworks.get(task.framework_id)
                gone = "TASK_GONE" if fw is not None and fw.partition_aware else "TASK_LOST"
                was_live = not task.terminal
                task.state = gone
                task.status = self._status(
                    task, gone, "SOURCE_MASTER", "REASON_AGENT_REMOVED", "Agent removed"
                )
                task.pending.clear()
                self.tasks.pop(key, None)
                self.completed_tasks[key] = task
                if announce and was_live and fw is not None:
                    self._send(fw, {"type": "UPDATE", "update": {"status": dict(task.status)}})
            agent.tasks.clear()
            if announce:
                for fw in self.frameworks.values():
                    self._send(
                        fw, {"type": "FAILURE", "failure": {"agent_id": {"value": agent_id}}}
                    )
        self._stop_agent(agent)

    def rescind_offer(self, offer_id: str) -> None:
        """Take an outstanding offer back (RESCIND), as the master does on offer timeout."""
        with self.lock:
            offer = self.offers.get(offer_id)
            if offer is None:
                raise KeyError(offer_id)
            self._remove_offer(offer, rescind=True)

    def rescind_all(self, framework_id: str | None = None) -> list[str]:
        with self.lock:
            ids = [
                o.id
                for o in self.offers.values()
                if framework_id is None or o.framework_id == framework_id
            ]
            for offer_id in ids:
                self._remove_offer(self.offers[offer_id], rescind=True)
            return ids

    def kill_executor(self, executor_id: str, sig: int = signal.SIGKILL) -> int:
        """Signal an executor's process group, as if it crashed; returns its pid."""
        with self.lock:
            for agent in self.agents.values():
                for ex in agent.executors.values():
                    if ex.executor_id == executor_id and ex.proc is not None:
                        os.killpg(ex.proc.pid, sig)
                        return ex.proc.pid
        raise KeyError(executor_id)

    def teardown_framework(self, framework_id: str, message: str = "Framework removed") -> None:
        """Operator teardown: ERROR on the stream, tasks killed, framework removed."""
        with self.lock:
            fw = self.frameworks[framework_id]
            self._send(fw, {"type": "ERROR", "error": {"message": message}})
            self._remove_framework(fw)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll `predicate` under the lock until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(0.02)

    def events_of(self, framework_id: str, type_: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for f, e in self.events if f == framework_id and e["type"] == type_]

    def executor_processes(self) -> dict[str, int]:
        """executor id -> pid of every executor process still running."""
        with self.lock:
            return {
                ex.executor_id: ex.proc.pid
                for agent in self.agents.values()
                for ex in agent.executors.values()
                if ex.proc is not None and not ex.terminated
            }

    def state(self) -> dict[str, Any]:
        """A snapshot in the spirit of the master's /state endpoint."""
        with self.lock:
            return {
                "id": self.master_id,
                "version": self.config.version,
                "address": self.address,
                "agents": [
                    {
                        "id": a.id,
                        "hostname": a.spec.hostname,
                        "resources": str(a.spec.resources()),
                        "available": str(self._available(a)),
                        "attributes": a.spec.attributes,
                        "endpoint": a.endpoint if a.server else None,
                        "executors": sorted(e.executor_id for e in a.executors.values()),
                    }
                    for a in self.agents.values()
                ],
                "removed_agents": sorted(self.removed_agents),
                "frameworks": [
                    {
                        "id": f.id,
                        "name": f.info.get("name"),
                        "connected": f.connected,
                        "stream_id": f.stream_id,
                        "suppressed": f.suppressed,
                        "offers": sorted(f.offers),
                    }
                    for f in self.frameworks.values()
                ],
                "completed_frameworks": sorted(self.completed_frameworks),
                "tasks": [
                    {
                        "framework_id": t.framework_id,
                        "task_id": t.task_id,
                        "agent_id": t.agent_id,
                        "executor_id": t.executor_id,
                        "state": t.state,
                        "unacknowledged": len(t.pending),
                    }
                    for t in self.tasks.values()
                ],
                "completed_tasks": [
                    {"framework_id": t.framework_id, "task_id": t.task_id, "state": t.state}
                    for t in self.completed_tasks.values()
                ],
            }

    def call_times(self) -> list[dict[str, Any]]:
        """Every scheduler call as a benchmark needs it: type, status, when it was received
        and answered, the offers it names (ACCEPT, DECLINE) and the tasks it launches. A
        fraction of `calls`, which holds every TaskInfo whole: megabytes in a big offer
        cycle, whose encoding would hold the lock (and the calls) while it runs."""
        out = []
        with self.lock:
            for call in self.calls:
                body = call["call"].get(str(call["type"]).lower())
                body = body if isinstance(body, dict) else {}
                operations = body.get("operations")
                tasks = 0
                for op in operations if isinstance(operations, list) else []:
                    launch = op.get("launch") if isinstance(op, dict) else None
                    infos = launch.get("task_infos") if isinstance(launch, dict) else None
                    tasks += len(infos) if isinstance(infos, list) else 0
                offer_ids = body.get("offer_ids")
                out.append(
                    {
                        "type": call["type"],
                        "status": call["status"],
                        "received": call["received"],
                        "time": call["time"],
                        "offer_ids": [
                            v
                            for o in (offer_ids if isinstance(offer_ids, list) else [])
                            if (v := _value(o)) is not None
                        ],
                        "tasks": tasks,
                    }
                )
        return out

    def task_state(self, framework_id: str, task_id: str) -> str | None:
        with self.lock:
            task = self.tasks.get((framework_id, task_id)) or self.completed_tasks.get(
                (framework_id, task_id)
            )
            return task.state if task else None

    # ------------------------------------------------------------------ HTTP: master

    def _handle(self, req: Request) -> Response | StreamResponse:
        received = time.time()
        self._master_busy_until = time.monotonic() + AGENT_YIELD
        if req.path == "/version":
            if req.method != "GET":
                return Response(405, "", {"Allow": "GET"})
            return Response.json(
                200,
                {
                    "version": self.config.version,
                    "build_date": "2020-01-01 00:00:00",
                    "build_time": 1577836800.0,
                    "build_user": "mesos-double",
                    "git_sha": "0" * 40,
                },
            )
        if req.path in ("/state", "/master/state"):
            return Response.json(200, self.state())
        if req.path in ("/health", "/master/health"):
            return Response(200)
        if req.path != SCHEDULER_PATH:
            return Response(404)
        if self.redirect_to:
            return Response(307, "", {"Location": f"//{self.redirect_to}{SCHEDULER_PATH}"})
        if not self.leading:
            return Response(503, "No leader elected")
        if req.method != "POST":
            return Response(
                405,
                f"Expecting one of {{ 'POST' }}, but received '{req.method}'",
                {"Allow": "POST"},
            )
        call: dict[str, Any] = {}
        try:
            with self._in_arrival_order():
                call = self._parse_call(req)
                result = self._scheduler_call(req, call)
        except CallError as err:
            result = Response(err.status, err.message)
        with self.lock:
            self.calls.append(
                {
                    "type": call.get("type"),
                    "call": call,
                    "status": result.status if isinstance(result, Response) else 200,
                    "stream_id": req.headers.get("mesos-stream-id"),
                    "received": received,
                    "time": time.time(),
                }
            )
        return result

    @contextlib.contextmanager
    def _in_arrival_order(self) -> Iterator[None]:
        """Handle scheduler calls one at a time in the order they arrived, on whatever
        connection, as the Mesos master (one actor with one mailbox) does: a RECONCILE
        that arrived after an ACCEPT is answered knowing the ACCEPT's tasks."""
        with self._turns:
            turn = self._next_turn
            self._next_turn += 1
            self._turns.wait_for(lambda: self._serving == turn)
        try:
            yield
        finally:
            with self._turns:
                self._serving += 1
                self._turns.notify_all()

    def _parse_call(self, req: Request) -> dict[str, Any]:
        content_type = req.headers.get("content-type")
        if content_type is None:
            raise CallError(400, "Expecting 'Content-Type' to be present")
        if content_type == PROTOBUF:
            raise CallError(415, "This Mesos test double speaks only 'application/json'")
        if content_type != JSON:
            raise CallError(415, f"Expecting 'Content-Type' of {JSON} or {PROTOBUF}")
        try:
            call = json.loads(req.body or b"null")
        except ValueError as exc:
            raise CallError(400, f"Failed to parse body into JSON: {exc}") from None
        if not isinstance(call, dict):
            raise CallError(400, "Failed to convert JSON into Call protobuf: not an object")
        if not isinstance(call.get("type"), str):
            raise CallError(
                400, "Failed to convert JSON into Call protobuf: Missing required fields: type"
            )
        return call

    def _scheduler_call(self, req: Request, call: dict[str, Any]) -> Response | StreamResponse:
        kind = call["type"]
        if kind == "SUBSCRIBE":
            return self._subscribe(req, call)
        fw_id = _value(call.get("framework_id"))
        if fw_id is None:
            raise CallError(
                400, "Failed to validate scheduler::Call: Expecting 'framework_id' to be present"
            )
        with self.lock:
            fw = self.frameworks.get(fw_id)
            if fw is None:
                raise CallError(400, "Framework cannot be found")
            if not fw.connected:
                raise CallError(403, "Framework is not subscribed")
            stream_id = req.headers.get("mesos-stream-id")
            if stream_id is None:
                raise CallError(
                    400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header"
                )
            if stream_id != fw.stream_id:
                raise CallError(
                    400,
                    f"The stream ID '{stream_id}' included in this request didn't match the "
                    f"stream ID currently associated with framework ID {fw_id}",
                )
            handler = getattr(self, f"_call_{kind.lower()}", None)
            if handler is None:
                raise CallError(400, f"Failed to validate scheduler::Call: Unsupported type {kind}")
            handler(fw, call)
        return Response(202)

    def _need(self, call: dict[str, Any], name: str) -> dict[str, Any]:
        body = call.get(name)
        if not isinstance(body, dict):
            raise CallError(
                400, f"Failed to validate scheduler::Call: Expecting '{name}' to be present"
            )
        return body

    # ------------------------------------------------------------ SUBSCRIBE / streams

    def _subscribe(self, req: Request, call: dict[str, Any]) -> StreamResponse:
        if not _accepts_json(req.headers.get("accept")):
            raise CallError(406, f"Expecting 'Accept' to allow {JSON} or {PROTOBUF}")
        if "mesos-stream-id" in req.headers:
            raise CallError(400, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
        subscribe = self._need(call, "subscribe")
        info = subscribe.get("framework_info")
        if not isinstance(info, dict):
            raise CallError(
                400,
                "Failed to convert JSON into Call protobuf: Missing required fields: "
                "subscribe.framework_info",
            )
        missing = [f for f in ("user", "name") if not isinstance(info.get(f), str)]
        if missing:
            raise CallError(
                400,
                "Failed to convert JSON into Call protobuf: Missing required fields: "
                + ", ".join(f"subscribe.framework_info.{f}" for f in missing),
            )
        info_id = _value(info.get("id"))
        call_id = _value(call.get("framework_id"))
        if call_id is not None and info_id is not None and call_id != info_id:
            raise CallError(
                400,
                "Failed to validate scheduler::Call: 'framework_id' differs from "
                "'subscribe.framework_info.id'",
            )
        if info_id is None and call_id is not None:
            raise CallError(
                400,
                "Failed to validate scheduler::Call: 'framework_id' is set but "
                "'subscribe.framework_info.id' is not",
            )
        stream_id = str(uuid.uuid4())
        stream = EventStream(
            self.config.heartbeat_interval, self._stream_closed, self.config.fragment_records
        )
        with self.lock:
            if info_id is not None and info_id in self.completed_frameworks:
                stream.send({"type": "ERROR", "error": {"message": "Framework has been removed"}})
                stream.end()
                return StreamResponse(stream, {"Mesos-Stream-Id": stream_id})
            if info_id is None:
                info_id = f"{self.master_id}-{self._framework_seq:04d}"
                self._framework_seq += 1
            info = dict(info, id={"value": info_id})
            fw = self.frameworks.get(info_id)
            if fw is None:
                fw = self.frameworks[info_id] = Framework(info_id, info)
            else:
                if fw.stream is not None:
                    old = fw.stream
                    fw.stream = None
                    old.send({"type": "ERROR", "error": {"message": "Framework failed over"}})
                    old.end()
                    self.events.append(
                        (info_id, {"type": "ERROR", "error": {"message": "Framework failed over"}})
                    )
                # Outstanding offers are dropped without RESCIND: the new scheduler never saw them.
                for offer_id in list(fw.offers):
                    self._remove_offer(self.offers[offer_id], rescind=False)
                fw.info = info
            fw.stream = stream
            fw.stream_id = stream_id
            fw.disconnected_at = None
            self._send(
                fw,
                {
                    "type": "SUBSCRIBED",
                    "subscribed": {
                        "framework_id": {"value": info_id},
                        "heartbeat_interval_seconds": self.config.heartbeat_interval,
                        "master_info": self.master_info(),
                    },
                },
            )
            self._send(fw, {"type": "HEARTBEAT"})
            # The agents' status update managers retry what this framework has not acknowledged.
            for task in self.tasks.values():
                if task.framework_id == info_id and task.pending:
                    self._deliver(task)
            self._reallocate()
        return StreamResponse(stream, {"Mesos-Stream-Id": stream_id})

    def _stream_closed(self, stream: EventStream) -> None:
        with self.lock:
            for fw in self.frameworks.values():
                if fw.stream is stream:
                    self._disconnect(fw)

    def _disconnect(self, fw: Framework) -> None:
        fw.stream = None
        fw.stream_id = None
        fw.disconnected_at = time.monotonic()
        for offer_id in list(fw.offers):
            self._remove_offer(self.offers[offer_id], rescind=False)

    def _send(self, fw: Framework, event: dict[str, Any]) -> None:
        if fw.stream is not None:
            fw.stream.send(event)
            self.events.append((fw.id, event))

    # ------------------------------------------------------------------------ calls

    def _call_teardown(self, fw: Framework, call: dict[str, Any]) -> None:
        self._remove_framework(fw)

    def _remove_framework(self, fw: Framework) -> None:
        """Kill the framework's tasks, drop its offers, end its stream, forget it for good."""
        for offer_id in list(fw.offers):
            self._remove_offer(self.offers[offer_id], rescind=False)
        for agent in self.agents.values():
            for ex in list(agent.executors.values()):
                if ex.framework_id == fw.id:
                    ex.pending_state = "TASK_KILLED"
                    self._shutdown_executor(agent, ex)
            for key, task in list(agent.tasks.items()):
                if task.framework_id == fw.id:
                    if not task.terminal:
                        task.state = "TASK_KILLED"
                    task.pending.clear()
                    del agent.tasks[key]
                    self.tasks.pop(key, None)
                    self.completed_tasks[key] = task
        if fw.stream is not None:
            fw.stream.end()
        fw.stream = None
        self.frameworks.pop(fw.id, None)
        self.completed_frameworks.add(fw.id)
        self._reallocate()

    def _refuse(self, fw: Framework, agent_id: str, filters: Any) -> None:
        seconds = self.config.default_refuse_seconds
        if isinstance(filters, dict) and "refuse_seconds" in filters:
            seconds = float(filters["refuse_seconds"])
        if seconds > 0:
            fw.filters[agent_id] = time.monotonic() + seconds

    def _call_decline(self, fw: Framework, call: dict[str, Any]) -> None:
        decline = self._need(call, "decline")
        for oid in decline.get("offer_ids") or []:
            offer = self.offers.get(_value(oid) or "")
            if offer is not None and offer.framework_id == fw.id:
                self._remove_offer(offer, rescind=False)
                self._refuse(fw, offer.agent_id, decline.get("filters"))

    def _call_revive(self, fw: Framework, call: dict[str, Any]) -> None:
        fw.filters.clear()
        fw.suppressed = False
        self._reallocate()

    def _call_suppress(self, fw: Framework, call: dict[str, Any]) -> None:
        fw.suppressed = True

    def _call_accept(self, fw: Framework, call: dict[str, Any]) -> None:
        accept = self._need(call, "accept")
        offer_ids = [_value(o) or "" for o in accept.get("offer_ids") or []]
        operations = accept.get("operations") or []
        error = None
        if not offer_ids:
            error = "No offers specified"
        offers: list[Offer] = []
        for oid in offer_ids:
            offer = self.offers.get(oid)
            if offer is None or offer.framework_id != fw.id:
                error = error or f"Offer {oid} is no longer valid"
            elif offers and offer.agent_id != offers[0].agent_id:
                error = error or "Aggregated offers must belong to one single agent"
            else:
                offers.append(offer)
        if len(set(offer_ids)) != len(offer_ids):
            error = error or "Duplicate offer ids"
        for offer in offers:
            self._remove_offer(offer, rescind=False)
        launches = [op for op in operations if isinstance(op, dict) and op.get("type") == "LAUNCH"]
        if error is not None:
            lost = "TASK_DROPPED" if fw.partition_aware else "TASK_LOST"
            for op in launches:
                for info in (op.get("launch") or {}).get("task_infos") or []:
                    self._send_master_update(
                        fw,
                        _value(info.get("task_id")) or "",
                        _value(info.get("agent_id")),
                        lost,
                        "REASON_INVALID_OFFERS",
                        f"Task launched with invalid offers: {error}",
                    )
            return
        agent = self.agents.get(offers[0].agent_id)
        available = Resources()
        for offer in offers:
            available = available + offer.resources
        for op in launches:
            for info in (op.get("launch") or {}).get("task_infos") or []:
                available = self._launch(fw, agent, info, available)
        if agent is not None:
            self._refuse(fw, agent.id, accept.get("filters"))
            self._reallocate(agent.id)

    def _launch(
        self, fw: Framework, agent: Agent | None, info: Any, available: Resources
    ) -> Resources:
        """Validate one TaskInfo against the offer and start it; returns what is left."""
        task_id = _value(info.get("task_id")) if isinstance(info, dict) else None
        if not isinstance(info, dict) or task_id is None:
            return available
        agent_id = _value(info.get("agent_id"))

        def invalid(message: str) -> Resources:
            self._send_master_update(
                fw, task_id, agent_id, "TASK_ERROR", "REASON_TASK_INVALID", message
            )
            return available

        if agent is None:
            lost = "TASK_DROPPED" if fw.partition_aware else "TASK_LOST"
            self._send_master_update(
                fw, task_id, agent_id, lost, "REASON_INVALID_OFFERS", "Agent is gone"
            )
            return available
        if agent_id != agent.id:
            return invalid(f"Task uses invalid agent: {agent_id}")
        if (fw.id, task_id) in self.tasks:
            return invalid(f"Task has duplicate ID: {task_id}")
        if not isinstance(info.get("name"), str):
            return invalid("Task is missing its 'name'")
        executor_info = info.get("executor")
        if (executor_info is None) == (info.get("command") is None):
            return invalid(
                "Task should have at least one (but not both) of CommandInfo or "
                "ExecutorInfo present"
            )
        try:
            resources = Resources.from_proto(info.get("resources"))
            needed = resources
            executor_id = None
            if executor_info is not None:
                if not isinstance(executor_info, dict):
                    return invalid("ExecutorInfo is not an object")
                executor_id = _value(executor_info.get("executor_id"))
                if executor_id is None:
                    return invalid("ExecutorInfo is missing 'executor_id'")
                if not isinstance((executor_info.get("command") or {}).get("value"), str):
                    return invalid("ExecutorInfo is missing 'command.value'")
                ex_fw = _value(executor_info.get("framework_id"))
                if ex_fw is not None and ex_fw != fw.id:
                    return invalid("ExecutorInfo has an invalid FrameworkID")
                if (fw.id, executor_id) not in agent.executors:
                    needed = needed + Resources.from_proto(executor_info.get("resources"))
        except (ValueError, TypeError, KeyError) as exc:
            return invalid(f"Task uses invalid resources: {exc}")
        if not resources.scalars.get("cpus") and not resources.scalars.get("mem"):
            return invalid("Task uses no cpus and no mem")
        if not available.contains(needed):
            return invalid(f"Task uses more resources {needed} than available {available}")
        task = Task(fw.id, task_id, agent.id, info, resources, executor_id or task_id)
        task.status = self._status(task, "TASK_STAGING", "SOURCE_MASTER", None, None)
        agent.tasks[(fw.id, task_id)] = task
        self.tasks[(fw.id, task_id)] = task
        if executor_info is not None and executor_id is not None:
            self._start_executor_task(fw, agent, executor_info, info, task)
        else:
            self._start_command_task(fw, agent, info, task)
        return available - needed

    def _call_kill(self, fw: Framework, call: dict[str, Any]) -> None:
        kill = self._need(call, "kill")
        task_id = _value(kill.get("task_id"))
        if task_id is None:
            raise CallError(400, "Failed to validate scheduler::Call: Expecting 'kill.task_id'")
        task = self.tasks.get((fw.id, task_id))
        if task is None or task.terminal:
            if task is None:
                unknown = "TASK_UNKNOWN" if fw.partition_aware else "TASK_LOST"
                self._send_master_update(
                    fw,
                    task_id,
                    _value(kill.get("agent_id")),
                    unknown,
                    "REASON_RECONCILIATION",
                    "Attempted to kill an unknown task",
                )
            return
        task.kill_requested = True
        agent = self.agents[task.agent_id]
        ex = agent.executors.get((fw.id, task.executor_id or ""))
        if ex is None or ex.terminated:
            return
        if ex.command_task is not None:
            ex.pending_state = "TASK_KILLED"
            self._signal_executor(ex, signal.SIGTERM)
            ex.kill_at = time.monotonic() + self.config.executor_shutdown_grace_period
        elif not ex.subscribed or any(_value(q.get("task_id")) == task_id for q in ex.queued):
            # Killed before the executor took it: the agent answers for the executor.
            ex.queued = [q for q in ex.queued if _value(q.get("task_id")) != task_id]
            self._agent_update(
                task,
                self._status(
                    task,
                    "TASK_KILLED",
                    "SOURCE_AGENT",
                    "REASON_TASK_KILLED_DURING_LAUNCH",
                    "Killed before delivery to the executor",
                ),
            )
        elif ex.stream is not None:
            self._send_executor(ex, {"type": "KILL", "kill": {"task_id": {"value": task_id}}})

    def _call_shutdown(self, fw: Framework, call: dict[str, Any]) -> None:
        body = self._need(call, "shutdown")
        executor_id = _value(body.get("executor_id"))
        agent = self.agents.get(_value(body.get("agent_id")) or "")
        if agent is not None and executor_id is not None:
            ex = agent.executors.get((fw.id, executor_id))
            if ex is not None:
                self._shutdown_executor(agent, ex)

    def _call_acknowledge(self, fw: Framework, call: dict[str, Any]) -> None:
        ack = self._need(call, "acknowledge")
        task_id = _value(ack.get("task_id"))
        agent_id = _value(ack.get("agent_id"))
        if task_id is None or agent_id is None:
            raise CallError(
                400,
                "Failed to validate scheduler::Call: Expecting 'acknowledge.task_id' and "
                "'acknowledge.agent_id'",
            )
        if not _valid_uuid(ack.get("uuid")):
            raise CallError(400, "Failed to validate scheduler::Call: Not a valid UUID")
        task = self.tasks.get((fw.id, task_id))
        if task is None or not task.pending or task.pending[0].get("uuid") != ack["uuid"]:
            return  # the agent ignores unexpected acknowledgements
        task.pending.popleft()
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            ex = agent.executors.get((fw.id, task.executor_id or ""))
            if ex is not None and ex.command_task is None and ex.stream is not None:
                self._send_executor(
                    ex,
                    {
                        "type": "ACKNOWLEDGED",
                        "acknowledged": {"task_id": {"value": task_id}, "uuid": ack["uuid"]},
                    },
                )
        if task.pending:
            self._deliver(task)
        elif task.terminal:
            self.tasks.pop((fw.id, task_id), None)
            if agent is not None:
                agent.tasks.pop((fw.id, task_id), None)
            self.completed_tasks[(fw.id, task_id)] = task

    def _call_reconcile(self, fw: Framework, call: dict[str, Any]) -> None:
        body = call.get("reconcile") or {}
        wanted = body.get("tasks") or []
        if not wanted:
            for task in list(self.tasks.values()):
                if task.framework_id == fw.id:
                    self._send_reconciliation(fw, task)
            return
        for item in wanted:
            task_id = _value((item or {}).get("task_id"))
            if task_id is None:
                continue
            agent_id = _value(item.get("agent_id"))
            active = self.tasks.get((fw.id, task_id))
            if active is not None:
                self._send_reconciliation(fw, active)
                continue
            done = self.completed_tasks.get((fw.id, task_id))
            if (agent_id and agent_id in self.removed_agents) or (
                done is not None and done.agent_id in self.removed_agents
            ):
                state = "TASK_GONE" if fw.partition_aware else "TASK_LOST"
                message = "Reconciliation: Task is gone"
                agent_id = agent_id or (done.agent_id if done else None)
            else:
                state = "TASK_UNKNOWN" if fw.partition_aware else "TASK_LOST"
                message = "Reconciliation: Task is unknown"
            self._send_master_update(fw, task_id, agent_id, state, "REASON_RECONCILIATION", message)

    def _send_reconciliation(self, fw: Framework, task: Task) -> None:
        status = {k: v for k, v in task.status.items() if k != "uuid"}
        status.update(
            state=task.state,
            source="SOURCE_MASTER",
            reason="REASON_RECONCILIATION",
            message="Reconciliation: Latest task state",
            timestamp=time.time(),
        )
        self._send(fw, {"type": "UPDATE", "update": {"status": status}})

    def _call_message(self, fw: Framework, call: dict[str, Any]) -> None:
        body = self._need(call, "message")
        agent = self.agents.get(_value(body.get("agent_id")) or "")
        ex_id = _value(body.get("executor_id")) or ""
        ex = agent.executors.get((fw.id, ex_id)) if agent else None
        if ex is not None and ex.stream is not None:
            self._send_executor(ex, {"type": "MESSAGE", "message": {"data": body.get("data", "")}})

    def _call_request(self, fw: Framework, call: dict[str, Any]) -> None:
        pass  # Mesos's allocator ignores resource requests too

    def _call_accept_inverse_offers(self, fw: Framework, call: dict[str, Any]) -> None:
        pass

    def _call_decline_inverse_offers(self, fw: Framework, call: dict[str, Any]) -> None:
        pass

    def _call_reconcile_operations(self, fw: Framework, call: dict[str, Any]) -> None:
        pass

    def _call_acknowledge_operation_status(self, fw: Framework, call: dict[str, Any]) -> None:
        pass

    # --------------------------------------------------------------- status updates

    def _status(
        self,
        task: Task,
        state: str,
        source: str,
        reason: str | None,
        message: str | None,
    ) -> dict[str, Any]:
        status: dict[str, Any] = {
            "task_id": {"value": task.task_id},
            "state": state,
            "source": source,
            "agent_id": {"value": task.agent_id},
            "timestamp": time.time(),
        }
        if task.executor_id and task.info.get("executor") is not None:
            status["executor_id"] = {"value": task.executor_id}
        if reason:
            status["reason"] = reason
        if message:
            status["message"] = message
        return status

    def _send_master_update(
        self,
        fw: Framework,
        task_id: str,
        agent_id: str | None,
        state: str,
        reason: str,
        message: str,
    ) -> None:
        """An update the master makes up itself: no uuid, so nothing to acknowledge."""
        status: dict[str, Any] = {
            "task_id": {"value": task_id},
            "state": state,
            "source": "SOURCE_MASTER",
            "reason": reason,
            "message": message,
            "timestamp": time.time(),
        }
        if agent_id:
            status["agent_id"] = {"value": agent_id}
        self._send(fw, {"type": "UPDATE", "update": {"status": status}})

    def _agent_update(self, task: Task, status: dict[str, Any]) -> None:
        """A reliable update from the agent or executor: carries a uuid, retried until acked."""
        status.setdefault("uuid", _uuid_b64())
        was_terminal = task.terminal
        task.state = status["state"]
        task.status = status
        task.pending.append(status)
        if len(task.pending) == 1:
            self._deliver(task)
        if task.terminal and not was_terminal:
            self._reallocate(task.agent_id)

    def _deliver(self, task: Task) -> None:
        fw = self.frameworks.get(task.framework_id)
        if fw is not None and fw.connected and task.pending:
            self._send(fw, {"type": "UPDATE", "update": {"status": dict(task.pending[0])}})
            task.last_sent = time.monotonic()

    # ------------------------------------------------------------------ allocation

    def _available(self, agent: Agent, offered: bool = True) -> Resources:
        """What the agent has left; `offered=False` when it is known to have no offer out."""
        free = agent.spec.resources()
        for task in agent.tasks.values():
            if not task.terminal:
                free = free - task.resources
        for ex in agent.executors.values():
            if not ex.terminated:
                free = free - ex.resources
        if offered:
            for offer in self.offers.values():
                if offer.agent_id == agent.id:
                    free = free - offer.resources
        return free

    def _allocate(self, only: set[str] | None = None) -> None:
        """Offer the free resources of every agent (or of the agents `only` names) that has
        no offer out."""
        now = time.monotonic()
        frameworks = [f for f in self.frameworks.values() if f.connected and not f.suppressed]
        if not frameworks:
            return
        offered_agents = {o.agent_id for o in self.offers.values()}
        batches: dict[str, list[dict[str, Any]]] = {}
        # Start with the framework holding the fewest offers, so several frameworks share.
        frameworks.sort(key=lambda f: len(f.offers))
        if only is None:
            agents = list(self.agents.values())
        else:
            agents = [self.agents[a] for a in sorted(only) if a in self.agents]
        for agent in agents:
            if agent.id in offered_agents:
                continue
            if all(fw.filters.get(agent.id, 0.0) > now for fw in frameworks):
                # every framework refused the agent for a while: nothing to offer it, so
                # its free resources are not worked out (an agent's tasks one by one,
                # after every ACCEPT, were most of the double's work in a big cycle)
                continue
            free = self._available(agent, offered=False)
            if not free.allocatable():
                continue
            for fw in frameworks:
                if fw.filters.get(agent.id, 0.0) > now:
                    continue
                self._offer_seq += 1
                offer = Offer(f"{self.master_id}-O{self._offer_seq}", fw.id, agent.id, free)
                self.offers[offer.id] = offer
                fw.offers.add(offer.id)
                batches.setdefault(fw.id, []).append(self._offer_proto(offer, agent))
                frameworks.append(frameworks.pop(frameworks.index(fw)))
                break
        for fw_id, offers in batches.items():
            self._send(self.frameworks[fw_id], {"type": "OFFERS", "offers": {"offers": offers}})

    def _offer_proto(self, offer: Offer, agent: Agent) -> dict[str, Any]:
        return {
            "id": {"value": offer.id},
            "framework_id": {"value": offer.framework_id},
            "agent_id": {"value": agent.id},
            "hostname": agent.spec.hostname,
            "resources": offer.resources.to_proto(),
            "attributes": agent.spec.attributes_proto(),
        }

    def _remove_offer(self, offer: Offer, rescind: bool) -> None:
        self.offers.pop(offer.id, None)
        fw = self.frameworks.get(offer.framework_id)
        if fw is not None:
            fw.offers.discard(offer.id)
            if rescind:
                self._send(fw, {"type": "RESCIND", "rescind": {"offer_id": {"value": offer.id}}})
        self._reallocate(offer.agent_id)

    def _reallocate(self, agent_id: str | None = None) -> None:
        """Offer the agent's resources again at once (every agent's when None), instead of
        at the next allocation interval. Called under the lock."""
        if agent_id is None:
            self._reallocate_all = True
        else:
            self._changed_agents.add(agent_id)
        self._allocate_now.set()

    # ---------------------------------------------------------------------- ticker

    def _tick_loop(self) -> None:
        while not self._stopping.is_set():
            self._allocate_now.wait(0.02)
            try:
                self._tick()
            except Exception as exc:  # keep the double alive; the test will see the error
                self.errors.append(exc)

    def _tick(self) -> None:
        now = time.monotonic()
        with self.lock:
            if self._reallocate_all or now >= self._next_allocation:
                self._allocate_now.clear()
                self._reallocate_all = False
                self._changed_agents.clear()
                self._next_allocation = now + self.config.allocation_interval
                self._allocate()
            elif self._allocate_now.is_set():
                self._allocate_now.clear()
                changed, self._changed_agents = self._changed_agents, set()
                self._allocate(changed)
            if now < self._next_housekeeping:
                return
            # timeouts and retries: scanned every HOUSEKEEPING_INTERVAL, not on every event
            self._next_housekeeping = now + HOUSEKEEPING_INTERVAL
            for fw in list(self.frameworks.values()):
                if (
                    fw.disconnected_at is not None
                    and now - fw.disconnected_at > fw.failover_timeout
                ):
                    self._remove_framework(fw)
            retry = self.config.status_update_retry_seconds
            for task in self.tasks.values():
                if task.pending and now - task.last_sent >= retry:
                    self._deliver(task)
            if self.config.offer_timeout is not None:
                for offer in list(self.offers.values()):
                    if now - offer.created >= self.config.offer_timeout:
                        self._remove_offer(offer, rescind=True)
            for agent in self.agents.values():
                for ex in agent.executors.values():
                    if ex.terminated or ex.proc is None:
                        continue
                    if ex.kill_at is not None and now >= ex.kill_at:
                        self._signal_executor(ex, signal.SIGKILL)
                        ex.kill_at = None
                    elif (
                        ex.command_task is None
                        and not ex.subscribed
                        and now - ex.launched_at > self.config.executor_registration_timeout
                    ):
                        ex.pending_state = "TASK_FAILED"
                        self._signal_executor(ex, signal.SIGKILL)

    # ------------------------------------------------------------------ agent side

    def _ensure_agent_server(self, agent: Agent) -> None:
        if agent.server is None:

            def app(req: Request) -> Response | StreamResponse:
                return self._handle_agent(agent, req)

            agent.server = Server(self.config.host, 0, app, self.errors)

    def _stop_agent(self, agent: Agent) -> None:
        with self._spawn_lock:
            agent.stopped = True
        with self.lock:
            executors = list(agent.executors.values())
        for ex in executors:
            self._signal_executor(ex, signal.SIGKILL)
            if ex.stream is not None:
                ex.stream.abort()
        for ex in executors:
            if ex.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    ex.proc.wait(timeout=5)
        if agent.server is not None:
            agent.server.close()

    def _signal_executor(self, ex: Executor, sig: int) -> None:
        if ex.proc is not None and ex.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(ex.proc.pid, sig)

    def _shutdown_executor(self, agent: Agent, ex: Executor) -> None:
        """SHUTDOWN to the executor, SIGKILL to its process group after the grace period."""
        if ex.terminated:
            return
        if ex.command_task is not None or ex.stream is None:
            self._signal_executor(ex, signal.SIGTERM)
        else:
            self._send_executor(ex, {"type": "SHUTDOWN"})
        ex.kill_at = time.monotonic() + self.config.executor_shutdown_grace_period

    def _sandbox(self, agent: Agent, fw_id: str, executor_id: str) -> str:
        """Where the executor's sandbox will be; the agent makes it when it starts it."""
        run = f"slaves/{agent.id}/frameworks/{fw_id}/executors/{executor_id}/runs/{uuid.uuid4()}"
        return f"{self.work_dir}/{run}"

    def _executor_env(
        self, fw: Framework, agent: Agent, executor_id: str, sandbox: Path, command: dict[str, Any]
    ) -> dict[str, str]:
        # Like a Mesos agent without --executor_environment_variables: its own environment,
        # then the CommandInfo's variables, then the agent's MESOS_* variables.
        env = dict(os.environ)
        for var in (command.get("environment") or {}).get("variables") or []:
            if isinstance(var, dict) and isinstance(var.get("name"), str):
                env[var["name"]] = str(var.get("value", ""))
        grace = self.config.executor_shutdown_grace_period
        env.update(
            MESOS_AGENT_ENDPOINT=agent.endpoint,
            MESOS_SLAVE_PID=f"slave({agent.index})@{agent.endpoint}",
            MESOS_FRAMEWORK_ID=fw.id,
            MESOS_EXECUTOR_ID=executor_id,
            MESOS_SLAVE_ID=agent.id,
            MESOS_DIRECTORY=str(sandbox),
            MESOS_SANDBOX=str(sandbox),
            MESOS_CHECKPOINT="1" if fw.checkpoint else "0",
            MESOS_HTTP_COMMAND_EXECUTOR="0",
            MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=f"{grace:g}secs",
        )
        if fw.checkpoint:
            env.update(MESOS_RECOVERY_TIMEOUT="15mins", MESOS_SUBSCRIPTION_BACKOFF_MAX="2secs")
        if self.config.executor_local:
            env["MESOS_LOCAL"] = "1"
        else:
            env.pop("MESOS_LOCAL", None)
        return env

    def _spawn(
        self,
        fw: Framework,
        agent: Agent,
        ex: Executor,
        command: dict[str, Any],
        started: Callable[[], None] | None = None,
        failed: Callable[[OSError], None] | None = None,
    ) -> None:
        """Have the agent start the executor's process. A Mesos master answers ACCEPT (202)
        once it has checked the call and sent the launch on to the agent; the agent starts
        executors on its own time. So does the double: processes are started in order by
        one launcher thread, outside the master's lock, so an ACCEPT of many tasks is
        answered without waiting for their processes. `started` runs (under the lock) once
        the process runs, `failed` if it cannot be started."""
        self._launches.put(_Launch(fw, agent, ex, command, started, failed))
        with self.lock:
            if self._launcher is None or not self._launcher.is_alive():
                self._launcher = threading.Thread(
                    target=self._launch_loop, name="mesos-double-launcher", daemon=True
                )
                self._launcher.start()

    def _launch_loop(self) -> None:
        while True:
            launch = self._launches.get()
            try:
                self._start_process(launch)
            except BaseException as exc:  # a bug of the double: the fixture reports it
                self.errors.append(exc)

    def _yield_to_master(self) -> None:
        """Wait while the master is answering calls (a burst of ACCEPTs), at most
        AGENT_YIELD_MAX. Mesos agents start executors on their own machines, never taking
        the master's (or its frameworks') processors; the double's agents share this machine
        with them, so they start processes in the master's quiet moments, and a framework
        measured against the double is not charged for thousands of process starts. The
        registration timeout counts from a process's start, so the wait costs no task."""
        deadline = time.monotonic() + AGENT_YIELD_MAX
        while True:
            now = time.monotonic()
            wait = min(self._master_busy_until, deadline) - now
            if wait <= 0:
                return
            time.sleep(min(wait, AGENT_YIELD))

    def _start_process(self, launch: _Launch) -> None:
        self._yield_to_master()
        agent, ex, command = launch.agent, launch.executor, launch.command
        if command.get("shell", True):
            argv = ["/bin/sh", "-c", str(command.get("value", ""))]
            executable = None
        else:
            value = str(command.get("value", ""))
            argv = [str(a) for a in command.get("arguments") or [value]]
            executable = value
        with self._spawn_lock:
            if agent.stopped or ex.terminated:
                return
            try:
                # the agent's own work, off the master's path: its executor API server,
                # the sandbox and the environment
                with self.lock:
                    self._ensure_agent_server(agent)
                    env = self._executor_env(
                        launch.framework, agent, ex.executor_id, ex.sandbox, command
                    )
                ex.sandbox.mkdir(parents=True, exist_ok=True)
                with (
                    open(ex.sandbox / "stdout", "ab") as out,
                    open(ex.sandbox / "stderr", "ab") as err,
                ):
                    proc = subprocess.Popen(
                        argv,
                        executable=executable,
                        cwd=ex.sandbox,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,  # its own process group, killed as a whole
                    )
            except OSError as exc:
                with self.lock:
                    ex.terminated = True
                    if launch.failed is not None:
                        launch.failed(exc)
                return
            with self.lock:
                ex.proc = proc
                self.executor_starts.append((ex.executor_id, time.time()))
                # the registration timeout counts from the process's start
                ex.launched_at = time.monotonic()
                if launch.started is not None:
                    launch.started()
        threading.Thread(
            target=self._reap, args=(agent, ex), name=f"reap-{ex.executor_id}", daemon=True
        ).start()

    def _start_executor_task(
        self,
        fw: Framework,
        agent: Agent,
        executor_info: dict[str, Any],
        task_info: dict[str, Any],
        task: Task,
    ) -> None:
        executor_id = task.executor_id or ""
        ex = agent.executors.get((fw.id, executor_id))
        if ex is None or ex.terminated:
            executor_info = dict(executor_info, framework_id={"value": fw.id})
            sandbox = self._sandbox(agent, fw.id, executor_id)
            ex = Executor(
                fw.id,
                executor_id,
                executor_info,
                dict(fw.info),
                Resources.from_proto(executor_info.get("resources")),
                sandbox,
            )
            agent.executors[(fw.id, executor_id)] = ex
            command = executor_info.get("command") or {}

            def failed(exc: OSError, ex: Executor = ex) -> None:
                for task_id in sorted(ex.task_ids):
                    queued = agent.tasks.get((fw.id, task_id))
                    if queued is None or queued.terminal:
                        continue
                    self._agent_update(
                        queued,
                        self._status(
                            queued,
                            "TASK_FAILED",
                            "SOURCE_AGENT",
                            "REASON_EXECUTOR_TERMINATED",
                            f"Failed to launch executor: {exc}",
                        ),
                    )

            self._spawn(fw, agent, ex, command, failed=failed)
        ex.task_ids.add(task.task_id)
        if ex.subscribed and ex.stream is not None:
            self._send_executor(ex, {"type": "LAUNCH", "launch": {"task": task_info}})
        else:
            ex.queued.append(task_info)

    def _start_command_task(
        self, fw: Framework, agent: Agent, task_info: dict[str, Any], task: Task
    ) -> None:
        """A task with a CommandInfo: the double plays Mesos's command executor itself."""
        sandbox = self._sandbox(agent, fw.id, task.task_id)
        ex = Executor(fw.id, task.task_id, {}, dict(fw.info), Resources(), sandbox)
        ex.command_task = task.task_id
        ex.subscribed = True
        ex.task_ids.add(task.task_id)
        agent.executors[(fw.id, task.task_id)] = ex
        command = task_info.get("command") or {}
        self._agent_update(task, self._status(task, "TASK_STARTING", "SOURCE_EXECUTOR", None, None))

        def started() -> None:
            if not task.terminal:
                self._agent_update(
                    task, self._status(task, "TASK_RUNNING", "SOURCE_EXECUTOR", None, None)
                )

        def failed(exc: OSError) -> None:
            self._agent_update(
                task, self._status(task, "TASK_FAILED", "SOURCE_EXECUTOR", None, str(exc))
            )

        self._spawn(fw, agent, ex, command, started=started, failed=failed)

    def _reap(self, agent: Agent, ex: Executor) -> None:
        assert ex.proc is not None
        code = ex.proc.wait()
        wait_status = (code << 8) if code >= 0 else -code
        with self.lock:
            ex.terminated = True
            if ex.stream is not None:
                ex.stream.abort()
                ex.stream = None
            fw = self.frameworks.get(ex.framework_id)
            for task_id in sorted(ex.task_ids):
                task = agent.tasks.get((ex.framework_id, task_id))
                if task is None or task.terminal:
                    continue
                if ex.command_task is not None:
                    if task.kill_requested or ex.pending_state == "TASK_KILLED":
                        state, message = "TASK_KILLED", "Command terminated with signal"
                    elif code == 0:
                        state, message = "TASK_FINISHED", "Command exited with status 0"
                    else:
                        state, message = "TASK_FAILED", f"Command exited with status {code}"
                    self._agent_update(
                        task, self._status(task, state, "SOURCE_EXECUTOR", None, message)
                    )
                else:
                    state = ex.pending_state or "TASK_FAILED"
                    if task.kill_requested and state == "TASK_FAILED":
                        state = "TASK_KILLED"
                    reason = (
                        "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
                        if not ex.subscribed and ex.pending_state == "TASK_FAILED"
                        else "REASON_EXECUTOR_TERMINATED"
                    )
                    self._agent_update(
                        task,
                        self._status(
                            task,
                            state,
                            "SOURCE_AGENT",
                            reason,
                            f"Executor terminated (wait status {wait_status})",
                        ),
                    )
            if fw is not None and agent.id in self.agents:
                self._send(
                    fw,
                    {
                        "type": "FAILURE",
                        "failure": {
                            "agent_id": {"value": agent.id},
                            "executor_id": {"value": ex.executor_id},
                            "status": wait_status,
                        },
                    },
                )
            if agent.executors.get((ex.framework_id, ex.executor_id)) is ex:
                del agent.executors[(ex.framework_id, ex.executor_id)]
            self._reallocate(agent.id)

    def _send_executor(self, ex: Executor, event: dict[str, Any]) -> None:
        if ex.stream is not None:
            ex.stream.send(event)

    # ----------------------------------------------------------- HTTP: executor API

    def _handle_agent(self, agent: Agent, req: Request) -> Response | StreamResponse:
        if req.path == "/version":
            return Response.json(200, {"version": self.config.version})
        if req.path != EXECUTOR_PATH:
            return Response(404)
        if req.method != "POST":
            return Response(
                405,
                f"Expecting one of {{ 'POST' }}, but received '{req.method}'",
                {"Allow": "POST"},
            )
        call: dict[str, Any] = {}
        try:
            call = self._parse_call(req)
            result = self._executor_call(agent, req, call)
        except CallError as err:
            result = Response(err.status, err.message)
        with self.lock:
            self.executor_calls.append(
                {
                    "agent_id": agent.id,
                    "type": call.get("type"),
                    "call": call,
                    "status": result.status if isinstance(result, Response) else 200,
                    "time": time.time(),
                }
            )
        return result

    def _executor_call(
        self, agent: Agent, req: Request, call: dict[str, Any]
    ) -> Response | StreamResponse:
        fw_id = _value(call.get("framework_id"))
        ex_id = _value(call.get("executor_id"))
        if fw_id is None:
            raise CallError(
                400, "Failed to validate executor::Call: Expecting 'framework_id' to be present"
            )
        if ex_id is None:
            raise CallError(
                400, "Failed to validate executor::Call: Expecting 'executor_id' to be present"
            )
        kind = call["type"]
        with self.lock:
            if not any(ex.framework_id == fw_id for ex in agent.executors.values()):
                raise CallError(400, "Framework cannot be found")
            ex = agent.executors.get((fw_id, ex_id))
            if ex is None or ex.terminated or ex.command_task is not None:
                raise CallError(400, "Executor cannot be found")
            if kind == "SUBSCRIBE":
                if not _accepts_json(req.headers.get("accept")):
                    raise CallError(406, f"Expecting 'Accept' to allow {JSON} or {PROTOBUF}")
                return self._executor_subscribe(agent, ex)
            if not ex.subscribed:
                raise CallError(403, "Executor is not subscribed")
            if kind == "UPDATE":
                self._executor_update(agent, ex, call)
            elif kind == "MESSAGE":
                fw = self.frameworks.get(fw_id)
                if fw is not None:
                    data = (call.get("message") or {}).get("data", "")
                    self._send(
                        fw,
                        {
                            "type": "MESSAGE",
                            "message": {
                                "agent_id": {"value": agent.id},
                                "executor_id": {"value": ex_id},
                                "data": data,
                            },
                        },
                    )
            elif kind != "HEARTBEAT":
                raise CallError(400, f"Failed to validate executor::Call: Unsupported type {kind}")
        return Response(202)

    def _executor_subscribe(self, agent: Agent, ex: Executor) -> StreamResponse:
        if ex.stream is not None:
            ex.stream.end()  # a re-subscribing executor replaces its old connection
        stream = EventStream(
            self.config.heartbeat_interval,
            self._executor_stream_closed,
            self.config.fragment_records,
        )
        ex.stream = stream
        ex.subscribed = True
        stream.send(
            {
                "type": "SUBSCRIBED",
                "subscribed": {
                    "executor_info": ex.info,
                    "framework_info": ex.framework_info,
                    "agent_info": agent.info(),
                    "container_id": {"value": ex.sandbox.name},
                },
            }
        )
        for task_info in ex.queued:
            stream.send({"type": "LAUNCH", "launch": {"task": task_info}})
        ex.queued = []
        return StreamResponse(stream)

    def _executor_stream_closed(self, stream: EventStream) -> None:
        with self.lock:
            for agent in self.agents.values():
                for ex in agent.executors.values():
                    if ex.stream is stream:
                        ex.stream = None

    def _executor_update(self, agent: Agent, ex: Executor, call: dict[str, Any]) -> None:
        status = (call.get("update") or {}).get("status")
        if not isinstance(status, dict):
            raise CallError(
                400, "Failed to validate executor::Call: Expecting 'update' to be present"
            )
        if not _valid_uuid(status.get("uuid")):
            raise CallError(400, "Failed to validate executor::Call: 'uuid' is not a valid UUID")
        state = status.get("state")
        if state not in TASK_STATES:
            raise CallError(400, f"Failed to validate executor::Call: unknown state {state!r}")
        if state == "TASK_STAGING":
            raise CallError(
                400, "Failed to validate executor::Call: Received TASK_STAGING from executor"
            )
        task_id = _value(status.get("task_id"))
        if status.get("source", "SOURCE_EXECUTOR") != "SOURCE_EXECUTOR":
            raise CallError(400, "Failed to validate executor::Call: Received wrong status source")
        task = agent.tasks.get((ex.framework_id, task_id or ""))
        if task is None or task.task_id not in ex.task_ids:
            return  # a late update for a task the agent no longer knows: dropped
        if task.terminal:
            return  # terminal is final; the agent ignores transitions out of it
        status = dict(status)
        status["agent_id"] = {"value": agent.id}
        status["executor_id"] = {"value": ex.executor_id}
        status["source"] = "SOURCE_EXECUTOR"
        self._agent_update(task, status)
