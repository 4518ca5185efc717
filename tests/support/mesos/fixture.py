"""pytest fixtures that start the Mesos master double on a free loopback port.

Use them from a test module by importing them by name (pytest sees fixtures a module imports):
`from tests.support.mesos.fixture import mesos_master, mesos_master_factory`.

- `mesos_master`: a started double with short times (heartbeats every 0.5 s, allocation every
  50 ms) and two agents, `agent-a` (zone-a) and `agent-b` (zone-b), each 4 cpus, 8 GB, ports
  31000-32000, TEXT attributes `zone` and `instanceType`. `.address` is "127.0.0.1:PORT".
- `mesos_master_factory(**config, agents=N)`: more doubles with other settings (e.g. a
  ZooKeeper to publish in, a failover test's second master); all stopped at the end.

Everything they started, executor process groups included, is gone when the test ends.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.mesos.master import Config, MesosMasterDouble

SAMPLE_EXECUTOR = Path(__file__).with_name("sample_executor.py")

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
        errors = [e for s in (double._server,) if s is not None for e in s.errors]
        assert not errors, f"the Mesos double failed: {errors}"


@pytest.fixture
def mesos_master(mesos_master_factory: Factory) -> MesosMasterDouble:
    return mesos_master_factory()
