"""The watcher hooks' verdicts (titus/agent/watchers.py), with their clocks given.

A runtime limit counts from the container's start as the engine recorded it, whoever
watches: the agent that started the task, one that adopted it after a restart, or a
Mesos executor. The lifecycle suite (test_task_lifecycle.py) runs the same watchers on
real containers through both hosts.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.docker_engine import task_spec
from titus.agent.clock import AGENT_CLOCK, SteadyClock
from titus.agent.hooks import ContainerRecord, KillRequest, TaskContext
from titus.agent.watchers import OrphanHook, RuntimeLimitHook
from titus.model.states import Reason

STARTED = 1_000_000.0


def context(job_type: str = "BATCH", limit: int | None = 60) -> TaskContext:
    spec = task_spec("sleep 300", job_type=job_type, runtime_limit_sec=limit)
    return TaskContext(spec=spec, agent_id="a", log_dir=Path("/nonexistent"))


def test_runtime_limit_counts_from_the_engines_start_time() -> None:
    ctx = context()
    hook = RuntimeLimitHook(clock=lambda: STARTED + 61)
    # not started yet (or its start not known): nothing to count from
    assert hook.check(ctx) is None
    ctx.container = ContainerRecord(id="c", started_at=STARTED)
    assert hook.check(ctx) == KillRequest(
        Reason.RUNTIME_LIMIT_EXCEEDED, "killed after exceeding its runtime limit of 60 s"
    )
    # a watcher that came later (an adopting agent, an executor) counts the same
    later = RuntimeLimitHook(clock=lambda: STARTED + 59)
    assert later.check(ctx) is None


def test_runtime_limit_is_immune_to_steps_of_the_hosts_clock() -> None:
    """After the first look, the count goes by the monotonic clock: a wall clock stepped a
    day ahead kills nothing, one stepped back does not save a task that ran too long."""
    wall, mono = [STARTED + 10], [500.0]
    hook = RuntimeLimitHook(clock=lambda: wall[0], monotonic=lambda: mono[0])
    ctx = context()
    ctx.container = ContainerRecord(id="c", started_at=STARTED)
    assert hook.check(ctx) is None  # 10 s in
    wall[0] += 86_400  # the host's clock jumps a day ahead
    mono[0] += 5
    assert hook.check(ctx) is None  # 15 s in, whatever the wall clock says
    wall[0] -= 2 * 86_400  # and then a day behind
    mono[0] += 46
    verdict = hook.check(ctx)  # 61 s in
    assert verdict is not None and verdict.reason == Reason.RUNTIME_LIMIT_EXCEEDED


def test_a_task_that_starts_while_the_hosts_clock_is_stepped_is_not_killed_at_once() -> None:
    """The first look compares the engine's start time with the agent's steady clock, not
    with the stepped wall clock: a task started just now is 1 s old, not 900 s (the chaos
    suite's clock step found a task killed at its first look this way)."""
    wall, mono = [STARTED - 100.0], [500.0]
    steady = SteadyClock(lambda: wall[0], lambda: mono[0])  # the agent started 100 s ago
    hook = RuntimeLimitHook(clock=steady, monotonic=lambda: mono[0])
    mono[0] += 101
    wall[0] += 101 + 900  # the host's clock is stepped 900 s ahead; the engine's is not
    ctx = context()
    ctx.container = ContainerRecord(id="c", started_at=STARTED)
    assert hook.check(ctx) is None  # 1 s in
    assert RuntimeLimitHook().clock is AGENT_CLOCK  # what the agent builds it with


def test_runtime_limit_is_for_batch_tasks_that_have_one() -> None:
    hook = RuntimeLimitHook(clock=lambda: STARTED + 10_000)
    for ctx in (context(job_type="SERVICE"), context(limit=None)):
        ctx.container = ContainerRecord(id="c", started_at=STARTED)
        assert hook.check(ctx) is None


def test_an_orphan_is_killed_after_its_grace_period_and_not_before() -> None:
    now = 100.0
    hook = OrphanHook(grace_sec=30, clock=lambda: now)
    ctx = context()
    assert hook.check(ctx) is None  # owned
    ctx.ownership.orphan_since = 80.0
    assert hook.check(ctx) is None
    now = 110.0
    verdict = hook.check(ctx)
    assert verdict is not None and verdict.reason == Reason.KILLED
    assert "30 s grace period" in verdict.message
