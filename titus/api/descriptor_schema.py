"""The job descriptor's rules, stated in its OpenAPI description.

The components pydantic generates give the shape only. Validation (titus/model/
validation.py) enforces more: name grammars, ranges, the resource bounds this platform
was configured with, batch or service, at most one retry policy. Each rule that JSON
Schema can state is written here from the same constants and patterns, so clients and
fuzzers learn what is accepted without a round trip. Rules across fields (min <= desired
<= max, shm within memory, the largest host) stay with validation alone.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from titus.api.schemas import USER_ATTRIBUTES
from titus.model import validation as v
from titus.model.json_schema import COUNT, WHITE_SPACE, describe_one_of_each, one_of_pattern

RETRIES: dict[str, Any] = {"minimum": 0, "maximum": v.MAX_RETRIES}
#: The value of a switch constraint, as validation reads it (in any case).
ON_OR_OFF = one_of_pattern(("true", "false"))
#: `local@domain.tld` as validation's is_email reads it: no white space, one '@', a dot
#: inside the domain.
_PART = f"[^{WHITE_SPACE}@]+"
EMAIL = rf"^{_PART}@{_PART}\.{_PART}$"


def _pattern(compiled: re.Pattern[str]) -> dict[str, Any]:
    return {"pattern": compiled.pattern}


def describe_job_rules(components: dict[str, Any], bounds: v.Bounds) -> None:
    """Add the rules to the generated `components` (JSON Schemas by name), in place."""

    def refine(component: str, /, **properties: dict[str, Any]) -> dict[str, Any]:
        schema: dict[str, Any] = components[component]
        for field, rules in properties.items():
            schema["properties"][field].update(rules)
        return schema

    refine(
        "Owner",
        teamEmail={"maxLength": v.EMAIL_MAX_LENGTH, "pattern": EMAIL},
    )
    refine(
        "JobGroupInfo",
        stack=_pattern(v.GROUP_PART),
        detail=_pattern(v.GROUP_PART),
        sequence=_pattern(v.GROUP_PART),
    )
    image = refine("Image", name=_pattern(v.IMAGE_NAME))
    for field, compiled in (("tag", v.IMAGE_TAG), ("digest", v.IMAGE_DIGEST)):
        image["properties"][field]["anyOf"][0].update(_pattern(compiled))
    describe_one_of_each(image, ("tag", "digest"), chosen="string")
    # A resource below the minimum is raised to it, so any value above 0 is taken.
    refine(
        "Resources",
        cpu={"exclusiveMinimum": 0, "maximum": bounds.cpu_max},
        memoryMB={"minimum": 1, "maximum": bounds.memory_mb_max},
        diskMB={"minimum": 1, "maximum": bounds.disk_mb_max},
        networkMbps={"minimum": 1, "maximum": bounds.network_mbps_max},
        gpu={"minimum": 0, "maximum": bounds.gpu_max},
        shmSizeMB=COUNT,
        ephemeralStorageMB=COUNT,
    )
    name, arn = v.IAM_ROLE_NAME.pattern[1:-1], v.IAM_ROLE_ARN.pattern[1:-1]
    refine(
        "SecurityProfile",
        securityGroups={
            "maxItems": v.MAX_SECURITY_GROUPS,
            "uniqueItems": True,
            "items": {"type": "string", **_pattern(v.SECURITY_GROUP)},
        },
        iamRole={"pattern": f"^(?:{name}|{arn})?$"},
    )
    constraint_names = one_of_pattern(sorted(v.CONSTRAINTS))
    switches = one_of_pattern(sorted(v.BOOLEAN_CONSTRAINTS))
    refine(
        "Constraints",
        constraints={
            "propertyNames": {"pattern": f"^{constraint_names}$"},
            # a switch (uniqueHost, ...) is on or off; the others take any value
            "patternProperties": {f"^{switches}$": {"type": "string", "pattern": f"^{ON_OR_OFF}$"}},
        },
        expression={"maxLength": 0, "description": "Not supported: name each constraint."},
    )
    refine("Container", env={"propertyNames": _pattern(v.ENV_NAME)})
    refine("ImmediateRetry", retries=RETRIES)
    refine("DelayedRetry", initialDelayMs=COUNT, delayMs=COUNT, retries=RETRIES)
    refine(
        "ExponentialBackOffRetry", initialDelayMs=COUNT, maxDelayIntervalMs=COUNT, retries=RETRIES
    )
    describe_one_of_each(
        components["RetryPolicy"], ("immediate", "delayed", "exponentialBackOff"), optional=True
    )
    refine(
        "BatchJobSpec",
        size={"minimum": 1, "maximum": v.MAX_BATCH_SIZE},
        runtimeLimitSec={"minimum": v.RUNTIME_LIMIT_MIN_SEC, "maximum": v.RUNTIME_LIMIT_MAX_SEC},
    )
    within = {"minimum": 0, "maximum": v.MAX_SERVICE_SIZE}
    refine("Capacity", min=within, desired=within, max=within)
    descriptor = refine(
        "JobDescriptor",
        applicationName={"minLength": 1, **_pattern(v.APP_NAME)},
        capacityGroup={"pattern": f"^(?:{v.CAPACITY_GROUP.pattern[1:-1]})?$"},
        attributes=USER_ATTRIBUTES,
    )
    describe_one_of_each(descriptor, ("batch", "service"))
    # A job as read back carries the platform's own attributes too (titus.resources.raised,
    # titus.loadBalancers, ...), which a user may not send.
    stored = copy.deepcopy(descriptor)
    stored["title"] = "StoredJobDescriptor"
    stored["description"] = "A job's descriptor as stored: the platform adds titus... attributes."
    stored["properties"]["attributes"] = {
        "type": "object",
        "additionalProperties": {"type": "string"},
    }
    components["StoredJobDescriptor"] = stored
    components["Job"]["properties"]["jobDescriptor"] = {
        "$ref": "#/components/schemas/StoredJobDescriptor"
    }
