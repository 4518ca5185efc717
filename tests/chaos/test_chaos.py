"""The chaos suite: mixed load on the multi-process cluster while faults are injected one
scenario at a time (and, in the long profile, all together); every invariant breach is
counted in the table printed at the end and fails its scenario.

"agent kill -9 mid-launch" found the gap of the issue: a task an agent took, reported
StartInitiated and never started stayed so after the agent came back at once, holding the
host's launch slot until the stuck-task timeout. The claims now name what the agent has
never heard of, and the master ends it as lost at once (titus/master/direct.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.cluster import ChaosCluster, start_chaos_cluster
from tests.chaos.report import RESULTS
from tests.chaos.scenarios import (
    CHAOS_MARKS,
    SCENARIOS,
    TOGETHER,
    Scenario,
    profile,
    run,
    scenario_params,
)

pytestmark = CHAOS_MARKS


@pytest.fixture(scope="module")
def chaos_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosCluster]:
    c = start_chaos_cluster(Path(tmp_path_factory.mktemp("chaos")))
    try:
        yield c
    finally:
        c.close()


@pytest.mark.parametrize("scenario", scenario_params(SCENARIOS, TOGETHER))
def test_no_job_lost_or_run_twice_and_all_converge(
    chaos_cluster: ChaosCluster, scenario: Scenario
) -> None:
    outcome = run(chaos_cluster, scenario, profile())
    RESULTS.append(outcome)
    assert outcome.clean, chaos_cluster.diagnosis(outcome.breaches)
