"""The promises a scenario checks, each breach counted:

- lost: an acknowledged job the API no longer knows;
- duplicated: a batch index with more than one successful task, or a task that had two
  containers (two running at once, or a second one made for it: a task is one attempt);
- not converged: a job not settled (batch Finished with a success per index, service at
  its desired count Started) within `converge_sec` after the last fault ended, or an agent
  that is not registered again by then;
- leaked: a container of a finished job still running after the orphan grace, or a
  registration of an agent whose process is gone.

`ContainerSampler` watches the engines while the scenario runs, since two containers of
one task may overlap only briefly.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import docker
import httpx

from tests.chaos.cluster import ORPHAN_GRACE_SEC, ChaosCluster
from tests.chaos.load import Job, Workload
from titus.agent.runtime import LABEL_AGENT, LABEL_TASK
from titus.model.names import TaskContextKey
from titus.model.states import Reason, TaskState

#: Bound on the suite's polling loops: a sample or check at most this often.
POLL_SEC = 0.5
#: Reasons of timers the load's tasks never run out of (see Outcome.early).
EARLY_REASONS = (
    Reason.RUNTIME_LIMIT_EXCEEDED,
    Reason.STUCK_IN_STATE,
    Reason.STUCK_IN_KILLING_STATE,
)
#: Leaked containers are looked for this long after the jobs settle (beyond the grace).
LEAK_WAIT_SEC = ORPHAN_GRACE_SEC + 25.0


@dataclass
class Outcome:
    scenario: str
    faults: int = 0
    jobs: int = 0
    refused: int = 0
    lost: int = 0
    duplicated: int = 0
    not_converged: int = 0
    leaked: int = 0
    #: Tasks ended by a timer that had not run out: the runtime limit (the load's tasks
    #: run seconds against 600 s) or a stuck-task timeout (minutes), e.g. read on a
    #: stepped clock.
    early: int = 0
    converge_sec: float | None = None
    #: Leader elections while the scenario ran: not a breach, but a leader that resigns
    #: on every transient error shows here.
    elections: int = 0
    breaches: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.not_converged or self.leaked or self.early)


class ContainerSampler:
    """Records, per task, the containers seen and the most running at one time."""

    def __init__(self, cluster: ChaosCluster):
        self.cluster = cluster
        self.seen: dict[str, set[str]] = defaultdict(set)
        self.most_running: dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="chaos-sampler")

    def __enter__(self) -> ContainerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _engines(self) -> dict[str, list[str]]:
        by_host: dict[str, list[str]] = defaultdict(list)
        for name, agent_id in self.cluster.agent_ids.items():
            by_host[self.cluster.docker_host(name)].append(agent_id)
        return by_host

    def snapshot(self) -> dict[str, int]:
        """Running containers per task on every engine now (remembering every one seen)."""
        running: dict[str, int] = defaultdict(int)
        for host, agents in self._engines().items():
            try:
                client = docker.DockerClient(base_url=host, timeout=10)
            except docker.errors.DockerException:
                continue  # the private engine is stopped just now
            try:
                for agent in agents:
                    filters = {"label": f"{LABEL_AGENT}={agent}"}
                    for c in client.containers.list(all=True, filters=filters, ignore_removed=True):
                        task = c.labels.get(LABEL_TASK, "")
                        self.seen[task].add(c.id)
                        running[task] += c.status == "running"
            except (docker.errors.DockerException, OSError):
                continue
            finally:
                client.close()
        return running

    def sample(self) -> None:
        for task, count in self.snapshot().items():
            self.most_running[task] = max(self.most_running[task], count)

    def _run(self) -> None:
        while not self._stop.wait(POLL_SEC):
            self.sample()


def _job(cluster: ChaosCluster, job: Job) -> dict[str, Any] | None:
    r = cluster.http.get(f"/api/v3/jobs/{job.id}", timeout=15)
    if r.status_code == 404:
        return None
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def _successes(cluster: ChaosCluster, job: Job) -> dict[str, int]:
    """Successful (Finished, normal) tasks per index, active and archived."""
    per_index: dict[str, int] = defaultdict(int)
    for task in cluster.all_tasks(job.id):
        status = task["status"]
        if status["state"] == TaskState.FINISHED and status.get("reasonCode") == Reason.NORMAL:
            per_index[str(task["taskContext"].get(TaskContextKey.INDEX, "0"))] += 1
    return per_index


def _settled(cluster: ChaosCluster, job: Job) -> bool:
    if job.kind == "batch":
        found = _job(cluster, job)
        return found is not None and found["status"]["state"] == "Finished"
    started = [t for t in cluster.tasks(job.id) if t["status"]["state"] == TaskState.STARTED]
    return len(started) == job.size


def converge(cluster: ChaosCluster, jobs: list[Job], bound: float) -> tuple[set[str], float]:
    """Wait (at most `bound` seconds) until every job settles and every live agent is
    registered; return the ids of jobs (and agents) that did not, and the time taken."""
    start = time.monotonic()
    pending = {job.id: job for job in jobs}
    agents = set(cluster.agent_ids.values())
    while time.monotonic() - start < bound:
        for job in list(pending.values()):
            try:
                if _settled(cluster, job):
                    del pending[job.id]
            except httpx.HTTPError:
                break  # the API is busy: look again next round
        with contextlib.suppress(Exception):  # ZooKeeper busy: look again next round
            agents -= set(cluster.registered_agents())
        if not pending and not agents:
            break
        time.sleep(POLL_SEC)
    return set(pending) | agents, time.monotonic() - start


def _stop(cluster: ChaosCluster, jobs: list[Job], unsettled: set[str]) -> None:
    """Kill the services and the jobs that did not settle (already counted), so that
    what they hold (a host's launch slots) does not spill into the next scenario."""
    for job in jobs:
        if job.kind == "service" or job.id in unsettled:
            cluster.http.delete(f"/api/v3/jobs/{job.id}", timeout=15)


def _leaked(sampler: ContainerSampler, workload: Workload) -> list[str]:
    """Finished tasks of the workload whose container still runs, as the engines say now."""
    finished = set()
    for job in workload.jobs:
        tasks = workload.cluster.all_tasks(job.id)
        finished |= {t["id"] for t in tasks if t["status"]["state"] == TaskState.FINISHED}
    return [t for t, n in sampler.snapshot().items() if n and t in finished]


def evaluate(
    outcome: Outcome, workload: Workload, sampler: ContainerSampler, bound: float
) -> Outcome:
    """Wait for convergence, then count every breach of the invariants into `outcome`."""
    cluster = workload.cluster
    jobs = list(workload.jobs)
    outcome.jobs, outcome.refused = len(jobs), len(workload.refused)
    unsettled, took = converge(cluster, jobs, bound)
    outcome.converge_sec = None if unsettled else round(took, 1)
    for item in sorted(unsettled):
        outcome.not_converged += 1
        job = next((j for j in jobs if j.id == item), None)
        states = [t["status"] for t in cluster.all_tasks(item)] if job else "agent missing"
        outcome.breaches.append(f"not converged: {item}: {states}")
    for job in jobs:
        try:
            found = _job(cluster, job)
        except httpx.HTTPError as exc:
            found = {"error": repr(exc)}
        if found is None:
            outcome.lost += 1
            outcome.breaches.append(f"lost: {job.id}")
            continue
        if job.kind != "batch" or job.id in unsettled:
            continue
        per_index = _successes(cluster, job)
        for index in range(job.size):
            n = per_index.get(str(index), 0)
            if n > 1:
                outcome.duplicated += 1
                outcome.breaches.append(f"duplicated: {job.id} index {index}: {n} successes")
            elif n == 0:
                outcome.not_converged += 1
                outcome.breaches.append(f"not converged: {job.id} index {index}: no success")
        for task in cluster.all_tasks(job.id):
            reason = task["status"].get("reasonCode")
            if reason in EARLY_REASONS:
                outcome.early += 1
                outcome.breaches.append(f"fired early: task {task['id']} ended {reason}")
    for task, containers in sampler.seen.items():
        if len(containers) > 1 or sampler.most_running[task] > 1:
            outcome.duplicated += 1
            outcome.breaches.append(f"duplicated: task {task} had containers {containers}")
    _stop(cluster, jobs, unsettled)
    converge(cluster, [Job(j.id, "batch", j.size) for j in jobs], bound)
    deadline = time.monotonic() + LEAK_WAIT_SEC
    while (running := _leaked(sampler, workload)) and time.monotonic() < deadline:
        time.sleep(POLL_SEC * 2)
    for task in running:
        outcome.leaked += 1
        outcome.breaches.append(f"leaked: container of finished task {task} still runs")
    live = {a for n, a in cluster.agent_ids.items() if cluster.procs[n].alive}
    for stale in set(cluster.registered_agents()) - live:
        outcome.leaked += 1
        outcome.breaches.append(f"leaked: registration of dead agent {stale}")
    return outcome
