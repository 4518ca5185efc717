"""A job's status history: each change is kept, the history stays bounded."""

from __future__ import annotations

from titus.model.job import MAX_JOB_STATUS_HISTORY, Job, JobStatus
from titus.model.states import JobState
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
