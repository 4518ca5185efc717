"""A job's status history: each change is kept, the history stays bounded; a task's new
state is a copy of the task its owner may change alone."""

from __future__ import annotations

from titus.model.job import MAX_JOB_STATUS_HISTORY, Job, JobStatus, Task, TaskStatus
from titus.model.states import JobState, TaskState
from titus.model.validation import parse_job_descriptor


def test_history_keeps_the_acceptance_and_the_latest_entries() -> None:
    descriptor = parse_job_descriptor(
        {
            "owner": {"teamEmail": "a@b.co"},
            "applicationName": "app",
            "container": {"image": {"name": "img", "tag": "1"}},
            "service": {"capacity": {"min": 0, "desired": 1, "max": 1}},
        }
    )
    job = Job(id="j", jobDescriptor=descriptor, status=JobStatus(state=JobState.ACCEPTED))
    for n in range(3 * MAX_JOB_STATUS_HISTORY):
        job = job.with_status(JobState.ACCEPTED, message=f"change {n}")
    assert len(job.statusHistory) == MAX_JOB_STATUS_HISTORY
    assert job.statusHistory[0].reasonMessage == ""  # the acceptance
    assert job.statusHistory[-1].reasonMessage == f"change {3 * MAX_JOB_STATUS_HISTORY - 2}"
    assert job.status.reasonMessage == f"change {3 * MAX_JOB_STATUS_HISTORY - 1}"


def test_a_task_in_a_new_state_is_a_copy_its_owner_may_change_alone() -> None:
    """`Task.with_status` shares what nobody changes in place (past statuses) and copies
    what its owner may change: changing the copy leaves the task it came from as it was."""
    task = Task(
        id="t",
        jobId="j",
        originalId="t",
        status=TaskStatus(state=TaskState.ACCEPTED, reasonMessage="queued"),
        taskContext={"task.index": "0"},
        attributes={"a": "1"},
    )
    launched = task.with_status(TaskState.LAUNCHED, "normal", "placed")
    launched.status.timestamp = 1
    launched.taskContext["agent.id"] = "h1"
    launched.attributes["b"] = "2"
    launched.logLocation.liveStream = "/logs/t"
    launched.statusHistory.append(TaskStatus(state=TaskState.STARTED))
    assert [s.state for s in launched.statusHistory] == [TaskState.ACCEPTED, TaskState.STARTED]
    assert task.status.state == TaskState.ACCEPTED and task.status.timestamp != 1
    assert task.statusHistory == []
    assert task.taskContext == {"task.index": "0"} and task.attributes == {"a": "1"}
    assert task.logLocation.liveStream == ""
    assert launched.status.reasonMessage == "placed"
