"""pytest fixtures that start the Mesos master double on a free loopback port.

Use them from a test module by importing them by name (pytest sees fixtures a module imports):
`from tests.support.mesos.fixture import mesos_master, mesos_master_factory`.

- `mesos_master`: a started double with short times (heartbeats every 0.5 s, allocation every
  50 ms) and two agents, `agent-a` (zone-a) and `agent-b` (zone-b), each 4 cpus, 8 GB, ports
  31000-32000, TEXT attributes `zone` and `instanceType`. `.address` is "127.0.0.1:PORT".
- `mesos_master_factory(**config, agents=N)`: more doubles with other settings (e.g. a
  ZooKeeper to publish in, a failover test's second master); all stopped at the end.
- `mesos_master_process`: the double as a subprocess (`python -m tests.support.mesos`),
  with the same operator methods over its control port; stopped (SIGTERM) at the end.

Everything they started, executor process groups included, is gone when the test ends.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.mesos.master import Config, MesosMasterDouble

SAMPLE_EXECUTOR = Path(__file__).with_name("sample_executor.py")
REPO = Path(__file__).resolve().parents[3]

FAST = {
    "heartbeat_interval": 0.5,
    "allocation_interval": 0.05,
    "default_refuse_seconds": 5.0,
    "status_update_retry_seconds": 2.0,
    "executor_registration_timeout": 20.0,
    "executor_shutdown_grace_period": 2.0,
}


def sample_executor_command() -> str:
    """The shell command that runs sample_executor.py with this interpreter."""
    return f"{sys.executable} {SAMPLE_EXECUTOR}"


def add_default_agents(double: MesosMasterDouble, count: int = 2) -> list[str]:
    ids = []
    for i in range(count):
        letter = chr(ord("a") + i)
        ids.append(
            double.add_agent(
                f"agent-{letter}",
                attributes={"zone": f"zone-{letter}", "instanceType": "m5.large"},
            )
        )
    return ids


Factory = Callable[..., MesosMasterDouble]


@pytest.fixture
def mesos_master_factory(tmp_path: Path) -> Iterator[Factory]:
    started: list[MesosMasterDouble] = []

    def make(agents: int = 2, **config: Any) -> MesosMasterDouble:
        settings: dict[str, Any] = dict(FAST)
        settings["work_dir"] = tmp_path / f"mesos-{len(started)}"
        settings.update(config)
        double = MesosMasterDouble(Config(**settings))
        add_default_agents(double, agents)
        started.append(double.start())
        return double

    yield make
    for double in reversed(started):
        double.stop()
    for double in started:
        assert not double.errors, f"the Mesos double failed: {double.errors}"


@pytest.fixture
def mesos_master(mesos_master_factory: Factory) -> MesosMasterDouble:
    return mesos_master_factory()


class MesosMasterProcess:
    """The double run as a subprocess (`python -m tests.support.mesos`), driven over its
    control port with the same operator methods as the in-process double."""

    def __init__(self, *args: str, cwd: Path = REPO) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.mesos", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        lines: dict[str, str] = {}
        while len(lines) < 2:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the Mesos double exited with {self.proc.wait()}")
            key, _, value = line.strip().partition("=")
            lines[key] = value
        self.address = lines["MESOS_MASTER"]
        self.control = lines["MESOS_CONTROL"]

    def _post(self, action: str, **args: Any) -> Any:
        host, port = self.control.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request(
                "POST", f"/{action}", json.dumps(args), {"Content-Type": "application/json"}
            )
            resp = conn.getresponse()
            body = resp.read().decode()
            if resp.status != 200:
                raise RuntimeError(f"{action}: {resp.status} {body}")
            return json.loads(body)
        finally:
            conn.close()

    def _get(self, what: str) -> Any:
        host, port = self.control.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("GET", f"/{what}")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def add_agent(self, hostname: str | None = None, **spec: Any) -> str:
        return str(self._post("add_agent", hostname=hostname, **spec)["agent_id"])

    def remove_agent(self, agent_id: str, announce: bool = True) -> None:
        self._post("remove_agent", agent_id=agent_id, announce=announce)

    def rescind_offer(self, offer_id: str) -> None:
        self._post("rescind_offer", offer_id=offer_id)

    def restart(self, downtime: float = 0.0) -> None:
        self._post("restart", downtime=downtime)

    def kill_executor(self, executor_id: str, sig: int = 9) -> int:
        return int(self._post("kill_executor", executor_id=executor_id, sig=sig)["pid"])

    def teardown_framework(self, framework_id: str) -> None:
        self._post("teardown_framework", framework_id=framework_id)

    def state(self) -> dict[str, Any]:
        return dict(self._get("state"))

    @property
    def calls(self) -> list[dict[str, Any]]:
        return list(self._get("calls"))

    def call_times(self) -> list[dict[str, Any]]:
        """`MesosMasterDouble.call_times`: the calls without their bodies."""
        return list(self._get("call_times"))

    @property
    def executor_starts(self) -> list[tuple[str, float]]:
        return [(str(e), float(t)) for e, t in self._get("executor_starts")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(
                    timeout=120
                )  # it kills every executor first (thousands in the bench)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def mesos_master_process(tmp_path: Path) -> Iterator[MesosMasterProcess]:
    """The double as a subprocess with short times and the two default agents."""
    proc = MesosMasterProcess(
        "--heartbeat=0.5",
        "--allocation-interval=0.05",
        "--update-retry=2",
        "--grace=2",
        f"--work-dir={tmp_path / 'mesos'}",
    )
    yield proc
    proc.stop()
