"""The chaos suite: mixed load on the multi-process cluster while faults are injected one
scenario at a time (and, in the long profile, all together); every invariant breach is
counted in the table printed at the end and fails its scenario.

A scenario whose breach is understood but not fixed yet is marked xfail with its root
cause, so the suite stays green; strict where the breach shows every time (it turns red the
day it is fixed), not strict where it depends on a race (see MAY_PASS).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.cluster import ChaosCluster, start_chaos_cluster
from tests.chaos.report import RESULTS
from tests.chaos.scenarios import SCENARIOS, TOGETHER, Scenario, profile, run

PROFILE = profile()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.zookeeper,
    pytest.mark.timeout(300 if PROFILE.duration_sec == 0 else 1200),
]

#: Scenarios with a known, explained breach: name -> root cause.
KNOWN: dict[str, str] = {
    "agent kill -9 mid-launch": (
        "a task the agent had reported StartInitiated but whose container it never made "
        "stays StartInitiated when the agent is killed and comes back at once: the restarted "
        "agent does not know it, AgentDaemon.claim (titus/agent/daemon.py) ignores claimed "
        "ids it does not know instead of naming them, and the leader compares a host's "
        "tasks with the store only at election (reports.reconcile_actual), never when a "
        "host restarts (the agent's report sequence starts from the clock, so "
        "_AgentWatch._run in titus/master/direct.py cannot tell a restart either); only the "
        "stuck-task timeout (stuck_start_initiated_batch_sec, 12 min) ends it, and until "
        "then it holds the host's only launch slot (max_launching_per_host = 1)"
    ),
}
#: Not strict: the breach shows only when the restarted agent registers again before
#: the master sees its old ZooKeeper session end; when the master sees the gap first it
#: declares the host's tasks lost and replaces them, and the scenario converges. In the
#: long profile repeated kills also land in the middle of launches by chance.
MAY_PASS = {"agent kill -9 mid-launch", "agent kill -9", "all together"}


def _marks(s: Scenario) -> list[pytest.MarkDecorator]:
    reason = KNOWN["agent kill -9 mid-launch"]
    if s.name == "agent kill -9 mid-launch" or (PROFILE.duration_sec and s.name in MAY_PASS):
        return [pytest.mark.xfail(strict=False, reason=reason)]
    return []


def _params() -> list[object]:
    chosen = list(SCENARIOS) + ([TOGETHER] if PROFILE.duration_sec else [])
    return [pytest.param(s, id=s.name.replace(" ", "-"), marks=_marks(s)) for s in chosen]


@pytest.fixture(scope="module")
def chaos_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosCluster]:
    c = start_chaos_cluster(Path(tmp_path_factory.mktemp("chaos")))
    try:
        yield c
    finally:
        c.close()


@pytest.mark.parametrize("scenario", _params())
def test_no_job_lost_or_run_twice_and_all_converge(
    chaos_cluster: ChaosCluster, scenario: Scenario
) -> None:
    outcome = run(chaos_cluster, scenario, PROFILE)
    RESULTS.append(outcome)
    assert outcome.clean, "\n".join(outcome.breaches[:20]) + "\n" + chaos_cluster.logs()[-6000:]
