"""Fault injectors: each makes one fault happen, holds it, and heals it before returning.

They break things the hard way an operator sees them break: kill -9 (and a supervisor
that starts the process again at once), an engine that stops, a ZooKeeper connection cut
until the server expires the session, the ZooKeeper server itself killed and started
again, packets to an agent dropped, a disk that fills.

An agent's clock is stepped through libfaketime (its wall clock only: its monotonic clocks
stay real, as a real step leaves them); the host's own clock is never touched. The
Cassandra store's faults are the CQL test server's (timeouts, unavailable replicas, a
write that timed out after it applied, a dropped connection), injected while the load runs.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tests.chaos.cluster import ENGINE, ENGINE_ZONE, NETNS, PLAIN, ChaosCluster
from tests.chaos.load import Workload, batch_job
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
    """kill -9 the agent running the pinned tasks, once one of them runs there (a kill in
    the middle of a launch is the next scenario); a supervisor starts it at once. Not
    once every task of the load runs: under the long profile's steady load some task is
    always on its way."""
    _wait_running_on(cluster, workload, PLAIN)
    _kill_and_restart(cluster, PLAIN)


def _wait_running_on(cluster: ChaosCluster, workload: Workload, name: str) -> None:
    agent = cluster.agent_ids[name]
    _wait(
        f"a task of the load running on {name}",
        lambda: _tasks_on(cluster, workload, agent, TaskState.STARTED),
    )


def kill_agent_mid_launch(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """kill -9 an agent in the middle of a launch, before the launch is done.

    Once the master has saved a task Launched or StartInitiated on the agent (a task of
    the load, or of a job submitted pinned to the host every SUBMIT_EVERY_SEC while none
    is on its way), the engine under the agent is frozen (SIGSTOP), so that the launch
    stops at its next engine call. If the task is still launching `SETTLE_SEC` later, its
    launch is stuck in flight: the agent is killed, the engine thawed and the agent
    started again at once. If it moved on (its container had started), the engine is
    thawed and the next launch is taken. Both states count, and jobs come often: a launch
    on a quiet host can be over between two looks (the master may save StartInitiated and
    Started in one pass).
    Freezing first and waiting for a launch does not work under steady load: the agent
    finds its engine unanswering and reports itself unhealthy, and nothing new is placed.
    """
    engine = cluster.engine
    assert engine is not None and engine.proc is not None
    agent = cluster.agent_ids[ENGINE]
    submitted_at = float("-inf")

    def hit() -> bool:
        nonlocal submitted_at
        assert engine is not None and engine.proc is not None
        starting = _tasks_on(cluster, workload, agent, *LAUNCHING)
        if not starting:
            if time.monotonic() - submitted_at > SUBMIT_EVERY_SEC:
                submitted_at = time.monotonic()
                workload.submit(batch_job(f"{workload.app}ml", 1, workload.seconds, ENGINE_ZONE))
            return False
        os.kill(engine.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(SETTLE_SEC)
            if not starting & _tasks_on(cluster, workload, agent, *LAUNCHING):
                return False  # they moved on: their launches were done
            cluster.kill(ENGINE)
        finally:
            os.kill(engine.proc.pid, signal.SIGCONT)
        return True

    _wait(f"a launch in flight on {ENGINE} to hit", hit, timeout=150)
    cluster.restart(ENGINE)


#: A task still launching this long on a host whose engine is frozen is stuck mid-launch.
SETTLE_SEC = 3.0
#: A task in these states has a launch in flight on its host.
LAUNCHING = (TaskState.LAUNCHED, TaskState.START_INITIATED)
#: How often a job pinned to the host is submitted while nothing launches there.
SUBMIT_EVERY_SEC = 5.0


def _tasks_on(
    cluster: ChaosCluster, workload: Workload, agent: str, *states: TaskState
) -> set[str]:
    """Tasks of the workload the master has saved in one of `states` on `agent`."""
    found = set()
    for job in list(workload.jobs):
        for t in cluster.tasks(job.id):
            on = t.get("taskContext", {}).get("agent.id")
            if on == agent and t["status"]["state"] in states:
                found.add(str(t["id"]))
    return found


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


#: How far an agent's wall clock is stepped: past the load's runtime limit (600 s), so a
#: limit measured on the wall clock would fire, and far past the signature skew (30 s).
CLOCK_STEP_SEC = 900


def step_agent_clock(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """Step the wall clock of the agent running the pinned tasks forward, hold, step it
    back behind the real time, hold, and set it right: its tasks keep running (no
    runtime limit fires, nothing is declared stuck, the leader's calls are still taken)
    and it says it is unhealthy while its clock is off."""
    _wait_running_on(cluster, workload, PLAIN)
    try:
        for offset in (CLOCK_STEP_SEC, -CLOCK_STEP_SEC):
            cluster.step_clock(offset)
            agent = cluster.agent_ids[PLAIN]
            _wait(
                f"{PLAIN} to report its clock off",
                lambda a=agent: _unhealthy_for_clock(cluster, a),  # type: ignore[misc]
            )
            time.sleep(timing.hold_sec)
    finally:
        cluster.step_clock(0)
    _wait(
        f"{PLAIN} healthy with its clock right",
        lambda: not _unhealthy_for_clock(cluster, cluster.agent_ids[PLAIN]),
    )


def _unhealthy_for_clock(cluster: ChaosCluster, agent_id: str) -> bool:
    r = cluster.http.get("/api/v3/agents", timeout=10)
    r.raise_for_status()
    body = r.json()
    for a in body["items"] if isinstance(body, dict) else body:
        if a.get("id") == agent_id:
            return any("wall clock" in reason for reason in a.get("healthReasons", []))
    return False


#: The CQL test server's faults, as (kind, statement text, applied, times), injected in
#: rounds while the load runs: timeouts before and after the write applied (the
#: ambiguous case) on creates, conditional task writes and task creates, unavailable
#: replicas, read timeouts, a dropped connection.
STORE_FAULTS = (
    ("write_timeout", "INSERT INTO active_jobs", True, 2),
    ("write_timeout", "UPDATE active_tasks", False, 2),
    ("write_timeout", "UPDATE active_tasks", True, 2),
    ("write_timeout", ") IF NOT EXISTS", True, 1),
    ("unavailable", "active_tasks", False, 2),
    ("read_timeout", "SELECT", False, 3),
    ("write_timeout", "INTO dirty_marks", True, 1),
    ("drop", "FROM changes", False, 1),
)


def cassandra_faults(cluster: ChaosCluster, workload: Workload, timing: Timing) -> None:
    """Faults of the Cassandra store under load, a round a second, for the hold."""
    cql = cluster.cql
    assert cql is not None, "the cluster does not run on the CQL test server"
    end = time.monotonic() + timing.hold_sec
    try:
        while time.monotonic() < end:
            for kind, match, applied, times in STORE_FAULTS:
                cql.inject(kind, match, times=times, applied=applied)
            time.sleep(1.0)
    finally:
        cql.clear_faults()


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
    if cluster.clock_file is not None:
        cluster.step_clock(0)
    if cluster.cql is not None:
        cluster.cql.clear_faults()
    if cluster.engine is not None and cluster.engine.proc is None:
        cluster.engine.start()
    for name in cluster.procs:
        cluster.restart(name)
    live = set(cluster.agent_ids.values())
    _wait("a leader", lambda: cluster.leader() in ("m1", "m2"))
    _wait("every agent registered", lambda: live <= set(cluster.registered_agents()))
