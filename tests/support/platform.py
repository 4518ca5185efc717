"""The all-in-one platform (`titus local`) started as a process, for end-to-end tests.

Each platform gets its own data directory, ports and agent id, so tests never see each
other's jobs or containers. Containers left by a test are removed when it ends. The root
conftest.py registers this module as a pytest plugin (the `platform` fixture).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import docker
import httpx
import pytest

from tests.support.docker_engine import remove_agent_containers, start_docker_engine
from tests.support.poll import wait_until

ROOT = Path(__file__).resolve().parents[2]
TITUS = str(Path(sys.executable).parent / "titus")


#: Ports handed to servers the tests start, below the kernel's ephemeral range
#: (32768-60999 here): a port from that range, once let go, may become the source port
#: of any outgoing connection, and a process restarted on it then fails to bind.
SERVER_PORTS = range(20000, 32768)


def free_port() -> int:
    """A loopback port nothing listens on, outside the range outgoing connections use."""
    for _ in range(200):
        port = random.choice(SERVER_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {SERVER_PORTS}")


def spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`titus ARGS...` as a process whose output goes to the end of log_path."""
    log = log_path.open("ab")
    return subprocess.Popen([TITUS, *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Send sig to a process that still runs and wait for it; SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class ApiHelpers:
    """Calls to a running platform's API, shared by the one-process platform and the
    multi-process cluster: `http` is a client of its API, `logs()` its processes' output."""

    http: httpx.Client
    #: How long wait_for waits unless told otherwise.
    wait_sec: ClassVar[float] = 60.0

    def logs(self) -> str:
        raise NotImplementedError

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.http.get(f"/api/v3/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def tasks(self, job_id: str) -> list[dict[str, Any]]:
        r = self.http.get("/api/v3/tasks", params={"jobIds": job_id, "pageSize": "1000"})
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]

    def wait_for(
        self,
        what: str,
        check: Callable[[], Any],
        timeout: float | None = None,
        interval: float = 0.2,
    ) -> Any:
        """The first true result of check(); a failed call to the API (restarting or
        busy) counts as not yet. A timeout shows the processes' logs."""
        return wait_until(
            what,
            check,
            self.wait_sec if timeout is None else timeout,
            interval=interval,
            retry_on=(httpx.HTTPError,),
            context=self.logs,
        )


@dataclass
class Platform(ApiHelpers):
    url: str
    data_dir: Path
    agent_id: str
    env: dict[str, str]
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30.0)

    # ---- process ------------------------------------------------------------------------
    def start(self) -> None:
        proc = self.proc = spawn(["local", *self.args], self.env, self.log_path)

        def leads() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"titus local exited: {self.logs()[-3000:]}")
            r = self.http.get("/health")
            return r.status_code == 200 and bool(r.json().get("leader"))

        self.wait_for("titus local to come up and lead", leads, timeout=60, interval=0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, sig)
        self.proc = None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    # ---- API helpers --------------------------------------------------------------------
    def submit(self, descriptor: dict[str, Any], **headers: str) -> str:
        r = self.http.post("/api/v3/jobs", json=descriptor, headers=headers)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def wait_job_finished(self, job_id: str, timeout: float = 90.0) -> dict[str, Any]:
        return self.wait_for(  # type: ignore[no-any-return]
            f"job {job_id} to finish",
            lambda: (j := self.job(job_id))["status"]["state"] == "Finished" and j,
            timeout,
        )

    def running(self, job_id: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks(job_id) if t["status"]["state"] == "Started"]

    def end_active_jobs(self) -> None:
        """Kill every active job and wait until none is listed, so that a platform shared
        by a module's tests hands the next test an empty cluster (nothing holding the
        host's resources, nothing in the listings)."""
        for job in self.http.get("/api/v3/jobs", params={"pageSize": 1000}).json()["items"]:
            self.http.delete(f"/api/v3/jobs/{job['id']}")
        self.wait_for(
            "no active job",
            lambda: self.http.get("/api/v3/jobs").json()["pagination"]["totalItems"] == 0,
            timeout=60,
        )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [TITUS, *args, "--url", self.url], capture_output=True, text=True, timeout=60
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc


def _remove_containers(docker_host: str, agent_id: str) -> None:
    with contextlib.suppress(Exception):  # best effort: the engine may be gone
        remove_agent_containers(docker.DockerClient(base_url=docker_host), agent_id)


def make_platform(tmp: Path, extra_env: dict[str, str] | None = None) -> Platform:
    docker_host = start_docker_engine()
    port, agent_port = free_port(), free_port()
    agent_id = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DOCKER_HOST": docker_host,
        "TITUS_DATA_DIR": str(tmp / "data"),
        "TITUS_AGENT_ID": agent_id,
        "TITUS_AGENT_DISK_MB": "1000000",
        "TITUS_KILL_GRACE_SEC": "2",
        # a port of its own: platforms of tests one after another never meet on 7104
        "TITUS_GRPC_PORT": "0",
        **(extra_env or {}),
    }
    return Platform(
        url=f"http://127.0.0.1:{port}",
        data_dir=tmp / "data",
        agent_id=agent_id,
        env=env,
        args=["--port", str(port), "--agent-port", str(agent_port)],
        log_path=tmp / "titus.log",
    )


@contextmanager
def running_platform(tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[Platform]:
    """`titus local` started for the block, stopped after it with its containers removed."""
    p = make_platform(tmp, extra_env)
    p.start()
    try:
        yield p
    finally:
        p.stop()
        _remove_containers(p.env["DOCKER_HOST"], p.agent_id)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    with running_platform(tmp_path) as p:
        yield p


@pytest.fixture(scope="module")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One `titus local` for a module (a start is a few seconds each test would pay)."""
    with running_platform(tmp_path_factory.mktemp("shared")) as p:
        yield p


@pytest.fixture
def module_platform(shared_platform: Platform) -> Iterator[Platform]:
    """The module's platform, its jobs ended after each test (the next starts empty). A
    module takes it as its `platform`: `def platform(module_platform)`."""
    yield shared_platform
    shared_platform.end_active_jobs()
