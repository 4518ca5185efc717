"""The Titus v3 job and task shape, as clients (Spinnaker, scripts) send and read it.

Field names are the camelCase JSON names on purpose: the wire shape is the model. Unknown
fields are refused by name, so a typo like `memoryMb` never silently becomes a default.
64-bit integers arrive as numbers or, from protobuf-JSON clients, as numeric strings; both
are accepted. A `true` is not taken for 1, nor a 0 for `false`, as protobuf-JSON does not.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field

from titus.model.json_schema import (
    COUNT,
    PERCENTAGE,
    POSITIVE,
    describe_one_of_each,
    integer_pattern,
    one_of_pattern,
)
from titus.model.names import INTERNAL_CONTEXT_KEYS
from titus.model.states import JobState, TaskState
from titus.model.wire import Int, Number, Switch


def now_ms() -> int:
    return int(time.time() * 1000)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Owner(Model):
    teamEmail: str


class JobGroupInfo(Model):
    stack: str = ""
    detail: str = ""
    sequence: str = ""


class Image(Model):
    name: str
    tag: str | None = None
    digest: str | None = None

    def reference(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or 'latest'}"


class Resources(Model):
    cpu: Number = 1.0
    gpu: Int = 0
    memoryMB: Int = 512
    diskMB: Int = 10_000
    networkMbps: Int = 128
    shmSizeMB: Int | None = None
    allocateIP: Switch = True
    ephemeralStorageMB: Int | None = None  # accepted for older clients, folded into disk


class SecurityProfile(Model):
    securityGroups: list[str] = Field(default_factory=list)
    iamRole: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)


class Constraints(Model):
    constraints: dict[str, str] = Field(default_factory=dict)
    expression: str | None = None


class Container(Model):
    resources: Resources = Field(default_factory=Resources)
    securityProfile: SecurityProfile = Field(default_factory=SecurityProfile)
    image: Image
    entryPoint: list[str] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    softConstraints: Constraints = Field(default_factory=Constraints)
    hardConstraints: Constraints = Field(default_factory=Constraints)
    attributes: dict[str, str] = Field(default_factory=dict)


class ImmediateRetry(Model):
    retries: Int = 0


class DelayedRetry(Model):
    initialDelayMs: Int = 0
    delayMs: Int = 0
    retries: Int = 0


class ExponentialBackOffRetry(Model):
    initialDelayMs: Int = 0
    maxDelayIntervalMs: Int = 0
    retries: Int = 0


class RetryPolicy(Model):
    immediate: ImmediateRetry | None = None
    delayed: DelayedRetry | None = None
    exponentialBackOff: ExponentialBackOffRetry | None = None

    @property
    def retries(self) -> int:
        policy = self.immediate or self.delayed or self.exponentialBackOff
        return policy.retries if policy else 0

    def delay_ms(self, attempt: int) -> int:
        """Delay before retry number `attempt` (1 for the first retry)."""
        if self.delayed:
            return self.delayed.initialDelayMs if attempt <= 1 else self.delayed.delayMs
        if self.exponentialBackOff:
            eb = self.exponentialBackOff
            delay = eb.initialDelayMs * (2 ** max(0, attempt - 1))
            return min(delay, eb.maxDelayIntervalMs) if eb.maxDelayIntervalMs else delay
        return 0


class BatchJobSpec(Model):
    size: Int = 1
    runtimeLimitSec: Int = 432_000
    retryPolicy: RetryPolicy = Field(default_factory=RetryPolicy)
    retryOnRuntimeLimit: Switch = False


class Capacity(Model):
    min: Int = 0
    desired: Int = 0
    max: Int = 0


class Empty(Model):
    """A policy that is chosen by being present and carries no fields (Titus's empty
    messages: SystemDefault, SelfManaged, RateUnlimited). Being a model, not free-form JSON,
    it refuses any content by name, so nothing unbounded is stored."""


class MigrationPolicy(Model):
    systemDefault: Empty | None = None
    selfManaged: Empty | None = None


class ServiceJobProcesses(Model):
    disableIncreaseDesired: Switch = False
    disableDecreaseDesired: Switch = False


class ServiceJobSpec(Model):
    capacity: Capacity
    enabled: Switch = True
    retryPolicy: RetryPolicy = Field(default_factory=RetryPolicy)
    migrationPolicy: MigrationPolicy | None = None
    serviceJobProcesses: ServiceJobProcesses = Field(default_factory=ServiceJobProcesses)


class SelfManagedPolicy(Model):
    relocationTimeMs: Int = Field(0, json_schema_extra=COUNT)


class AvailabilityPercentageLimit(Model):
    percentageOfHealthyContainers: Number = Field(json_schema_extra=PERCENTAGE)


class UnhealthyTasksLimit(Model):
    limitOfUnhealthyContainers: Int = Field(json_schema_extra=COUNT)


class RelocationLimit(Model):
    limit: Int = Field(json_schema_extra=COUNT)


class RatePercentagePerHour(Model):
    maxPercentageOfContainersRelocatedInHour: Number = Field(json_schema_extra=PERCENTAGE)


class RatePerInterval(Model):
    intervalMs: Int = Field(json_schema_extra=POSITIVE)
    limitPerInterval: Int = Field(json_schema_extra=COUNT)


class RatePercentagePerInterval(Model):
    intervalMs: Int = Field(json_schema_extra=POSITIVE)
    percentageLimitPerInterval: Number = Field(json_schema_extra=PERCENTAGE)


def _hours_in_order(schema: dict[str, Any]) -> None:
    """0 <= startHour < endHour <= 24 in JSON Schema: each start names the ends it allows
    (an absent start is 0, an absent end 24), as a number or its digits (`Int`)."""
    schema["anyOf"] = [{"not": {"required": ["startHour"]}}] + [
        {
            "required": ["startHour"],
            "properties": {
                "startHour": {"enum": [start, str(start)]},
                # `minimum` holds for a number, `pattern` for a string
                "endHour": {"minimum": start + 1, "pattern": integer_pattern(start + 1, 24)},
            },
        }
        for start in range(24)
    ]


class HourlyTimeWindow(Model):
    model_config = ConfigDict(json_schema_extra=_hours_in_order)
    startHour: Int = Field(0, json_schema_extra={"minimum": 0, "maximum": 23})
    endHour: Int = Field(24, json_schema_extra={"minimum": 1, "maximum": 24})


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: A day of the week in any case, as validation reads it.
WEEKDAY_PATTERN = f"^{one_of_pattern(WEEKDAYS)}$"


#: The JSON Schema format of a budget window's zone: an IANA zone name this host knows
#: (`known_time_zones`). A named format rather than an enum of some 600 names, which
#: makes every generator that checks enums crawl.
TIME_ZONE_FORMAT = "iana-time-zone"


def _known_zones(schema: dict[str, Any]) -> None:
    schema["properties"]["timeZone"]["format"] = TIME_ZONE_FORMAT


@cache
def known_time_zones() -> frozenset[str]:
    """The IANA zones this host knows (a budget's windows are read in one of them)."""
    return frozenset(available_timezones())


class TimeWindow(Model):
    model_config = ConfigDict(json_schema_extra=_known_zones)
    days: list[str] = Field(
        default_factory=list,
        json_schema_extra={"items": {"type": "string", "pattern": WEEKDAY_PATTERN}},
    )
    hourlyTimeWindows: list[HourlyTimeWindow] = Field(default_factory=list)
    timeZone: str = "UTC"


#: The one container health provider a disruption budget may name (titus/model/health.py).
HEALTH_CHECK_PROVIDER = "healthCheck"


class ContainerHealthProvider(Model):
    name: str = Field(json_schema_extra={"const": HEALTH_CHECK_PROVIDER})
    attributes: dict[str, str] = Field(default_factory=dict, json_schema_extra={"maxProperties": 0})


BUDGET_POLICIES = (
    "selfManaged",
    "availabilityPercentageLimit",
    "unhealthyTasksLimit",
    "relocationLimit",
)
BUDGET_RATES = (
    "rateUnlimited",
    "ratePercentagePerHour",
    "ratePerInterval",
    "ratePercentagePerInterval",
)


def _one_policy_and_one_rate(schema: dict[str, Any]) -> None:
    describe_one_of_each(schema, BUDGET_POLICIES, BUDGET_RATES)


class DisruptionBudget(Model):
    """How many of a job's tasks the platform may take down at once, and when. One policy
    and one rate; validation checks that exactly one of each is given."""

    model_config = ConfigDict(json_schema_extra=_one_policy_and_one_rate)
    selfManaged: SelfManagedPolicy | None = None
    availabilityPercentageLimit: AvailabilityPercentageLimit | None = None
    unhealthyTasksLimit: UnhealthyTasksLimit | None = None
    relocationLimit: RelocationLimit | None = None
    rateUnlimited: Empty | None = None
    ratePercentagePerHour: RatePercentagePerHour | None = None
    ratePerInterval: RatePerInterval | None = None
    ratePercentagePerInterval: RatePercentagePerInterval | None = None
    timeWindows: list[TimeWindow] = Field(default_factory=list)
    containerHealthProviders: list[ContainerHealthProvider] = Field(default_factory=list)


class JobDescriptor(Model):
    owner: Owner
    applicationName: str
    capacityGroup: str = ""
    jobGroupInfo: JobGroupInfo = Field(default_factory=JobGroupInfo)
    attributes: dict[str, str] = Field(default_factory=dict)
    container: Container
    batch: BatchJobSpec | None = None
    service: ServiceJobSpec | None = None
    disruptionBudget: DisruptionBudget | None = None

    @property
    def is_batch(self) -> bool:
        return self.batch is not None

    @property
    def job_type(self) -> str:
        return "BATCH" if self.batch is not None else "SERVICE"

    @property
    def retry_policy(self) -> RetryPolicy:
        spec = self.batch or self.service
        assert spec is not None
        return spec.retryPolicy

    @property
    def task_demand(self) -> int:
        """Tasks this job wants: its batch size, or its service's desired count."""
        if self.batch is not None:
            return self.batch.size
        return self.service.capacity.desired if self.service is not None else 0

    @property
    def job_group_name(self) -> str | None:
        g = self.jobGroupInfo
        if not g.sequence:
            return None
        return "-".join([self.applicationName, g.stack, g.detail, g.sequence])


class JobStatus(Model):
    state: JobState
    reasonCode: str = "normal"
    reasonMessage: str = ""
    timestamp: int = Field(default_factory=now_ms)


class TaskStatus(Model):
    state: TaskState
    reasonCode: str = "normal"
    reasonMessage: str = ""
    timestamp: int = Field(default_factory=now_ms)


#: Entries a job's status history keeps at most (the first and the latest).
MAX_JOB_STATUS_HISTORY = 50
#: Task ids a job keeps in `shrunkFor` at most (the latest).
MAX_SHRUNK_FOR = 32


class Job(Model):
    id: str
    jobDescriptor: JobDescriptor
    status: JobStatus
    statusHistory: list[JobStatus] = Field(default_factory=list)
    version: int = 0
    #: The tasks whose kill with shrink lowered this job's desired size (the latest
    #: MAX_SHRUNK_FOR), written with the lowered size in the same job write: a kill sent
    #: again after its first try failed part-way (the kill request not written) lowers
    #: the size once. The platform's own: not shown to callers.
    shrunkFor: list[str] | None = None

    def with_status(self, state: JobState, reason: str = "normal", message: str = "") -> Job:
        """This job with a new status; the old one goes to the history, which keeps its
        first entry (the job's acceptance) and the latest ones, so a job enabled and
        disabled over and over does not grow without bound."""
        new = self.model_copy(deep=True)
        new.statusHistory.append(self.status)
        if len(new.statusHistory) > MAX_JOB_STATUS_HISTORY:
            new.statusHistory = [
                new.statusHistory[0],
                *new.statusHistory[-MAX_JOB_STATUS_HISTORY + 1 :],
            ]
        new.status = JobStatus(state=state, reasonCode=reason, reasonMessage=message)
        return new

    def api_json(self) -> dict[str, Any]:
        data = self.to_json()
        data.pop("version", None)
        data.pop("shrunkFor", None)
        return data

    def shrunk_for(self, task_id: str) -> Job:
        """This job (changed in place) with `task_id` among those its size was lowered
        for, keeping the latest MAX_SHRUNK_FOR."""
        self.shrunkFor = [*(self.shrunkFor or [])[-(MAX_SHRUNK_FOR - 1) :], task_id]
        return self


class S3Location(Model):
    bucket: str = ""
    key: str = ""
    region: str = ""


class LogLocation(Model):
    ui: str = ""
    liveStream: str = ""
    s3: S3Location | None = None


class Task(Model):
    id: str
    jobId: str
    originalId: str
    status: TaskStatus
    statusHistory: list[TaskStatus] = Field(default_factory=list)
    taskContext: dict[str, str] = Field(default_factory=dict)
    logLocation: LogLocation = Field(default_factory=LogLocation)
    attributes: dict[str, str] = Field(default_factory=dict)
    version: int = 0

    @property
    def state(self) -> TaskState:
        return self.status.state

    @property
    def agent_id(self) -> str | None:
        return self.taskContext.get("agent.id")

    @property
    def index(self) -> int:
        return int(self.taskContext.get("task.index", "0"))

    def with_status(self, state: TaskState, reason: str = "normal", message: str = "") -> Task:
        """This task in a new state; the old status goes to the history.

        The copy is as deep as the code's habits need and no deeper (a deep copy of every
        task placed made a big placement pass seconds longer): what a copy's owner changes
        in place (its status, history list, context, attributes, log location's fields)
        is its own, while the past statuses in its history, never changed once replaced,
        are shared."""
        return self.model_copy(
            update={
                "status": TaskStatus(state=state, reasonCode=reason, reasonMessage=message),
                "statusHistory": [*self.statusHistory, self.status],
                "taskContext": dict(self.taskContext),
                "attributes": dict(self.attributes),
                "logLocation": self.logLocation.model_copy(),
            }
        )

    def with_attributes(self, attrs: dict[str, str]) -> Task:
        """This task with the attributes users set on it (kept beside it) merged in."""
        if not attrs:
            return self
        return self.model_copy(update={"attributes": {**self.attributes, **attrs}})

    def api_json(self) -> dict[str, Any]:
        """The task as callers see it: without the store's version and the platform's own
        context keys (INTERNAL_CONTEXT_KEYS)."""
        data = self.to_json()
        data.pop("version", None)
        context = data.get("taskContext") or {}
        if not INTERNAL_CONTEXT_KEYS.isdisjoint(context):
            data["taskContext"] = {
                k: v for k, v in context.items() if k not in INTERNAL_CONTEXT_KEYS
            }
        return data
