"""The chaos suite on the Cassandra store: the same cluster and load, its store in a
keyspace of the CQL test server (in this process), and that server's faults injected
while the load runs (timeouts, unavailable replicas, writes that timed out after they
applied, dropped connections), then a leader kill (a new leader takes over on the fenced
store), and in the long profile both together."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.cluster import ChaosCluster, start_chaos_cluster
from tests.chaos.report import RESULTS
from tests.chaos.scenarios import (
    CASSANDRA_SCENARIOS,
    CASSANDRA_TOGETHER,
    CHAOS_MARKS,
    Scenario,
    profile,
    run,
    scenario_params,
)
from tests.support.cql.server import CqlServer

pytestmark = CHAOS_MARKS


@pytest.fixture(scope="module")
def cassandra_chaos_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosCluster]:
    cql = CqlServer().start()
    try:
        c = start_chaos_cluster(Path(tmp_path_factory.mktemp("chaos-cql")), cql=cql)
        try:
            yield c
        finally:
            c.close()
    finally:
        cql.stop()


@pytest.mark.parametrize("scenario", scenario_params(CASSANDRA_SCENARIOS, CASSANDRA_TOGETHER))
def test_no_job_lost_or_run_twice_on_a_failing_cassandra(
    cassandra_chaos_cluster: ChaosCluster, scenario: Scenario
) -> None:
    outcome = run(cassandra_chaos_cluster, scenario, profile())
    RESULTS.append(outcome)
    assert outcome.clean, cassandra_chaos_cluster.diagnosis(outcome.breaches)
