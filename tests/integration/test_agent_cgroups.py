"""Reading a container's limits from cgroup v1 or v2 (titus/agent/cgroups.py).

These hosts run cgroup v1, so the v2 layout is written out here as the kernel presents it
(the files and their formats of Documentation/admin-guide/cgroup-v2.rst); the isolation
tests read the real hierarchy of the host they run on through the same code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from titus.agent.cgroups import Cgroup, host_cgroup, shares_to_weight


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_v2_unified_hierarchy_under_the_systemd_driver(tmp_path: Path) -> None:
    cid = "c0ffee"
    scope = f"system.slice/docker-{cid}.scope"
    write(
        tmp_path,
        {
            "cgroup.controllers": "cpuset cpu io memory pids\n",
            f"{scope}/memory.max": "33554432\n",
            f"{scope}/cpu.max": "50000 100000\n",
            f"{scope}/cpu.weight": "20\n",
            f"{scope}/pids.max": "40\n",
            f"{scope}/pids.current": "39\n",
            f"{scope}/pids.events": "max 161\n",
            f"{scope}/cpu.stat": "usage_usec 1500\nnr_periods 12\nnr_throttled 3\n",
        },
    )
    cg = host_cgroup(cid, root=tmp_path)
    assert cg.version == 2
    assert cg.memory_limit() == 32 * 1024 * 1024
    assert cg.cpu_quota() == (50_000, 100_000)
    assert cg.cpu_weight() == shares_to_weight(512) == 20
    assert (cg.pids_limit(), cg.pids_current(), cg.pids_refused()) == (40, 39, 161)
    stat = cg.cpu_stat()
    assert (stat.periods, stat.throttled, stat.usage_ns) == (12, 3, 1_500_000)


def test_v2_without_limits_reads_as_unlimited(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "cgroup.controllers": "cpu memory pids\n",
            "memory.max": "max\n",
            "cpu.max": "max 100000\n",
            "pids.max": "max\n",
        },
    )
    cg = Cgroup.detect(lambda name: _read(tmp_path / name))
    assert cg.version == 2
    assert (cg.memory_limit(), cg.cpu_quota(), cg.pids_limit()) == (None, (None, 100_000), None)


def test_v1_hierarchies_per_controller_under_the_cgroupfs_driver(tmp_path: Path) -> None:
    cid = "beef"
    rel = f"docker/{cid}"
    write(
        tmp_path,
        {
            f"memory/{rel}/memory.limit_in_bytes": "33554432\n",
            f"cpu/{rel}/cpu.cfs_quota_us": "-1\n",
            f"cpu/{rel}/cpu.cfs_period_us": "100000\n",
            f"cpu/{rel}/cpu.shares": "512\n",
            f"cpu/{rel}/cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
            f"cpuacct/{rel}/cpuacct.usage": "7000\n",
            f"pids/{rel}/pids.max": "max\n",
        },
    )
    cg = host_cgroup(cid, root=tmp_path)
    assert cg.version == 1
    assert cg.memory_limit() == 32 * 1024 * 1024
    assert cg.cpu_quota() == (None, 100_000)
    assert cg.cpu_weight() == shares_to_weight(512)
    assert cg.pids_limit() is None
    assert cg.cpu_stat().usage_ns == 7000


def test_a_container_with_no_cgroup_is_an_error_naming_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "pids").mkdir()
    with pytest.raises(LookupError, match="docker/nope"):
        host_cgroup("nope", root=tmp_path)


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None
