"""The cluster as numpy vectors: one row per host, updated in place as tasks are assigned.

Plugins read these arrays for whole sets of hosts at once, which is what makes a placement
cost microseconds instead of a Python loop over thousands of hosts. Every assignment changes
one host's row and is appended to `log`, so cached per-task-shape results can be brought up
to date by re-evaluating only the hosts touched since (see `engine.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from operator import itemgetter

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
#: Slack for float sums (0.1 + 0.2 cpus must fit in 0.3 free).
EPSILON = 1e-9


_ALL_RESOURCES = itemgetter(*RESOURCES)
_ZEROS = (0.0,) * len(RESOURCES)


def _resource_matrix(rows: Sequence[Mapping[str, float]]) -> FloatArray:
    """(resource x host) matrix of per-host resource maps, absent resources as 0.

    Offers usually name every resource, so one C-level lookup per host does; only the hosts
    missing some resource go through per-key lookups. This runs at every iteration for every
    host, so it is a visible part of an iteration's cost.
    """
    values: list[tuple[float, ...]] = []
    append = values.append
    for row in rows:
        try:
            append(_ALL_RESOURCES(row))
        except KeyError:
            append(tuple(row.get(r, 0.0) for r in RESOURCES) if row else _ZEROS)
    flat = np.fromiter(chain.from_iterable(values), np.float64, len(values) * len(RESOURCES))
    return np.ascontiguousarray(flat.reshape(len(values), len(RESOURCES)).T)


class HostTable:
    """Vectors of host capacity, usage and attributes for one scheduling iteration."""

    def __init__(self, hosts: Sequence[HostState]) -> None:
        self.hosts = list(hosts)
        n = len(self.hosts)
        self.size = n
        self.ids = [h.host_id for h in self.hosts]
        # Column-major (resource x host): reducing over the 6 resources then runs along
        # contiguous rows, an order of magnitude faster than across a (host x resource) matrix.
        self.total: FloatArray = _resource_matrix([h.total for h in self.hosts])
        #: Used plus assigned this iteration.
        self.used: FloatArray = _resource_matrix([h.used for h in self.hosts])
        #: total - used; the resources filter compares tasks against it.
        self.free: FloatArray = self.total - self.used
        #: free + EPSILON, what the resources filter compares demand with, kept per row so
        #: an evaluation over all hosts does not add the slack to the whole matrix each time.
        self.slack: FloatArray = self.free + EPSILON
        self.healthy: BoolArray = np.fromiter((h.healthy for h in self.hosts), bool, n)
        self.schedulable: BoolArray = np.fromiter((h.schedulable for h in self.hosts), bool, n)
        self.launching: IntArray = np.fromiter((h.launching for h in self.hosts), np.int64, n)
        self.task_count: IntArray = np.fromiter((h.task_count for h in self.hosts), np.int64, n)
        self.held: BoolArray = np.fromiter(
            (h.exclusive_job is not None for h in self.hosts), bool, n
        )
        #: The most tasks and launches on any host, and whether any host is held: upper
        #: bounds kept as placements are recorded, so a rule can tell in O(1) that it cannot
        #: bind anywhere (see `Filter.capacity`).
        self.most_tasks = int(self.task_count.max()) if n else 0
        self.most_launching = int(self.launching.max()) if n else 0
        self.any_held = bool(self.held.any())
        pack_total = self.total[list(PACK_COLUMNS)]
        with np.errstate(divide="ignore"):
            #: 1/total for the packing columns, 0 where the host has none of the resource.
            self.pack_inverse: FloatArray = np.where(pack_total > 0, 1.0 / pack_total, 0.0)
        self.pack_count: FloatArray = np.maximum((pack_total > 0).sum(axis=0), 1).astype(np.float64)
        #: Sum over the packing columns of used / total: the bin-packing fitness of a host
        #: before a task is added, kept up to date by `assign`.
        self.packed: FloatArray = (self.used[list(PACK_COLUMNS)] * self.pack_inverse).sum(axis=0)
        #: Free cpu share minus free memory share of each host (`share_gap`), and 1 plus
        #: its magnitude: what the balance scorer compares a placement with, kept up to
        #: date by `assign` (recomputed from `free`, so always the bits a fresh
        #: computation would give).
        self.gap: FloatArray = share_gap(self.free[0], self.free[1], self.pack_inverse)
        self.gap_base: FloatArray = 1.0 + np.abs(self.gap)
        #: `pack_inverse` of cpu and memory as lists, for `assign`'s scalar arithmetic.
        self._inverse_cpu: list[float] = self.pack_inverse[0].tolist()
        self._inverse_memory: list[float] = self.pack_inverse[1].tolist()
        self._gap_steps: dict[bytes, FloatArray] = {}
        self.usable: BoolArray = self.healthy & self.schedulable
        self._usable: list[bool] = self.usable.tolist()
        #: Free resources summed over usable hosts (critical reservations are checked on it).
        self.cluster_free: FloatArray = np.clip(self.free[:, self.usable], 0, None).sum(axis=1)
        #: Rows changed by assignments, in order; cache entries remember how far they read.
        self.log: list[int] = []
        #: Per row, the position in `log` of its last change (-1: none), so the rows changed
        #: since some position are found with one vector comparison, however long the log.
        self.stamp: IntArray = np.full(n, -1, dtype=np.int64)
        self._codes: dict[str, tuple[IntArray, dict[str, int]]] = {}
        self._pack_shares: dict[bytes, FloatArray] = {}
        self._job_hosts: dict[str, IntArray] | None = None
        self._job_index: dict[str, list[tuple[int, int]]] = {}
        #: Placements made before the per-job index was first needed.
        self._early: list[tuple[str, int, int]] = []
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
            # Hosts share a few attribute layouts; find the matching spelling once per layout
            # (the first name equal to `key` ignoring case, as a per-host scan would).
            spelling: dict[tuple[str, ...], str | None] = {}
            for i, host in enumerate(self.hosts):
                attrs = host.attributes
                layout = tuple(attrs)
                if layout in spelling:
                    attr = spelling[layout]
                else:
                    attr = next((a for a in layout if a.lower() == key), None)
                    spelling[layout] = attr
                if attr is not None:
                    value = str(attrs[attr])
                elif key == HOST_ID:
                    value = host.host_id
                else:
                    value = ""
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
            for job, row, count in self._early:
                self._job_index.setdefault(job, []).append((row, count))
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
        count: int = 1,
    ) -> None:
        """Record `count` placements of one task shape on `row` so every later evaluation sees
        them. Several copies give bit for bit the state that as many single placements give
        (sums are accumulated one copy at a time), so batched and one-by-one placement can
        never disagree on a host at the edge of fitting."""
        added = float(self.pack_share(pack_demand)[row])
        # Views of the host's column, updated in place (one row: Python floats where the
        # arithmetic is scalar, which is the same IEEE arithmetic as numpy's).
        used = self.used[:, row]
        free = self.free[:, row]
        if count == 1:
            used += demand
            free -= demand
            self.packed[row] += added
            if self._usable[row]:
                self.cluster_free -= demand
        else:
            used[:] = repeated(np.add, used, demand, count)
            free[:] = repeated(np.subtract, free, demand, count)
            packed = float(self.packed[row])
            for _ in range(count):
                packed += added
            self.packed[row] = packed
            if self._usable[row]:
                self.cluster_free = repeated(np.subtract, self.cluster_free, demand, count)
        np.add(free, EPSILON, out=self.slack[:, row])
        cpu, memory = free[:2].tolist()
        gap = cpu * self._inverse_cpu[row] - memory * self._inverse_memory[row]
        self.gap[row] = gap
        self.gap_base[row] = 1.0 + abs(gap)
        launching = int(self.launching[row]) + count
        tasks = int(self.task_count[row]) + count
        self.launching[row] = launching
        self.task_count[row] = tasks
        if launching > self.most_launching:
            self.most_launching = launching
        if tasks > self.most_tasks:
            self.most_tasks = tasks
        if exclusive:
            self.held[row] = True
            self.any_held = True
        if self._job_hosts is None:
            self._early.append((job_id, row, count))
        else:
            counts = self._job_hosts.get(job_id)
            if counts is not None:
                counts[row] += count
            else:
                self._job_index.setdefault(job_id, []).append((row, count))
        zones = self._job_zone.get(job_id)
        if zones is not None:
            zones[self.zone[row]] += count
        self.log.extend([row] * count)
        self.stamp[row] = len(self.log) - 1

    def assign_many(
        self,
        rows: Sequence[int],
        counts: Sequence[int],
        demand: FloatArray,
        pack_demand: FloatArray,
        job_id: str,
        exclusive: bool,
    ) -> None:
        """`assign` of `counts[i]` copies on `rows[i]` (distinct rows), in that order, with
        the state that many single placements would leave, in a few vector operations."""
        if len(rows) <= 5:
            # Below a few rows the vector operations cost more than they save.
            for row, count in zip(rows, counts, strict=True):
                self.assign(row, demand, pack_demand, job_id, exclusive, count)
            return
        idx = np.array(rows, dtype=np.intp)
        reps = np.array(counts, dtype=np.int64)
        top = max(counts)
        added = self.pack_share(pack_demand)[idx]
        if top == 1:
            self.used[:, idx] += demand[:, None]
            self.free[:, idx] -= demand[:, None]
            self.packed[idx] += added
        else:
            # used, free and packed in one accumulation; adding -demand is subtracting it.
            width = len(RESOURCES)
            state = np.empty((2 * width + 1, len(rows)), dtype=np.float64)
            state[:width] = self.used.take(idx, axis=1)
            state[width : 2 * width] = self.free.take(idx, axis=1)
            state[2 * width] = self.packed[idx]
            step = np.empty_like(state)
            step[:width] = demand[:, None]
            step[width : 2 * width] = -demand[:, None]
            step[2 * width] = added
            state = _repeated_columns(np.add, state, step, reps, top)
            self.used[:, idx] = state[:width]
            self.free[:, idx] = state[width : 2 * width]
            self.packed[idx] = state[2 * width]
        free = self.free.take(idx, axis=1)
        self.slack[:, idx] = free + EPSILON
        gap = share_gap(free[0], free[1], self.pack_inverse.take(idx, axis=1))
        self.gap[idx] = gap
        self.gap_base[idx] = 1.0 + np.abs(gap)
        usable = sum(c for r, c in zip(rows, counts, strict=True) if self._usable[r])
        if usable:
            self.cluster_free = repeated(np.subtract, self.cluster_free, demand, usable)
        self.launching[idx] += reps
        self.task_count[idx] += reps
        self.most_launching = max(self.most_launching, int(self.launching[idx].max()))
        self.most_tasks = max(self.most_tasks, int(self.task_count[idx].max()))
        if exclusive:
            self.held[idx] = True
            self.any_held = True
        if self._job_hosts is None:
            self._early.extend(
                (job_id, row, count) for row, count in zip(rows, counts, strict=True)
            )
        else:
            job_counts = self._job_hosts.get(job_id)
            if job_counts is not None:
                job_counts[idx] += reps
            else:
                index = self._job_index.setdefault(job_id, [])
                index.extend(zip(rows, counts, strict=True))
        zones = self._job_zone.get(job_id)
        if zones is not None:
            zones += np.bincount(self.zone[idx], weights=reps, minlength=zones.shape[0])
        log = self.log
        for row, count in zip(rows, counts, strict=True):
            log.extend([row] * count)
            self.stamp[row] = len(log) - 1

    def free_after(
        self, rows: IntArray, demand: FloatArray, copies: int, columns: slice = ALL
    ) -> FloatArray:
        """Free resources of `rows` after 0, 1, ..., `copies` - 1 placements of `demand` on
        each, shape (copies, resource, len(rows)): subtracted one copy at a time, as
        `assign` does, so a trajectory computed from it has the bits a score computed
        after those placements has. `columns`: only those resources (each is replayed on
        its own, so the bits are the same)."""
        free = self.free[columns]
        acc = np.empty((copies, free.shape[0], len(rows)), dtype=np.float64)
        acc[0] = free.take(rows, axis=1)
        acc[1:] = demand[columns, None]
        np.subtract.accumulate(acc, axis=0, out=acc)
        return acc

    def gap_step(self, demand: FloatArray) -> FloatArray:
        """How much a task of `demand` moves each host's `gap` (`share_gap` of the
        demand), once per distinct demand, like `pack_share`."""
        key = demand[:2].tobytes()
        step = self._gap_steps.get(key)
        if step is None:
            step = demand[0] * self.pack_inverse[0] - demand[1] * self.pack_inverse[1]
            self._gap_steps[key] = step
        return step

    def packed_after(self, rows: IntArray, added: FloatArray, copies: int) -> FloatArray:
        """`packed` of `rows` after 0, 1, ..., `copies` - 1 placements adding `added` (one
        value per row) each, shape (copies, len(rows)), accumulated as `assign` does."""
        acc = np.empty((copies, len(rows)), dtype=np.float64)
        acc[0] = self.packed[rows]
        acc[1:] = added
        np.add.accumulate(acc, axis=0, out=acc)
        return acc

    def pack_share(self, pack_demand: FloatArray) -> FloatArray:
        """demand / total summed over the packing columns, for every host: what the task
        would add to each host's bin-packing sum. Totals do not change within an iteration,
        so it is computed once per distinct demand and shared by every task shape, cache
        refresh, re-score and recorded placement that asks for it (one vector, so a single
        placement and a batch of them add bit for bit the same amounts)."""
        key = pack_demand.tobytes()
        shares = self._pack_shares.get(key)
        if shares is None:
            shares = pack_demand @ self.pack_inverse
            self._pack_shares[key] = shares
        return shares


def columns(matrix: FloatArray, idx: Index) -> FloatArray:
    """`matrix[:, idx]` (resource x host), gathered with `take` for an index array: fancy
    indexing on the second axis returns a strided copy that reductions over resources then
    walk an order of magnitude slower (and the gather itself is slower)."""
    if isinstance(idx, slice):
        return matrix[:, idx]
    result: FloatArray = matrix.take(idx, axis=1)
    return result


def share_gap(cpu: FloatArray, memory: FloatArray, inverse: FloatArray) -> FloatArray:
    """cpu share minus memory share (amounts times 1/total, `inverse` as
    `HostTable.pack_inverse`): one expression for the table's `gap` and for trajectories,
    so both give the same bits."""
    result: FloatArray = cpu * inverse[0] - memory * inverse[1]
    return result


def _repeated_columns(
    op: np.ufunc, start: FloatArray, step: FloatArray, reps: IntArray, top: int
) -> FloatArray:
    """`repeated` per column: column j of `start` (last axis) with `op(., step)` applied
    `reps[j]` times, one application after the other."""
    acc = np.empty((top + 1, *start.shape), dtype=np.float64)
    acc[0] = start
    acc[1:] = step
    op.accumulate(acc, axis=0, out=acc)
    cols = np.arange(start.shape[-1])
    if start.ndim == 1:
        flat: FloatArray = acc[reps, cols]
        return flat
    picked: FloatArray = acc[reps, :, cols].T
    return picked


def repeated(op: np.ufunc, start: FloatArray, step: FloatArray, count: int) -> FloatArray:
    """`start` with `op(., step)` applied `count` times, one application after the other
    (`accumulate` is sequential), so the result equals `count` in-place updates exactly."""
    acc = np.empty((count + 1, start.shape[0]), dtype=np.float64)
    acc[0] = start
    acc[1:] = step
    result: FloatArray = op.accumulate(acc, axis=0)[-1]
    return result
