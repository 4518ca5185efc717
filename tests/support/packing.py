"""Baseline packers for the scheduler's packing-quality test and benchmark.

Each places tasks of mixed shapes on hosts by a textbook heuristic of vector bin packing,
so the scheduler's outcome on the same input has something to be measured against:

- first-fit decreasing: tasks by decreasing size (dominant share of an average host),
  each on the first host in order where every resource fits;
- dot-product best fit (Panigrahy et al., "Heuristics for Vector Bin Packing", 2011; the
  alignment score of Tetris): each task on the host, among those it fits, whose free
  resources have the largest dot product with its demand, both as shares of the host's
  total; in the given order (the queue's) or by decreasing size.

Only resources are checked (no constraints, throttles or task caps): the cases they are
run on have none that bind.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from titus.master.scheduler import RESOURCES, HostState, TaskRequest

FloatArray = npt.NDArray[np.float64]
#: cpu and memory: the resources the dot product compares.
DOT_COLUMNS = [0, 1]


def _free(hosts: Sequence[HostState]) -> FloatArray:
    return np.array([[h.total.get(r, 0.0) - h.used.get(r, 0.0) for r in RESOURCES] for h in hosts])


def _decreasing(free: FloatArray, demands: FloatArray) -> npt.NDArray[np.intp]:
    mean = free.mean(axis=0)
    mean[mean == 0] = 1.0
    order: npt.NDArray[np.intp] = np.argsort(-(demands / mean).max(axis=1), kind="stable")
    return order


def first_fit_decreasing(hosts: Sequence[HostState], tasks: Sequence[TaskRequest]) -> int:
    """Tasks placed by first-fit decreasing."""
    free = _free(hosts)
    demands = np.array([t.demand() for t in tasks])
    placed = 0
    for i in _decreasing(free, demands):
        d = demands[i]
        fits = (free >= d - 1e-9).all(axis=1)
        row = int(fits.argmax())
        if fits[row]:
            free[row] -= d
            placed += 1
    return placed


def dot_product_best_fit(
    hosts: Sequence[HostState], tasks: Sequence[TaskRequest], decreasing: bool = False
) -> int:
    """Tasks placed by dot-product best fit, in the given order or by decreasing size."""
    free = _free(hosts)
    total = np.array([[h.total.get(r, 0.0) for r in RESOURCES] for h in hosts])
    inverse = np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 0.0)[:, DOT_COLUMNS]
    demands = np.array([t.demand() for t in tasks])
    order = _decreasing(free, demands) if decreasing else range(len(tasks))
    placed = 0
    for i in order:
        d = demands[i]
        fits = (free >= d - 1e-9).all(axis=1)
        if not fits.any():
            continue
        score = ((d[DOT_COLUMNS] * inverse) * (free[:, DOT_COLUMNS] * inverse)).sum(axis=1)
        row = int(np.where(fits, score, -np.inf).argmax())
        free[row] -= d
        placed += 1
    return placed


def packed_tasks(rng: random.Random, hosts: list[HostState], fill: float) -> list[TaskRequest]:
    """Tasks of mixed shapes cut out of each host's cpu and memory up to `fill` of both, then
    shuffled: demand is `fill` of the cluster in cpu and in memory, and a packing that places
    every task is known to exist (the one they were cut from).

    Shapes range from cpu-heavy (1 GiB per cpu) to memory-heavy (16 GiB per cpu), drawn
    around the host's leftover ratio so each host ends up full in both resources; a packer
    that strands memory on one host and cpu on another cannot place them all.
    """
    per_cpu_options = (1_024, 2_048, 4_096, 8_192, 16_384)
    tasks: list[tuple[float, float]] = []
    for h in hosts:
        cpu_left = fill * h.total["cpu"]
        mem_left = fill * h.total["memoryMB"]
        while cpu_left >= 0.5 and mem_left >= 512:
            sizes = [c for c in (0.5, 1, 2, 4, 8) if c <= cpu_left]
            c = rng.choice(sizes)
            target = mem_left / cpu_left * rng.choice((0.25, 0.5, 1, 2, 4))
            per_cpu = min(per_cpu_options, key=lambda p: abs(p - target))
            m = min(c * per_cpu, mem_left)
            if cpu_left - c < 0.5 or mem_left - m < 512:
                c, m = cpu_left, mem_left  # the rest of the host in one task
            tasks.append((c, m))
            cpu_left -= c
            mem_left -= m
    rng.shuffle(tasks)
    return [
        TaskRequest(
            f"p-{n}",
            f"pj-{n // 10}",
            cpu=c,
            memory_mb=m,
            disk_mb=1_000,
            network_mbps=50,
            enqueued_at=float(n),
        )
        for n, (c, m) in enumerate(tasks)
    ]
