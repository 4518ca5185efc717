"""The Mesos driver's ACCEPTs, sent several at once, against the Mesos master double.

A big offer cycle ends in one ACCEPT per agent; the driver sends several at once, each on
its own connection (titus/master/mesos/accepts.py). Every other call keeps its order
against them: a KILL sent after a launch must reach the master after the launch's ACCEPT,
or Mesos answers TASK_LOST for a task it does not know yet and then runs it anyway.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.conformance import make_job, make_task
from tests.support.mesos.fixture import Factory, mesos_master_factory  # noqa: F401
from tests.support.poll import wait_until
from tests.support.prerequisites import PYMESOS, require_module
from titus.coord.base import Leadership
from titus.master.cluster import Placement
from titus.master.mesos import MesosConfig, MesosDriver
from titus.model.job import BatchJobSpec, Resources
from titus.model.launch import TaskSpec
from titus.store import open_store
from titus.store.base import JobStore

pytestmark = pytest.mark.timeout(60)

AGENTS = 6
PER_AGENT = 4


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = open_store(f"sqlite:///{tmp_path / 'titus.db'}")
    yield s
    s.close()


def test_a_kill_after_many_launches_reaches_mesos_after_their_accepts(
    mesos_master_factory: Factory,  # noqa: F811
    store: JobStore,
) -> None:
    require_module("pymesos", PYMESOS)
    double = mesos_master_factory(agents=AGENTS)
    driver = MesosDriver(
        store,
        MesosConfig(
            url=f"mesos://{double.address}", executor_command="sleep 30", refuse_seconds=30.0
        ),
    )
    store.claim_epoch(1)
    driver.start(Leadership(1), store.load_active_index())
    try:
        wait_until("the framework subscribed", lambda: driver.connected, timeout=10)
        driver.wants_offers(True)
        wait_until("every agent offered", lambda: len(driver.hosts()) == AGENTS, timeout=10)
        job = make_job()
        job.jobDescriptor.batch = BatchJobSpec(size=AGENTS * PER_AGENT)
        job.jobDescriptor.container.resources = Resources(cpu=0.5, memoryMB=256, diskMB=100)
        tasks = [make_task(job, i) for i in range(AGENTS * PER_AGENT)]
        placements = [
            Placement(TaskSpec.for_task(job, task), host.host_id)
            for host, i in zip(
                sorted(driver.hosts(), key=lambda h: h.host_id), range(AGENTS), strict=True
            )
            for task in tasks[i * PER_AGENT : (i + 1) * PER_AGENT]
        ]
        victim = placements[-1].spec.taskId
        driver.launch(placements)
        driver.kill(victim, placements[-1].host_id)
        framework_id = driver.framework_id or ""

        def killed() -> bool:
            return double.task_state(framework_id, victim) == "TASK_KILLED"

        wait_until(f"task {victim} killed", killed, timeout=15)
        with double.lock:
            calls = list(double.calls)
        accepts = [c for c in calls if c["type"] == "ACCEPT"]
        (kill,) = [c for c in calls if c["type"] == "KILL"]
        assert len(accepts) == AGENTS and all(c["status"] == 202 for c in accepts)
        assert kill["received"] >= max(c["time"] for c in accepts)
        # every task launched once, none lost on the way
        launched = [
            info["task_id"]["value"]
            for c in accepts
            for op in c["call"]["accept"]["operations"]
            for info in op["launch"]["task_infos"]
        ]
        assert sorted(launched) == sorted(p.spec.taskId for p in placements)
        time.sleep(0.2)
        for p in placements[:-1]:
            assert double.task_state(framework_id, p.spec.taskId) == "TASK_STAGING"
    finally:
        driver.stop()
