"""What the master sends a host to run a task, and what the host reports back.

These are the messages of the direct cluster driver (master -> agent over HTTP) and the
payload a Mesos TaskInfo carries to the executor, so both paths run the same spec.
"""

from __future__ import annotations

from pydantic import Field

from titus.model.job import Container, Job, Model, Task, now_ms
from titus.model.states import TaskState


class TaskSpec(Model):
    """Everything a host needs to run one task, independent of the store."""

    taskId: str
    jobId: str
    jobType: str
    applicationName: str
    container: Container
    runtimeLimitSec: int | None = None
    jobAttributes: dict[str, str] = Field(default_factory=dict)
    taskIndex: int = 0

    @classmethod
    def for_task(cls, job: Job, task: Task) -> TaskSpec:
        """The spec of a task of `job`. Made without validating again what the job and the
        task already hold (validation was most of its cost, once per task launched); it
        shares the job's container, read-only, as a validated copy did."""
        d = job.jobDescriptor
        return cls.model_construct(
            taskId=task.id,
            jobId=job.id,
            jobType=d.job_type,
            applicationName=d.applicationName,
            container=d.container,
            runtimeLimitSec=d.batch.runtimeLimitSec if d.batch else None,
            jobAttributes=dict(d.attributes),
            taskIndex=task.index,
        )


class TaskReport(Model):
    """A host's view of one task. `seq` orders reports from one host."""

    taskId: str
    jobId: str
    state: TaskState
    reasonCode: str = "normal"
    reasonMessage: str = ""
    timestamp: int = Field(default_factory=now_ms)
    seq: int = 0
    exitCode: int | None = None
    containerId: str | None = None
    context: dict[str, str] = Field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.state == TaskState.FINISHED


class TaskReportPage(Model):
    """Answer to a (long-poll) listing: reports newer than the asked-for sequence."""

    agentId: str
    seq: int
    tasks: list[TaskReport]
