"""What an executor of scaling policies is given and gives back.

The leader's loop hands the worker the facts of the jobs that have policies (LoopFacts);
the worker reads the policies from the store and hands the executor a Snapshot; the
executor says, per policy, the state it should be in, and which jobs a policy wants at
another size. The executor never
writes a job: the loop does (apply.py), through the same rule as a user's resize.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from titus.model.autoscaling import PolicyRecord, PolicyState
from titus.model.job import Capacity


@dataclass(frozen=True)
class JobFacts:
    """What a policy needs to know of its job, read from the leader's view."""

    job_id: str
    capacity: Capacity
    #: An active service job (not being killed); a disabled one is still active.
    active: bool
    enabled: bool
    #: Ids of its tasks that are Started.
    started: tuple[str, ...] = ()


@dataclass(frozen=True)
class Activity:
    """When a policy last changed its job's size (seconds) and which way ("out"/"in")."""

    at: float
    direction: str


@dataclass(frozen=True)
class ScaleRequest:
    policy_id: str
    job_id: str
    desired: int
    why: str


@dataclass
class Outcome:
    #: Policy id -> (state, reason) it should be in now.
    states: dict[str, tuple[PolicyState, str]] = field(default_factory=dict)
    scale: list[ScaleRequest] = field(default_factory=list)


@dataclass(frozen=True)
class LoopFacts:
    """What the loop hands the worker: the facts of the jobs the worker's last pass found
    policies for, which jobs are active at all, and when each policy last scaled."""

    jobs: dict[str, JobFacts]
    active: frozenset[str]
    activity: dict[str, Activity]
    now: float


@dataclass(frozen=True)
class Snapshot:
    """What an executor decides on: the policies whose jobs' facts are known (or whose
    jobs are gone), and the policies of active jobs not known yet (`deferred`: new since
    the last pass; decided on the next one and meanwhile left as they are, in AWS too)."""

    policies: list[PolicyRecord]
    jobs: dict[str, JobFacts]
    activity: dict[str, Activity]
    now: float
    deferred: tuple[PolicyRecord, ...] = ()


class PolicyExecutor(Protocol):
    def run(self, snapshot: Snapshot) -> Outcome:
        """One pass over every policy; safe to repeat (a pass that finds everything in
        place changes nothing)."""
        ...
