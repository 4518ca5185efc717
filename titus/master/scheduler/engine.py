"""The scheduler: tiered queue -> filters -> scorers -> assignment, one iteration per call.

Speed comes from three things. Plugins work on numpy vectors of all hosts, never host by
host. Tasks with the same shape (resources, tier, constraints, and the job when a constraint
depends on it) share one cached evaluation: it is computed over all hosts the first time,
and afterwards only the host rows changed by assignments since (`HostTable.log`) are
re-evaluated, skipping the rules that say they cannot refuse any host as the table stands
(`Filter.binds`); a single changed host is asked through the plugins' one-host answers
(`Filter.accepts_row`, `Scorer.score_row`, Python scalars). And a run of identical tasks is
placed hosts at a time rather than a task at a time: the hosts are taken in the order
single placements would choose them (ranked with one partition, `_ranked`), the filters'
`capacity` bounds say how many copies each takes before some rule refuses, and when every
changing scorer is `monotone` (bin packing) a chosen host stays the best choice for each of
those copies, so it gets them all at once. When a placement may lower the host's score
(balance), the scorers state their `trajectory` instead: the scores of each host for its
next copies, merged in the order single placements would take them (`_merge`). The cached
answer for such a host is then known (refused, or re-scored by the scorers alone) without
running every filter again. A batched step costs about as much as several single
placements, so the last few copies of a run (fewer than `_BATCH_MIN`) are placed one at a
time.

Most of an iteration's cost is the fixed cost of numpy calls (about a microsecond each,
whatever the vector length), not arithmetic over hosts: what pays is fewer calls per run,
no fresh vectors over all hosts (a work vector is reused), and gathers with `take`.

The batched path gives exactly the placements and refusals of placing the copies one by one
through all plugins (tests/unit/test_scheduler_batching.py checks it on random clusters): it
only skips work whose outcome the plugins' own bounds already state. Runs a rule without a
bound applies to, and runs whose rules depend on other hosts (zone balance), are placed one
task at a time through the full pipeline.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np
import numpy.typing as npt

from titus.master.scheduler.capacity import RESERVATION_RULE, CapacityLedger
from titus.master.scheduler.context import TaskContext, make_context
from titus.master.scheduler.filters import Filter, default_filters
from titus.master.scheduler.hosts import ALL, BoolArray, FloatArray, HostTable, Index, IntArray
from titus.master.scheduler.model import (
    RESOURCES,
    Assignment,
    CapacityGroup,
    HostState,
    PlacementSummary,
    SchedulerConfig,
    ScheduleResult,
    TaskRequest,
)
from titus.master.scheduler.queue import TieredQueue
from titus.master.scheduler.scorers import Scorer, default_scorers

_NEG_INF = float("-inf")
#: Above this many changed rows a refresh re-evaluates all hosts (fancy indexing loses).
_FULL_REFRESH_FRACTION = 0.25
#: Most hosts looked at in one step of a run (see `_place_run`).
_REACH = 32
#: Fewer copies left than this are placed one at a time: a batched step (ranking hosts,
#: bounds, trajectories) costs about as much as several single placements, each of which
#: only re-evaluates the host chosen before.
_BATCH_MIN = 6
#: Up to this many further hosts `_pick` ranks with one `argmax` each; beyond, `_ranked`
#: ranks them with one partition (a few passes over all hosts whatever the count).
_PICK_LOOP = 6


@dataclass
class _Shape:
    """The cached evaluation of one task shape over all hosts."""

    ctx: TaskContext
    static_filters: list[Filter]
    host_filters: list[Filter]
    volatile_filters: list[Filter]
    host_scorers: list[tuple[float, Scorer]]
    volatile_scorers: list[tuple[float, Scorer]]
    static_ok: BoolArray
    #: Weighted sum of the parts of the score that do not change within an iteration.
    static_score: FloatArray
    #: Score where every cached (non-volatile) filter accepts, -inf elsewhere.
    eff: FloatArray
    #: Work vector over all hosts, shared by the shapes of one call (see `_evaluate`).
    work: FloatArray
    pos: int
    last_row: int = -1
    last_value: float = _NEG_INF
    summary: PlacementSummary | None = None
    summary_pos: int = -1
    plugins: list[Filter] = field(default_factory=list)
    #: Every "host"-scoped scorer is monotone: a chosen host stays chosen for the next copy
    #: until a filter refuses it (see `Scorer.monotone`).
    monotone: bool = False
    #: Every "host"-scoped scorer states its trajectory (see `Scorer.trajectory`): runs are
    #: placed hosts at a time by merging them (`_merge`) when not monotone.
    projectable: bool = False
    #: Work vector for `_with_volatile`.
    scratch: FloatArray | None = None
    #: Filters that count placements themselves (`Filter.record`).
    recorders: list[Filter] = field(default_factory=list)


class Scheduler:
    """Places pending tasks on hosts; see the module docstring for how it stays fast.

    `filters` and `scorers` replace the default pipeline when given (tests, custom rules).
    """

    def __init__(
        self,
        config: SchedulerConfig | None = None,
        filters: Sequence[Filter] | None = None,
        scorers: Sequence[Scorer] | None = None,
    ) -> None:
        self.config = config or SchedulerConfig()
        self.filters = list(filters) if filters is not None else default_filters(self.config)
        self.scorers = list(scorers) if scorers is not None else default_scorers(self.config)

    def schedule(
        self,
        tasks: Sequence[TaskRequest],
        hosts: Sequence[HostState],
        groups: Mapping[str, CapacityGroup] | None = None,
        running: Mapping[str, Mapping[str, float]] | None = None,
        limit: int | None = None,
    ) -> ScheduleResult:
        """One scheduling iteration.

        `limit` attempts fewer tasks than `tasks_per_iteration` (the rest come back as
        `deferred`, in queue order): a caller may place the head of the queue first and
        launch it while it places the rest.

        `running` is each capacity group's current usage (resource name -> amount, keys as in
        `HostState.total`); it ranks Flex groups by share and tells how much of each Critical
        reservation is still unused. Host state is not modified; placements of this
        iteration are seen by every later task of the same call.

        The cyclic garbage collector is paused meanwhile (as the leader does for its start-up
        load): an iteration allocates tens of thousands of small objects that hold no cycles
        (assignments, index arrays), and collections they trigger would walk the caller's
        whole heap to find no garbage.
        """
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._schedule(tasks, hosts, groups, running, limit)
        finally:
            if enabled:
                gc.enable()

    def _schedule(
        self,
        tasks: Sequence[TaskRequest],
        hosts: Sequence[HostState],
        groups: Mapping[str, CapacityGroup] | None,
        running: Mapping[str, Mapping[str, float]] | None,
        limit: int | None = None,
    ) -> ScheduleResult:
        table = HostTable(hosts)
        ledger = CapacityLedger(groups, running)
        queue = TieredQueue(tasks, ledger)
        result = ScheduleResult()
        shapes: dict[tuple[object, ...], _Shape] = {}
        work = np.empty(table.size, dtype=np.float64)
        config = self.config
        budget = max(config.tasks_per_iteration, 0)
        if limit is not None:
            budget = min(budget, max(limit, 0))
        while budget > 0:
            item = queue.pop_run(min(budget, max(config.queue_run, 1)))
            if item is None:
                break
            group, run = item
            budget -= len(run)
            ctx = make_context(run[0], group.name, group.tier)
            shape = shapes.get(ctx.shape)
            if shape is None:
                shape = self._build(table, ctx, work)
                shapes[ctx.shape] = shape
            else:
                shape.ctx = ctx
            self._place_run(table, ledger, shape, group.name, run, result)
        result.deferred = [t.task_id for t in queue.remaining()]
        return result

    def _place_run(
        self,
        table: HostTable,
        ledger: CapacityLedger,
        shape: _Shape,
        group: str,
        run: list[TaskRequest],
        result: ScheduleResult,
    ) -> None:
        """Place a run of identical tasks, with the outcome of popping them one by one.

        Each step takes the next hosts in the order single placements would choose them and
        gives each as many of the next copies as it would get one by one: all it takes while
        every changing scorer is monotone (it stays the best choice until a filter refuses),
        else one; fewer if the Critical reservations stop admitting them.
        """
        ctx = shape.ctx
        demand = ctx.demand
        job_id = run[0].job_id
        steady = not (shape.volatile_filters or shape.volatile_scorers)
        monotone = shape.monotone and steady
        projectable = shape.projectable and steady
        assignments = result.assignments
        ids = table.ids
        eff = shape.eff
        done = 0
        total = len(run)
        # Copies the Critical reservations are known to admit, counted ahead as if every
        # copy came out of usable capacity (the worst case), and recounted from the actual
        # state when used up. The group is charged for the copies placed before each count.
        admitted = 0
        charged = 0
        # Hosts given their copies: their cached answer is known (refused once a bound is
        # used up, else re-scored right after), so recording the placements can wait and be
        # done for several hosts at once. Anything that reads the table beyond those rows
        # flushes them first.
        full_rows: list[int] = []
        full_counts: list[int] = []
        while done < total:
            if done >= admitted:
                self._flush(table, shape, job_id, full_rows, full_counts)
                ledger.charge(group, demand, done - charged)
                charged = done
                admitted = done + ledger.admitted(
                    group, demand, table.cluster_free, total - done, True
                )
                if admitted <= done:
                    short = ledger.admits(group, demand, table.cluster_free)
                    # Nothing frees capacity within the run: its other tasks are refused alike.
                    summary = _reservation_summary(table.size, short or RESOURCES[0])
                    for rest in run[done:]:
                        result.unplaced[rest.task_id] = summary
                    break
            want = min(total, admitted) - done
            batch = want >= _BATCH_MIN
            if batch and projectable and not monotone:
                merged = self._merge(table, shape, want)
                if merged is not None:
                    order, used, rescore = merged
                    host_ids = [ids[row] for row in order]
                    assignments.extend(
                        map(
                            Assignment, [t.task_id for t in run[done : done + len(order)]], host_ids
                        )
                    )
                    done += len(order)
                    for row, count in used:
                        full_rows.append(row)
                        full_counts.append(count)
                    # A merge's trajectories read the table: what it placed is recorded now.
                    self._flush(table, shape, job_id, full_rows, full_counts)
                    for row in rescore:
                        eff[row] = self._rescore(table, shape, row)
                    continue
                row = self._select(table, shape)
                rows = [row] if row >= 0 else []
                bounds = None
            elif batch and monotone:
                # As many hosts as copies are left (each takes at least one), up to a cap.
                rows, saved = self._pick(table, shape, min(want, _REACH))
                # One more than wanted, to learn whether a host refuses after its copies.
                bounds = self._bounds(table, shape, rows, want + 1) if rows else None
                if bounds is None:
                    eff[rows] = saved
                    rows = rows[:1]
            else:
                row = self._select(table, shape)
                rows = [row] if row >= 0 else []
                bounds = None
            if not rows:
                self._flush(table, shape, job_id, full_rows, full_counts)
                summary = self._summary(table, shape)
                for rest in run[done:]:
                    result.unplaced[rest.task_id] = summary
                break
            if bounds is None:
                # One copy on the chosen host; the next selection re-evaluates the host
                # through the full pipeline. Scores that a placement may lower (spreading)
                # or that depend on other hosts (zone balance) are placed this way, as are
                # rules without a bound.
                row = rows[0]
                self._flush(table, shape, job_id, full_rows, full_counts)
                table.assign(row, demand, ctx.pack_demand, job_id, ctx.exclusive)
                for f in shape.recorders:
                    f.record(table, ctx, [row], [1])
                assignments.append(Assignment(run[done].task_id, ids[row]))
                done += 1
                continue
            left = want
            for i, (row, bound) in enumerate(zip(rows, bounds, strict=True)):
                if not left:
                    eff[rows[i:]] = saved[i:]
                    break
                count = min(bound, left)
                left -= count
                full_rows.append(row)
                full_counts.append(count)
                if bound > count:
                    # The last host still accepts (the bounds say so): once its placements
                    # are recorded only its score needs recomputing.
                    self._flush(table, shape, job_id, full_rows, full_counts)
                    eff[row] = self._rescore(table, shape, row)
                host = ids[row]
                if count == 1:
                    assignments.append(Assignment(run[done].task_id, host))
                else:
                    assignments.extend(
                        map(Assignment, [t.task_id for t in run[done : done + count]], repeat(host))
                    )
                done += count
        self._flush(table, shape, job_id, full_rows, full_counts)
        ledger.charge(group, demand, done - charged)

    def _pick(self, table: HostTable, shape: _Shape, count: int) -> tuple[list[int], FloatArray]:
        """Up to `count` hosts in the order single placements would choose them if each
        chosen host then refused, and their cached answers. Those are set to refused
        meanwhile; the caller restores the answers of hosts it does not use up."""
        first = self._select(table, shape)
        if first < 0:
            return [], np.empty(0)
        eff = shape.eff
        rows = [first]
        saved = [float(eff[first])]
        eff[first] = _NEG_INF
        threshold = self.config.good_enough_score
        if count - 1 > _PICK_LOOP:
            ranked = _ranked(eff, count - 1, threshold)
            if ranked is not None:
                rows.extend(ranked.tolist())
                saved.extend(eff[ranked].tolist())
                eff[ranked] = _NEG_INF
                return rows, np.array(saved)
        for _ in range(count - 1):
            row = int(eff.argmax())
            best = float(eff[row])
            if best == _NEG_INF:
                break
            if best >= threshold:
                row = int((eff >= threshold).argmax())
                best = float(eff[row])
            rows.append(row)
            saved.append(best)
            eff[row] = _NEG_INF
        return rows, np.array(saved)

    def _merge(
        self, table: HostTable, shape: _Shape, want: int
    ) -> tuple[list[int], list[tuple[int, int]], list[int]] | None:
        """Up to `want` copies of the shape's task placed as single placements would place
        them when a placement may lower the chosen host's score: the hosts next in line
        (`_pick`), how many copies each accepts (`_bounds`), and each one's scores for its
        next copies (the scorers' trajectories) are merged, the best score (then the lowest
        row) first, as `_select` chooses, until the best host left outside them would be
        chosen instead. Returns the rows in placement order, (row, copies) per host used,
        and the used hosts that still accept but whose next score is not known (to be
        re-scored once recorded); the cached answers of the hosts it looked at are set.
        None, with nothing changed, when the trajectories cannot decide (a good-enough
        score is reached, a scorer states none, a bound is missing): the caller then places
        one copy through the full pipeline."""
        eff = shape.eff
        reach = min(want, _REACH)
        # One host more than the merge may use: the best of the others, which stops it.
        rows, saved = self._pick(table, shape, reach + 1)
        if not rows:
            return None
        barrier_value, barrier_row = _NEG_INF, -1
        if len(rows) > reach:
            barrier_row = rows.pop()
            barrier_value = float(saved[-1])
            eff[barrier_row] = barrier_value
            saved = saved[:-1]
        threshold = self.config.good_enough_score
        bounds = self._bounds(table, shape, rows, want + 1) if barrier_value < threshold else None
        if bounds is None:
            eff[rows] = saved
            return None
        copies = min(max(bounds), want)
        idx = np.array(rows, dtype=np.intp)
        scores = np.repeat(shape.static_score[idx][None, :], copies, axis=0)
        ctx = shape.ctx
        for weight, scorer in shape.host_scorers:
            part = scorer.trajectory(table, ctx, idx, copies)
            if part is None:
                eff[rows] = saved
                return None
            scores += part * weight
        # The first scores are the cached answers that chose these hosts; anything else
        # means a trajectory does not replay its score, and the full pipeline decides.
        if scores[0].tolist() != saved.tolist() or float(scores.max()) >= threshold:
            eff[rows] = saved
            return None
        per_host = scores.T.tolist()
        heap = [(-per_host[i][0], row, i) for i, row in enumerate(rows)]
        heapq.heapify(heap)
        counts = [0] * len(rows)
        order: list[int] = []
        while heap and len(order) < want:
            neg, row, i = heap[0]
            if -neg < barrier_value or (-neg == barrier_value and barrier_row < row):
                break
            order.append(row)
            placed = counts[i] = counts[i] + 1
            if placed < bounds[i] and placed < copies:
                heapq.heapreplace(heap, (-per_host[i][placed], row, i))
            else:
                heapq.heappop(heap)
        if not order:
            eff[rows] = saved
            return None
        used: list[tuple[int, int]] = []
        rescore: list[int] = []
        for i, row in enumerate(rows):
            placed = counts[i]
            if not placed:
                eff[row] = saved[i]
                continue
            used.append((row, placed))
            if placed < bounds[i]:
                if placed < copies:
                    eff[row] = per_host[i][placed]
                else:
                    rescore.append(row)
            # else: refused from now on (its bound), as `_pick` left it
        return order, used, rescore

    def _bounds(
        self, table: HostTable, shape: _Shape, rows: list[int], limit: int
    ) -> list[int] | None:
        """Copies of the shape's task each of `rows` takes, one after another, before a
        filter refuses (at most `limit`); None when a changing filter states no bound.
        Static filters cannot change their answer within an iteration, so only
        "host"-scoped ones are asked. A bound of 0 disagrees with the cached answer that
        chose the host; it is treated as no bound so the full pipeline decides."""
        ctx = shape.ctx
        idx = np.array(rows, dtype=np.intp)
        bound: IntArray | None = None
        uniform = limit
        for f in shape.host_filters:
            stated = f.capacity(table, ctx, idx, limit)
            if stated is None:
                return None
            if isinstance(stated, int):
                uniform = min(uniform, stated)
            else:
                bound = stated if bound is None else np.minimum(bound, stated)
        result = [uniform] * len(rows) if bound is None else np.minimum(bound, uniform).tolist()
        if min(result) < 1:
            return None
        return result

    def _flush(
        self, table: HostTable, shape: _Shape, job_id: str, rows: list[int], counts: list[int]
    ) -> None:
        """Record the deferred placements on used-up hosts. Their cached answers are already
        set, so the shape's cache stays current if it was before."""
        if not rows:
            return
        current = shape.pos == len(table.log)
        ctx = shape.ctx
        table.assign_many(rows, counts, ctx.demand, ctx.pack_demand, job_id, ctx.exclusive)
        for f in shape.recorders:
            f.record(table, ctx, rows, counts)
        if current:
            shape.pos = len(table.log)
        rows.clear()
        counts.clear()

    # -- evaluation -----------------------------------------------------------------------

    def _build(self, table: HostTable, ctx: TaskContext, work: FloatArray) -> _Shape:
        config = self.config
        plugins = [f for f in self.filters if f.applies(ctx)]
        scorers = [s for s in self.scorers if s.applies(ctx)]
        fitness = [s for s in scorers if s.kind == "fitness"]
        soft = [s for s in scorers if s.kind == "soft"]
        resource = [s for s in scorers if s.kind == "resource"]
        fitness_total = sum(s.weight for s in fitness)
        soft_total = sum(s.weight for s in soft)
        resource_total = sum(s.weight for s in resource)
        weighted: list[tuple[float, Scorer]] = [
            *((config.fitness_weight * s.weight / fitness_total, s) for s in fitness),
            *((config.soft_weight * s.weight / soft_total, s) for s in soft),
            *((config.resource_weight * s.weight / resource_total, s) for s in resource),
        ]
        static_score = np.full(
            table.size,
            (0.0 if resource else config.resource_weight) + (0.0 if soft else config.soft_weight),
            dtype=np.float64,
        )
        for weight, scorer in weighted:
            if scorer.scope == "static":
                static_score += weight * scorer.score(table, ctx)
        static_ok = np.ones(table.size, dtype=bool)
        for f in plugins:
            if f.scope == "static":
                static_ok &= f.accept(table, ctx)
        shape = _Shape(
            ctx=ctx,
            static_filters=[f for f in plugins if f.scope == "static"],
            host_filters=[f for f in plugins if f.scope == "host"],
            volatile_filters=[f for f in plugins if f.scope == "volatile"],
            host_scorers=[(w, s) for w, s in weighted if s.scope == "host"],
            volatile_scorers=[(w, s) for w, s in weighted if s.scope == "volatile"],
            static_ok=static_ok,
            static_score=static_score,
            eff=np.empty(table.size, dtype=np.float64),
            work=work,
            pos=len(table.log),
            plugins=plugins,
            recorders=[f for f in plugins if f.records],
        )
        shape.monotone = all(s.monotone for _, s in shape.host_scorers)
        shape.projectable = all(
            type(s).trajectory is not Scorer.trajectory for _, s in shape.host_scorers
        )
        self._evaluate(table, shape, ALL)
        return shape

    def _evaluate(self, table: HostTable, shape: _Shape, idx: Index) -> None:
        """Recompute the cached score of rows `idx` from the host-scoped plugins."""
        ctx = shape.ctx
        if isinstance(idx, slice) and idx.stop is not None:
            self._evaluate_row(table, shape, idx)
            return
        # Updated in place: over all hosts, temporaries cost as much as the work (a fresh
        # vector of 5,000 floats costs more than the multiplication written into it).
        whole = isinstance(idx, slice)
        ok = shape.static_ok.copy() if whole else shape.static_ok[idx]
        for f in shape.host_filters:
            if f.binds(table, ctx):
                ok &= f.accept(table, ctx, idx)
        eff = shape.eff
        score = eff if whole else shape.static_score[idx]
        if whole:
            np.copyto(eff, shape.static_score)
        part = shape.work[: score.shape[0]]
        for weight, scorer in shape.host_scorers:
            np.multiply(scorer.score(table, ctx, idx), weight, out=part)
            score += part
        np.logical_not(ok, out=ok)
        np.putmask(score, ok, _NEG_INF)
        if not whole:
            eff[idx] = score

    def _evaluate_row(self, table: HostTable, shape: _Shape, idx: slice) -> None:
        """`_evaluate` for one row (a one-row slice: views, no fancy indexing), stopping at
        the first refusal. This is the common case: a run's previous pick."""
        row = idx.start
        ctx = shape.ctx
        eff = shape.eff
        if not shape.static_ok[row]:
            eff[row] = _NEG_INF
            return
        for f in shape.host_filters:
            if f.binds(table, ctx) and not f.accepts_row(table, ctx, row):
                eff[row] = _NEG_INF
                return
        eff[row] = self._rescore(table, shape, row)

    def _rescore(self, table: HostTable, shape: _Shape, row: int) -> float:
        """The cached score of one accepted row (same arithmetic as `_evaluate`)."""
        ctx = shape.ctx
        score = float(shape.static_score[row])
        for weight, scorer in shape.host_scorers:
            score += weight * scorer.score_row(table, ctx, row)
        return score

    def _select(self, table: HostTable, shape: _Shape) -> int:
        """The chosen row for the shape's next task, or -1 when no host passes."""
        log = table.log
        threshold = self.config.good_enough_score
        volatile = bool(shape.volatile_filters or shape.volatile_scorers)
        only_last = False
        if shape.pos < len(log):
            single = -1
            if len(log) - shape.pos <= 8:
                rows = log[shape.pos :]
                last = shape.last_row
                only_last = all(r == last for r in rows)
                distinct = set(rows)
                if len(distinct) == 1:
                    single = rows[0]
                changed = np.fromiter(distinct, np.intp) if single < 0 else np.empty(0, np.intp)
            else:
                changed = np.flatnonzero(table.stamp >= shape.pos)
                if len(changed) == 1:
                    single = int(changed[0])
            shape.pos = len(log)
            if single >= 0:
                self._evaluate_row(table, shape, slice(single, single + 1))
            elif len(changed) > table.size * _FULL_REFRESH_FRACTION:
                self._evaluate(table, shape, ALL)
            else:
                self._evaluate(table, shape, changed)
        if volatile:
            final = self._with_volatile(table, shape)
        else:
            final = shape.eff
            if only_last:
                # Only the row picked last time changed: it stays the pick if it did not get
                # worse, or if it still clears the good-enough bar it cleared before.
                value = float(final[shape.last_row])
                if value > _NEG_INF and (
                    value >= shape.last_value
                    or (threshold <= value and threshold <= shape.last_value)
                ):
                    shape.last_value = value
                    return shape.last_row
        row = int(final.argmax())
        best = float(final[row])
        if best == _NEG_INF:
            shape.last_row = -1
            return -1
        if best >= threshold:
            row = int((final >= threshold).argmax())
            best = float(final[row])
        shape.last_row = row
        shape.last_value = best
        return row

    def _with_volatile(self, table: HostTable, shape: _Shape) -> FloatArray:
        """The cached answer with the volatile plugins applied, recomputed at every
        placement. Written into one scratch vector per shape: this runs once per task of
        such shapes, and fresh temporaries over all hosts each time cost as much as the
        arithmetic."""
        ctx = shape.ctx
        final = shape.scratch
        if final is None:
            final = shape.scratch = np.empty_like(shape.eff)
        np.copyto(final, shape.eff)
        part = shape.work
        for weight, scorer in shape.volatile_scorers:
            np.multiply(scorer.score(table, ctx), weight, out=part)
            final += part
        for f in shape.volatile_filters:
            np.putmask(final, ~f.accept(table, ctx), _NEG_INF)
        return final

    # -- why pending ----------------------------------------------------------------------

    def _summary(self, table: HostTable, shape: _Shape) -> PlacementSummary:
        """Hosts refused per plugin, each host counted under the first plugin refusing it.
        Reused for further tasks of the shape until a host changes."""
        if shape.summary is not None and shape.summary_pos == len(table.log):
            return shape.summary
        ctx = shape.ctx
        alive = np.ones(table.size, dtype=bool)
        refused_by: dict[str, int] = {}
        parts: list[str] = []
        for f in shape.plugins:
            refused = alive & ~f.accept(table, ctx)
            count = int(refused.sum())
            if count:
                refused_by[f.name] = refused_by.get(f.name, 0) + count
                detail = f.explain(table, ctx, refused)
                parts.append(f"{f.name} refused {count}" + (f" ({detail})" if detail else ""))
                alive &= ~refused
        message = f"no host fits: {table.size} hosts"
        if parts:
            message += ", " + ", ".join(parts)
        shape.summary = PlacementSummary(table.size, refused_by, message)
        shape.summary_pos = len(table.log)
        return shape.summary


def _ranked(eff: FloatArray, count: int, threshold: float) -> npt.NDArray[np.intp] | None:
    """The (at most `count`) rows that repeated `argmax`, each pick then refused, would
    return: the highest values first, ties by the lowest row, refused (-inf) rows never.
    One partition and two scans instead of `count` passes over all hosts. None when the
    good-enough threshold is reached (its first-row rule then decides, one pick at a
    time) or when there are fewer rows than `count`."""
    size = eff.shape[0]
    if count >= size:
        return None
    kth = float(np.partition(eff, size - count)[size - count])
    above = np.flatnonzero(eff > kth)
    if len(above):
        above = above[np.argsort(-eff[above], kind="stable")]
        if float(eff[above[0]]) >= threshold:
            return None
    elif kth >= threshold:
        return None
    if kth == _NEG_INF:
        return above
    # Rows equal to the k-th value come in row order after every higher one.
    equal = np.flatnonzero(eff == kth)[: count - len(above)]
    return np.concatenate((above, equal))


def _reservation_summary(hosts: int, resource: str) -> PlacementSummary:
    return PlacementSummary(
        hosts_considered=hosts,
        refused_by={RESERVATION_RULE: hosts},
        message=(
            f"no capacity: {hosts} hosts, {RESERVATION_RULE} refused {hosts} "
            f"({resource} is held for Critical capacity groups' unused reservations)"
        ),
    )
