"""Scenarios (which faults, how often) and the two profiles they run in.

The short profile is what the normal suite runs: a few jobs and each fault once, so the
whole suite stays within about three minutes on a 2-core machine. The long profile
(`make chaos`, TITUS_CHAOS=long) keeps load and faults going for minutes per scenario,
then runs every fault together.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass

import pytest

from tests.chaos import faults
from tests.chaos.cluster import ENGINE_ZONE, NETNS_ZONE, PLAIN_ZONE, ChaosCluster
from tests.chaos.faults import Fault, Timing
from tests.chaos.invariants import ContainerSampler, Outcome, evaluate
from tests.chaos.load import Workload


@dataclass(frozen=True)
class Profile:
    name: str
    #: Faults are repeated until this many seconds have passed (0: each fault once).
    duration_sec: float
    #: Seconds between two rounds of faults.
    pause_sec: float
    batch_jobs: int
    batch_size: int
    service_desired: int
    #: One more small batch job every this many seconds while faults run (at most limit).
    trickle_sec: float
    trickle_limit: int
    timing: Timing
    #: Every job settles within this many seconds after the last fault ended.
    converge_sec: float


SHORT = Profile(
    name="short",
    duration_sec=0,
    pause_sec=0,
    batch_jobs=2,
    batch_size=2,
    service_desired=2,
    trickle_sec=3,
    trickle_limit=2,
    timing=Timing(hold_sec=6),
    converge_sec=60,
)
LONG = Profile(
    name="long",
    duration_sec=150,
    pause_sec=10,
    batch_jobs=10,
    batch_size=2,
    service_desired=3,
    trickle_sec=2,
    trickle_limit=90,
    timing=Timing(hold_sec=15),
    converge_sec=120,
)


def profile() -> Profile:
    return LONG if os.environ.get("TITUS_CHAOS") == "long" else SHORT


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: tuple[Fault, ...]
    #: Half the batch load is pinned to this zone: the agent the faults hit.
    zone: str | None = None


SCENARIOS = (
    Scenario("leader kill -9", (faults.kill_leader,)),
    Scenario("agent kill -9", (faults.kill_agent,), PLAIN_ZONE),
    Scenario("agent kill -9 mid-launch", (faults.kill_agent_mid_launch,), ENGINE_ZONE),
    Scenario("docker engine stop", (faults.stop_engine,), ENGINE_ZONE),
    Scenario("agent zk session expiry", (faults.expire_agent_session,), PLAIN_ZONE),
    Scenario("leader zk session expiry", (faults.expire_leader_session,)),
    Scenario("agent partitioned", (faults.partition_agent,), NETNS_ZONE),
    Scenario("zookeeper restart", (faults.restart_zookeeper,)),
    Scenario("store disk full", (faults.fill_disk,)),
    Scenario("agent clock steps", (faults.step_agent_clock,), PLAIN_ZONE),
)
TOGETHER = Scenario("all together", tuple(f for s in SCENARIOS for f in s.faults))
#: On the cluster whose store is the CQL test server (test_chaos_cassandra.py).
CASSANDRA_SCENARIOS = (
    Scenario("cassandra store faults", (faults.cassandra_faults,)),
    Scenario("cassandra leader kill -9", (faults.kill_leader,)),
)
CASSANDRA_TOGETHER = Scenario(
    "cassandra all together", (faults.cassandra_faults, faults.kill_leader)
)


def _inject(
    cluster: ChaosCluster, workload: Workload, scenario: Scenario, p: Profile, outcome: Outcome
) -> bool:
    """One round of the scenario's faults; False when one could not be made because the
    cluster did not recover from an earlier one (counted: it did not converge)."""
    for fault in scenario.faults:
        try:
            fault(cluster, workload, p.timing)
        except AssertionError as exc:
            outcome.not_converged += 1
            outcome.breaches.append(f"not converged: {exc}")
            return False
        outcome.faults += 1
    return True


def run(cluster: ChaosCluster, scenario: Scenario, p: Profile) -> Outcome:
    """Load, faults while the load runs, then the invariants counted."""
    faults.heal(cluster)
    workload = Workload(cluster, app=f"chaos{uuid.uuid4().hex[:6]}", zone=scenario.zone)
    outcome = Outcome(scenario.name)
    epoch = cluster.epoch()
    with ContainerSampler(cluster) as sampler:
        workload.service(p.service_desired)
        workload.batch(p.batch_jobs, size=p.batch_size)
        stop = threading.Event()
        trickle = workload.trickle(stop, p.trickle_sec, p.trickle_limit)
        end = time.monotonic() + p.duration_sec
        try:
            while _inject(cluster, workload, scenario, p, outcome):
                if time.monotonic() >= end or stop.wait(p.pause_sec):
                    break
        finally:
            stop.set()
            trickle.join(60)
        evaluate(outcome, workload, sampler, p.converge_sec)
    outcome.elections = cluster.epoch() - epoch
    return outcome


def scenario_params(
    scenarios: tuple[Scenario, ...] | list[Scenario], together: Scenario
) -> list[object]:
    """The scenarios a chaos module runs, as pytest parameters: each alone, and in the long
    profile all together as well."""
    chosen = list(scenarios) + ([together] if profile().duration_sec else [])
    return [pytest.param(s, id=s.name.replace(" ", "-")) for s in chosen]


#: The marks of a chaos module: the engines and ZooKeeper it needs, and a timeout that fits
#: the profile (a long scenario holds its load for minutes).
CHAOS_MARKS = [
    pytest.mark.docker,
    pytest.mark.zookeeper,
    pytest.mark.timeout(300 if profile().duration_sec == 0 else 1200),
]
