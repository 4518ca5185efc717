"""The watcher hooks' verdicts (titus/agent/watchers.py), with their clocks given.

A runtime limit counts from the container's start as the engine recorded it, whoever
watches: the agent that started the task, one that adopted it after a restart, or a
Mesos executor. The lifecycle suite (test_task_lifecycle.py) runs the same watchers on
real containers through both hosts.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.docker_engine import task_spec
from titus.agent.hooks import ContainerRecord, KillRequest, TaskContext
from titus.agent.watchers import OrphanHook, RuntimeLimitHook
from titus.model.states import Reason

STARTED = 1_000_000.0


def context(job_type: str = "BATCH", limit: int | None = 60) -> TaskContext:
    spec = task_spec("sleep 300", job_type=job_type, runtime_limit_sec=limit)
    return TaskContext(spec=spec, agent_id="a", log_dir=Path("/nonexistent"))


def test_runtime_limit_counts_from_the_engines_start_time() -> None:
    ctx = context()
    now = STARTED + 61
    hook = RuntimeLimitHook(clock=lambda: now)
    # not started yet (or its start not known): nothing to count from
    assert hook.check(ctx) is None
    ctx.container = ContainerRecord(id="c", started_at=STARTED)
    assert hook.check(ctx) == KillRequest(
        Reason.RUNTIME_LIMIT_EXCEEDED, "killed after exceeding its runtime limit of 60 s"
    )
    # a watcher that came later (an adopting agent, an executor) counts the same
    now = STARTED + 59
    assert hook.check(ctx) is None


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
