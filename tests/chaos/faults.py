"""Fault injectors: each makes one fault happen, holds it, and heals it before returning.

They break things the hard way an operator sees them break: kill -9 (and a supervisor
that starts the process again at once), an engine that stops, a ZooKeeper connection cut
until the server expires the session, packets to an agent dropped, a disk that fills.

Not here: stepping an agent's clock. faketime is not installed, a time namespace offsets
only CLOCK_MONOTONIC and CLOCK_BOOTTIME (not the wall clock the platform stamps and
compares), and setting the host's clock would disturb every other process on the machine.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tests.chaos.cluster import ENGINE, ENGINE_ZONE, NETNS, PLAIN, ChaosCluster
from tests.chaos.load import Workload, batch_job
from tests.support.cluster import SESSION_TIMEOUT
from titus.model.states import TaskState

#: A cut ZooKeeper connection is held this long: past the session timeout, so the server
#: expires the session (with a margin for a loaded machine).
EXPIRE_SEC = SESSION_TIMEOUT * 3


@dataclass(frozen=True)
class Timing:
    #: How long a fault that lasts (engine down, partition, full disk) is held.
    hold_sec: float


Fault = Callable[[ChaosCluster, Workload, Timing], None]


def _wait(what: str, check: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the cluster did not recover: {what}")


def kill_leader(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """kill -9 the leading master; once the other one leads, start it again."""
    leader = cluster.leader()
    assert leader in ("m1", "m2"), leader
    cluster.kill(leader)
    _wait("another master to lead", lambda: cluster.leader() not in (None, leader))
    cluster.restart(leader)


def _kill_and_restart(cluster: ChaosCluster, name: str) -> None:
    """kill -9, and start again at once: back before its ZooKeeper session expires and
    before the master gives up on it, so nothing tells the master it was away."""
    cluster.kill(name)
    cluster.restart(name)


def kill_agent(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """kill -9 the agent running the pinned tasks; a supervisor starts it at once."""
    _kill_and_restart(cluster, PLAIN)


def kill_agent_mid_launch(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """kill -9 the agent (on the slow private engine) that tasks were just sent to,
    as soon as the first of them is StartInitiated: the others are mid-launch."""
    job = workload.submit(batch_job(f"{workload.app}ml", 3, workload.seconds, ENGINE_ZONE))
    deadline = time.monotonic() + 30
    while job is not None and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if any(
                t["status"]["state"] == TaskState.START_INITIATED for t in cluster.tasks(job.id)
            ):
                break
        time.sleep(0.02)
    _kill_and_restart(cluster, ENGINE)


def stop_engine(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """Stop the Docker engine under a running agent, hold, start it again."""
    assert cluster.engine is not None
    cluster.engine.stop()
    time.sleep(timing.hold_sec)
    cluster.engine.start()


def _cut(cluster: ChaosCluster, name: str) -> None:
    proxy = cluster.proxies[name]
    proxy.cut()
    time.sleep(EXPIRE_SEC)
    proxy.restore()


def expire_agent_session(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """Cut an agent from ZooKeeper until its session expires, then let it reconnect."""
    _cut(cluster, PLAIN)


def expire_leader_session(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """Cut the leader from ZooKeeper until its session expires, then let it reconnect."""
    leader = cluster.leader()
    assert leader in ("m1", "m2"), leader
    _cut(cluster, leader)


def partition_agent(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """Drop the master's packets to an agent (which keeps its ZooKeeper session) for
    longer than the master waits before it declares the agent's tasks lost."""
    assert cluster.netns is not None
    cluster.netns.partition(cluster.agent_ports[NETNS])
    try:
        time.sleep(cluster.lost_after_sec + timing.hold_sec)
    finally:
        cluster.netns.heal()


def fill_disk(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """Fill the disk the store is on, hold, free it."""
    cluster.fill_disk()
    try:
        time.sleep(timing.hold_sec)
    finally:
        cluster.free_disk()


def heal(cluster: ChaosCluster) -> None:
    """Undo whatever a failed scenario left: every process up, every cut restored."""
    for proxy in cluster.proxies.values():
        proxy.restore()
    if cluster.netns is not None:
        cluster.netns.heal()
    if cluster.disk is not None:
        cluster.free_disk()
    if cluster.engine is not None and cluster.engine.proc is None:
        cluster.engine.start()
    for name in cluster.procs:
        cluster.restart(name)
    live = set(cluster.agent_ids.values())
    _wait("a leader", lambda: cluster.leader() in ("m1", "m2"))
    _wait("every agent registered", lambda: live <= set(cluster.registered_agents()))
