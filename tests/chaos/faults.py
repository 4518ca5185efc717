"""Fault injectors: each makes one fault happen, holds it, and heals it before returning.

They break things the hard way an operator sees them break: kill -9 (and a supervisor
that starts the process again at once), an engine that stops, a ZooKeeper connection cut
until the server expires the session, the ZooKeeper server itself killed and started
again, packets to an agent dropped, a disk that fills.

Not here: stepping an agent's clock. faketime is not installed, a time namespace offsets
only CLOCK_MONOTONIC and CLOCK_BOOTTIME (not the wall clock the platform stamps and
compares), and setting the host's clock would disturb every other process on the machine.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.chaos.cluster import ENGINE, ENGINE_ZONE, NETNS, PLAIN, ChaosCluster
from tests.chaos.load import Job, Workload, batch_job
from tests.support.cluster import SESSION_TIMEOUT
from tests.support.poll import wait_until
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
    wait_until(
        f"the cluster to recover: {what}",
        check,
        timeout,
        interval=0.2,
        retry_on=(httpx.HTTPError, OSError),
    )


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
    """kill -9 the agent running the pinned tasks, once they run (a kill in the middle
    of a launch is the next scenario); a supervisor starts it at once."""
    _wait("the load to be placed and started", lambda: not _launching(cluster, workload))
    _kill_and_restart(cluster, PLAIN)


def _first_task(cluster: ChaosCluster, job: Job | None, state: TaskState) -> dict[str, Any]:
    """The job's first task once it is in `state` (as the master saved it)."""
    assert job is not None, "the job was refused"
    job_id = job.id

    def found() -> dict[str, Any] | None:
        return next((t for t in cluster.tasks(job_id) if t["status"]["state"] == state), None)

    found_task: dict[str, Any] = wait_until(
        f"a task of {job_id} in {state}", found, 30, retry_on=(httpx.HTTPError,)
    )
    return found_task


def _launching(cluster: ChaosCluster, workload: Workload) -> bool:
    """True while a job of the workload has no task yet or one not started yet."""
    waiting = (TaskState.ACCEPTED, TaskState.LAUNCHED, TaskState.START_INITIATED)
    for job in workload.jobs:
        tasks = cluster.tasks(job.id)
        if not tasks or any(t["status"]["state"] in waiting for t in tasks):
            return True
    return False


def kill_agent_mid_launch(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """kill -9 an agent in the middle of a launch, before the task's container exists.

    The engine under the agent is frozen (SIGSTOP) so that the launch stops at its first
    engine call; once the master has saved the task StartInitiated, the agent is killed,
    the engine thawed and the agent started again at once.
    """
    engine = cluster.engine
    assert engine is not None and engine.proc is not None
    # the host takes few launches at once: let every one under way (or due) finish first
    _wait("the load to be placed and started", lambda: not _launching(cluster, workload))
    os.kill(engine.proc.pid, signal.SIGSTOP)
    try:
        job = workload.submit(batch_job(f"{workload.app}ml", 1, workload.seconds, ENGINE_ZONE))
        _first_task(cluster, job, TaskState.START_INITIATED)
        cluster.kill(ENGINE)
    finally:
        os.kill(engine.proc.pid, signal.SIGCONT)
    cluster.restart(ENGINE)


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


def restart_zookeeper(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """kill -9 the ZooKeeper server every process uses, hold it down past every session's
    timeout, start it again with its data: every process is disconnected (SUSPENDED) for
    longer than its session timeout, and the restarted server either keeps a session (it
    reloads them and restarts their timers) or expires it; both must converge."""
    assert cluster.zk_server is not None
    cluster.zk_server.kill()
    try:
        time.sleep(max(timing.hold_sec, EXPIRE_SEC))
    finally:
        cluster.zk_server.start()


def fill_disk(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """Fill the disk the store is on, hold, free it."""
    cluster.fill_disk()
    try:
        time.sleep(timing.hold_sec)
    finally:
        cluster.free_disk()


def heal(cluster: ChaosCluster) -> None:
    """Undo whatever a failed scenario left: every process up, every cut restored."""
    if cluster.zk_server is not None:
        cluster.zk_server.start()  # a no-op when it serves
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
