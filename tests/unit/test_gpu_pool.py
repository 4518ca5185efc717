"""Which GPUs a host offers, and which of them each task gets: exactly as many as it asked
for, never one another task holds, given back when it ends, known again after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from titus.agent.gpus import GpuPool, host_gpus
from titus.agent.hooks import LaunchError
from titus.model.states import Reason
from titus.settings import Settings


def test_declared_gpus_win_over_found_devices(tmp_path: Path) -> None:
    for name in ("nvidia0", "nvidia1", "nvidia10", "nvidiactl", "nvidia-uvm"):
        (tmp_path / name).touch()
    assert host_gpus(Settings(), tmp_path) == ["0", "1", "10"]
    assert host_gpus(Settings(agent_gpus=["3", "5", "3"]), tmp_path) == ["3", "5"]
    assert host_gpus(Settings(), tmp_path / "missing") == []


def test_each_task_gets_its_own_devices_and_gives_them_back() -> None:
    pool = GpuPool(["0", "1", "2"])
    a = pool.allocate("a", 2)
    b = pool.allocate("b", 1)
    assert len(a) == 2 and len(b) == 1 and not set(a) & set(b)
    assert pool.allocate("a", 2) == a  # asked again (a retried setup): the same ones
    with pytest.raises(LaunchError) as refused:
        pool.allocate("c", 1)
    assert refused.value.reason == Reason.TRANSIENT_SYSTEM_ERROR
    assert "needs 1 GPUs, this host has 0 free of 3" in refused.value.message
    pool.release("a")
    assert sorted(pool.free()) == sorted(a)
    pool.hold("d", ["1", "9"])  # an adopted task; a device the host no longer has is ignored
    assert "1" not in pool.free()
