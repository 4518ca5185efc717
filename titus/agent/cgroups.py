"""A container's cgroup limits and counters, read from whichever hierarchy is mounted.

Hosts run cgroup v1 (one hierarchy per controller: `memory/memory.limit_in_bytes`,
`cpu/cpu.cfs_quota_us`...) or cgroup v2 (one unified hierarchy: `memory.max`, `cpu.max`,
`cpu.weight`; Debian 12's default). The engine sets the same limits on both from the same
container settings; this module reads them back in one shape, so what checks them (the
isolation tests, an operator's tooling) does not care which hierarchy a host has.

Files are read through a `read(name)` function (the file's text, or None when it is not
there), so the same code reads a cgroup from the host (`host_cgroup`) or from inside the
container (an exec of `cat /sys/fs/cgroup/...`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")

Reader = Callable[[str], str | None]


def shares_to_weight(shares: int) -> int:
    """The cgroup v2 cpu.weight the engine (runc) sets for cgroup v1 cpu.shares."""
    return 1 + ((shares - 2) * 9999) // 262142


def _number(text: str | None) -> int | None:
    """A limit file's value; None for `max` or -1 (no limit) and for a missing file."""
    if text is None:
        return None
    value = text.split()[0] if text.split() else ""
    if value in ("max", "-1", ""):
        return None
    return int(value)


def _stat(text: str | None) -> dict[str, int]:
    if not text:
        return {}
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


@dataclass(frozen=True)
class CpuStat:
    """CFS accounting: periods elapsed, periods throttled, cpu time used (ns)."""

    periods: int
    throttled: int
    usage_ns: int


class Cgroup:
    """One container's cgroup, v1 or v2, read through `read` (names relative to the
    cgroup root: `memory/memory.limit_in_bytes` on v1, `memory.max` on v2)."""

    def __init__(self, read: Reader, version: int):
        self.read = read
        self.version = version

    @classmethod
    def detect(cls, read: Reader) -> Cgroup:
        """v2 when the unified hierarchy's `cgroup.controllers` is there, else v1."""
        return cls(read, 2 if read("cgroup.controllers") is not None else 1)

    def _file(self, v1: str, v2: str) -> str | None:
        return self.read(v1 if self.version == 1 else v2)

    def memory_limit(self) -> int | None:
        """Bytes; None when unlimited."""
        return _number(self._file("memory/memory.limit_in_bytes", "memory.max"))

    def cpu_quota(self) -> tuple[int | None, int]:
        """(quota µs per period or None when there is no ceiling, period µs)."""
        if self.version == 2:
            quota, _, period = (self.read("cpu.max") or "max 100000").strip().partition(" ")
            return _number(quota), int(period or 100000)
        cfs_period = _number(self.read("cpu/cpu.cfs_period_us")) or 100000
        return _number(self.read("cpu/cpu.cfs_quota_us")), cfs_period

    def cpu_weight(self) -> int | None:
        """The cpu share as cgroup v2 counts it (cpu.weight); v1 shares are converted."""
        if self.version == 2:
            return _number(self.read("cpu.weight"))
        shares = _number(self.read("cpu/cpu.shares"))
        return None if shares is None else shares_to_weight(shares)

    def pids_limit(self) -> int | None:
        return _number(self._file("pids/pids.max", "pids.max"))

    def pids_current(self) -> int:
        return _number(self._file("pids/pids.current", "pids.current")) or 0

    def pids_refused(self) -> int:
        """Forks refused at the pids limit."""
        return _stat(self._file("pids/pids.events", "pids.events")).get("max", 0)

    def cpu_stat(self) -> CpuStat:
        if self.version == 2:
            stat = _stat(self.read("cpu.stat"))
            usage = stat.get("usage_usec", 0) * 1000
        else:
            stat = _stat(self.read("cpu/cpu.stat"))
            usage = _number(self.read("cpuacct/cpuacct.usage")) or 0
        return CpuStat(stat.get("nr_periods", 0), stat.get("nr_throttled", 0), usage)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _v2_reader(directory: Path) -> Reader:
    return lambda name: _read(directory / name)


def _v1_reader(root: Path, rel: str) -> Reader:
    """`memory/memory.max`-style names: the controller's hierarchy, then the cgroup."""

    def read(name: str) -> str | None:
        controller, _, file = name.partition("/")
        return _read(root / controller / rel / file)

    return read


def host_cgroup(container_id: str, root: Path = CGROUP_ROOT) -> Cgroup:
    """A container's cgroup as the host sees it, for either hierarchy and either cgroup
    driver of the engine (cgroupfs: `docker/<id>`; systemd: `system.slice/docker-<id>.scope`).

    Raises LookupError naming the places looked at when it is in none of them.
    """
    places = (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope")
    if (root / "cgroup.controllers").is_file():
        for rel in places:
            if (root / rel).is_dir():
                return Cgroup(_v2_reader(root / rel), 2)
        tried = [str(root / rel) for rel in places]
    else:
        for rel in places:
            if (root / "pids" / rel).is_dir():
                return Cgroup(_v1_reader(root, rel), 1)
        tried = [str(root / "pids" / rel) for rel in places]
    raise LookupError(f"no cgroup for container {container_id}: tried {', '.join(tried)}")
