"""The cluster as numpy vectors: one row per host, updated in place as tasks are assigned.

Plugins read these arrays for whole sets of hosts at once, which is what makes a placement
cost microseconds instead of a Python loop over thousands of hosts. Every assignment changes
one host's row and is appended to `log`, so cached per-task-shape results can be brought up
to date by re-evaluating only the hosts touched since (see `engine.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from titus.master.scheduler.model import RESOURCES, HostState

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
#: A set of host rows: `slice(None)` for all hosts or an array of row numbers.
Index = slice | npt.NDArray[np.intp]
ALL: slice = slice(None)

#: Columns averaged by the bin-packing fitness (cpu, memory, network), as in Fenzo.
PACK_COLUMNS = (0, 1, 3)
ZONE_ATTRIBUTE = "zone"
#: Pseudo attribute: the host id, unless the host reports an attribute of that name.
HOST_ID = "hostid"


class HostTable:
    """Vectors of host capacity, usage and attributes for one scheduling iteration."""

    def __init__(self, hosts: Sequence[HostState]) -> None:
        self.hosts = list(hosts)
        n = len(self.hosts)
        self.size = n
        self.ids = [h.host_id for h in self.hosts]
        # Column-major (resource x host): reducing over the 6 resources then runs along
        # contiguous rows, an order of magnitude faster than across a (host x resource) matrix.
        self.total: FloatArray = np.array(
            [[float(h.total.get(r, 0.0)) for h in self.hosts] for r in RESOURCES], dtype=np.float64
        ).reshape(len(RESOURCES), n)
        #: Used plus assigned this iteration.
        self.used: FloatArray = np.array(
            [[float(h.used.get(r, 0.0)) for h in self.hosts] for r in RESOURCES], dtype=np.float64
        ).reshape(len(RESOURCES), n)
        #: total - used; the resources filter compares tasks against it.
        self.free: FloatArray = self.total - self.used
        self.healthy: BoolArray = np.fromiter((h.healthy for h in self.hosts), bool, n)
        self.schedulable: BoolArray = np.fromiter((h.schedulable for h in self.hosts), bool, n)
        self.launching: IntArray = np.fromiter((h.launching for h in self.hosts), np.int64, n)
        self.task_count: IntArray = np.fromiter((h.task_count for h in self.hosts), np.int64, n)
        self.held: BoolArray = np.fromiter(
            (h.exclusive_job is not None for h in self.hosts), bool, n
        )
        pack_total = self.total[list(PACK_COLUMNS)]
        with np.errstate(divide="ignore"):
            #: 1/total for the packing columns, 0 where the host has none of the resource.
            self.pack_inverse: FloatArray = np.where(pack_total > 0, 1.0 / pack_total, 0.0)
        self.pack_count: FloatArray = np.maximum((pack_total > 0).sum(axis=0), 1).astype(np.float64)
        #: Sum over the packing columns of used / total: the bin-packing fitness of a host
        #: before a task is added, kept up to date by `assign`.
        self.packed: FloatArray = (self.used[list(PACK_COLUMNS)] * self.pack_inverse).sum(axis=0)
        self.usable: BoolArray = self.healthy & self.schedulable
        #: Free resources summed over usable hosts (critical reservations are checked on it).
        self.cluster_free: FloatArray = np.clip(self.free[:, self.usable], 0, None).sum(axis=1)
        #: Rows changed by assignments, in order; cache entries remember how far they read.
        self.log: list[int] = []
        self._codes: dict[str, tuple[IntArray, dict[str, int]]] = {}
        self._job_hosts: dict[str, IntArray] | None = None
        self._job_index: dict[str, list[tuple[int, int]]] = {}
        #: Placements made before the per-job index was first needed.
        self._early: list[tuple[str, int]] = []
        self._job_zone: dict[str, FloatArray] = {}
        zone_codes, zone_values = self.attribute_codes(ZONE_ATTRIBUTE)
        self.zone: IntArray = zone_codes
        self.zone_count = len(zone_values)
        #: Zones that count for balance: those with at least one usable host. A zone with no
        #: usable host would otherwise block every zoneBalance job forever.
        present = np.zeros(self.zone_count, dtype=bool)
        if n:
            present[np.unique(zone_codes[self.usable])] = True
        self.balance_zones: BoolArray = present

    # -- attributes ------------------------------------------------------------------------

    def attribute_codes(self, name: str) -> tuple[IntArray, dict[str, int]]:
        """Host attribute `name` factorized to integer codes (computed once per iteration).

        Attribute names are matched case-insensitively; a host without it gets the code of "".
        """
        key = name.lower()
        cached = self._codes.get(key)
        if cached is None:
            values: dict[str, int] = {}
            codes = np.empty(self.size, dtype=np.int64)
            for i, host in enumerate(self.hosts):
                value = ""
                for attr, v in host.attributes.items():
                    if attr.lower() == key:
                        value = str(v)
                        break
                else:
                    if key == HOST_ID:
                        value = host.host_id
                codes[i] = values.setdefault(value, len(values))
            cached = (codes, values)
            self._codes[key] = cached
        return cached

    def attribute_equals(self, names: Sequence[str], value: str) -> BoolArray:
        """Hosts whose attribute (any of `names`) equals `value`."""
        out = np.zeros(self.size, dtype=bool)
        for name in names:
            codes, values = self.attribute_codes(name)
            code = values.get(value)
            if code is not None:
                out |= codes == code
        return out

    # -- per-job counts -------------------------------------------------------------------

    def job_hosts(self, job_id: str) -> IntArray:
        """Tasks of `job_id` per host, including this iteration's placements."""
        if self._job_hosts is None:
            self._job_hosts = {}
            for i, host in enumerate(self.hosts):
                for job, count in host.job_counts.items():
                    self._job_index.setdefault(job, []).append((i, count))
            for job, row in self._early:
                self._job_index.setdefault(job, []).append((row, 1))
            self._early = []
        counts = self._job_hosts.get(job_id)
        if counts is None:
            counts = np.zeros(self.size, dtype=np.int64)
            for i, c in self._job_index.get(job_id, ()):
                counts[i] += c
            self._job_hosts[job_id] = counts
        return counts

    def job_zones(self, job_id: str) -> FloatArray:
        """Tasks of `job_id` per zone code, including this iteration's placements."""
        counts = self._job_zone.get(job_id)
        if counts is None:
            counts = np.bincount(
                self.zone, weights=self.job_hosts(job_id), minlength=self.zone_count
            ).astype(np.float64)
            self._job_zone[job_id] = counts
        return counts

    # -- assignment -----------------------------------------------------------------------

    def assign(
        self,
        row: int,
        demand: FloatArray,
        pack_demand: FloatArray,
        job_id: str,
        exclusive: bool,
    ) -> None:
        """Record a placement on `row` so every later evaluation sees it."""
        self.used[:, row] += demand
        self.free[:, row] -= demand
        self.packed[row] += float(pack_demand @ self.pack_inverse[:, row])
        self.launching[row] += 1
        self.task_count[row] += 1
        if exclusive:
            self.held[row] = True
        if self.usable[row]:
            self.cluster_free -= demand
        if self._job_hosts is None:
            self._early.append((job_id, row))
        else:
            counts = self._job_hosts.get(job_id)
            if counts is not None:
                counts[row] += 1
            else:
                self._job_index.setdefault(job_id, []).append((row, 1))
        zones = self._job_zone.get(job_id)
        if zones is not None:
            zones[self.zone[row]] += 1
        self.log.append(row)
