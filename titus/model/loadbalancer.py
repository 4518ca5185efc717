"""Which ELBv2 target groups a service job's tasks join.

Kept on the job itself, in the platform's own attribute `titus.loadBalancers` (users
cannot set `titus*` attributes), so the association is as durable as the job in every
store and goes with it when the job is archived. At most MAX_PER_JOB per job (Titus's
bound); each one a target group ARN, checked in linear time.
"""

from __future__ import annotations

import re
from typing import Any

from titus.model.job import Job

LOAD_BALANCERS_ATTRIBUTE = "titus.loadBalancers"
MAX_PER_JOB = 30
TARGET_GROUP_ARN = re.compile(
    r"arn:aws[a-z-]{0,20}:elasticloadbalancing:[a-z0-9-]{1,30}:[0-9]{12}:"
    r"targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}"
)


#: The longest ARN taken (ELBv2's own bound on an ARN).
MAX_ARN = 256
#: The same rule as JSON Schema, for the API's description.
TARGET_GROUP_ARN_SCHEMA: dict[str, Any] = {
    "maxLength": MAX_ARN,
    "pattern": f"^{TARGET_GROUP_ARN.pattern}$",
}


def is_target_group_arn(value: str) -> bool:
    return len(value) <= MAX_ARN and TARGET_GROUP_ARN.fullmatch(value) is not None


def load_balancers_of(job: Job) -> list[str]:
    value = job.jobDescriptor.attributes.get(LOAD_BALANCERS_ATTRIBUTE, "")
    return [arn for arn in value.split(",") if arn]


def with_load_balancers(job: Job, arns: list[str]) -> Job:
    """The job with exactly `arns` associated (the attribute gone when none)."""
    updated = job.model_copy(deep=True)
    attributes = updated.jobDescriptor.attributes
    if arns:
        attributes[LOAD_BALANCERS_ATTRIBUTE] = ",".join(dict.fromkeys(arns))
    else:
        attributes.pop(LOAD_BALANCERS_ATTRIBUTE, None)
    return updated
