"""Job and task states and reason codes, in the Titus v3 vocabulary.

States only move forward. The order below is what "forward" means: a late or repeated
status update that would move a task to an earlier state is ignored.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    ACCEPTED = "Accepted"
    KILL_INITIATED = "KillInitiated"
    FINISHED = "Finished"


class TaskState(StrEnum):
    ACCEPTED = "Accepted"
    LAUNCHED = "Launched"
    START_INITIATED = "StartInitiated"
    STARTED = "Started"
    DISCONNECTED = "Disconnected"
    KILL_INITIATED = "KillInitiated"
    FINISHED = "Finished"


class Reason(StrEnum):
    NORMAL = "normal"
    FAILED = "failed"
    KILLED = "killed"
    SCALED_DOWN = "scaledDown"
    STUCK_IN_STATE = "stuckInState"
    STUCK_IN_KILLING_STATE = "stuckInKillingState"
    RUNTIME_LIMIT_EXCEEDED = "runtimeLimitExceeded"
    LOST = "lost"
    INVALID_REQUEST = "invalidRequest"
    CRASHED = "crashed"
    TRANSIENT_SYSTEM_ERROR = "transientSystemError"
    LOCAL_SYSTEM_ERROR = "localSystemError"
    UNKNOWN_SYSTEM_ERROR = "unknownSystemError"


# Failures caused by the platform, not by the job: they never use up a job's retries.
SYSTEM_ERRORS = frozenset(
    {
        Reason.CRASHED,
        Reason.TRANSIENT_SYSTEM_ERROR,
        Reason.LOCAL_SYSTEM_ERROR,
        Reason.UNKNOWN_SYSTEM_ERROR,
        Reason.LOST,
        Reason.STUCK_IN_STATE,
    }
)

_TASK_ORDER = {
    TaskState.ACCEPTED: 0,
    TaskState.LAUNCHED: 1,
    TaskState.START_INITIATED: 2,
    TaskState.STARTED: 3,
    TaskState.DISCONNECTED: 3,
    TaskState.KILL_INITIATED: 4,
    TaskState.FINISHED: 5,
}

# States in which a container may exist on a host (counts as placed for resources).
TASK_ON_HOST = frozenset(
    {
        TaskState.LAUNCHED,
        TaskState.START_INITIATED,
        TaskState.STARTED,
        TaskState.DISCONNECTED,
        TaskState.KILL_INITIATED,
    }
)


def task_rank(state: TaskState | str) -> int:
    return _TASK_ORDER[TaskState(state)]


def is_forward(current: TaskState | str, new: TaskState | str) -> bool:
    """True when moving from `current` to `new` does not go back in a task's life.

    Started <-> Disconnected both rank as running: a host that comes back turns a
    Disconnected task into Started again, and a host that goes away the other way.
    """
    cur, nxt = TaskState(current), TaskState(new)
    if cur == TaskState.FINISHED:
        return False
    if {cur, nxt} == {TaskState.STARTED, TaskState.DISCONNECTED}:
        return True
    return task_rank(nxt) > task_rank(cur)
