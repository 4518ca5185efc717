"""What a caller reads of a task: never the platform's own control-plane addresses."""

from __future__ import annotations

from titus.model.job import Task, TaskStatus
from titus.model.names import AgentContext
from titus.model.states import TaskState


def test_the_executors_log_address_is_kept_but_never_shown() -> None:
    task = Task(
        id="t1",
        jobId="j1",
        originalId="t1",
        status=TaskStatus(state=TaskState.STARTED),
        taskContext={AgentContext.HOST: "host-1", AgentContext.LOGS_ADDRESS: "10.0.0.5:7105"},
    )
    shown = task.api_json()
    assert shown["taskContext"] == {AgentContext.HOST: "host-1"}
    # the platform itself still knows where to reach the logs
    assert task.taskContext[AgentContext.LOGS_ADDRESS] == "10.0.0.5:7105"
    assert Task.model_validate(task.to_json()).taskContext == task.taskContext
