from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import wrappers_pb2 as _wrappers_pb2
from . import titus_base_pb2 as _titus_base_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Owner(_message.Message):
    __slots__ = ("teamEmail",)
    TEAMEMAIL_FIELD_NUMBER: _ClassVar[int]
    teamEmail: str
    def __init__(self, teamEmail: _Optional[str] = ...) -> None: ...

class JobGroupInfo(_message.Message):
    __slots__ = ("stack", "detail", "sequence")
    STACK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    stack: str
    detail: str
    sequence: str
    def __init__(self, stack: _Optional[str] = ..., detail: _Optional[str] = ..., sequence: _Optional[str] = ...) -> None: ...

class Constraints(_message.Message):
    __slots__ = ("constraints", "expression")
    class ConstraintsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    constraints: _containers.ScalarMap[str, str]
    expression: str
    def __init__(self, constraints: _Optional[_Mapping[str, str]] = ..., expression: _Optional[str] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("name", "tag", "digest")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    name: str
    tag: str
    digest: str
    def __init__(self, name: _Optional[str] = ..., tag: _Optional[str] = ..., digest: _Optional[str] = ...) -> None: ...

class ContainerResources(_message.Message):
    __slots__ = ("cpu", "gpu", "memoryMB", "diskMB", "networkMbps", "allocateIP", "shmSizeMB")
    CPU_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    MEMORYMB_FIELD_NUMBER: _ClassVar[int]
    DISKMB_FIELD_NUMBER: _ClassVar[int]
    NETWORKMBPS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATEIP_FIELD_NUMBER: _ClassVar[int]
    SHMSIZEMB_FIELD_NUMBER: _ClassVar[int]
    cpu: float
    gpu: int
    memoryMB: int
    diskMB: int
    networkMbps: int
    allocateIP: bool
    shmSizeMB: int
    def __init__(self, cpu: _Optional[float] = ..., gpu: _Optional[int] = ..., memoryMB: _Optional[int] = ..., diskMB: _Optional[int] = ..., networkMbps: _Optional[int] = ..., allocateIP: _Optional[bool] = ..., shmSizeMB: _Optional[int] = ...) -> None: ...

class SecurityProfile(_message.Message):
    __slots__ = ("securityGroups", "iamRole", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SECURITYGROUPS_FIELD_NUMBER: _ClassVar[int]
    IAMROLE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    securityGroups: _containers.RepeatedScalarFieldContainer[str]
    iamRole: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, securityGroups: _Optional[_Iterable[str]] = ..., iamRole: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Container(_message.Message):
    __slots__ = ("resources", "securityProfile", "image", "attributes", "entryPoint", "command", "env", "softConstraints", "hardConstraints")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    SECURITYPROFILE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    SOFTCONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    HARDCONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    resources: ContainerResources
    securityProfile: SecurityProfile
    image: Image
    attributes: _containers.ScalarMap[str, str]
    entryPoint: _containers.RepeatedScalarFieldContainer[str]
    command: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    softConstraints: Constraints
    hardConstraints: Constraints
    def __init__(self, resources: _Optional[_Union[ContainerResources, _Mapping]] = ..., securityProfile: _Optional[_Union[SecurityProfile, _Mapping]] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., attributes: _Optional[_Mapping[str, str]] = ..., entryPoint: _Optional[_Iterable[str]] = ..., command: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., softConstraints: _Optional[_Union[Constraints, _Mapping]] = ..., hardConstraints: _Optional[_Union[Constraints, _Mapping]] = ...) -> None: ...

class Capacity(_message.Message):
    __slots__ = ("min", "max", "desired")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    DESIRED_FIELD_NUMBER: _ClassVar[int]
    min: int
    max: int
    desired: int
    def __init__(self, min: _Optional[int] = ..., max: _Optional[int] = ..., desired: _Optional[int] = ...) -> None: ...

class JobCapacityWithOptionalAttributes(_message.Message):
    __slots__ = ("min", "max", "desired")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    DESIRED_FIELD_NUMBER: _ClassVar[int]
    min: _wrappers_pb2.UInt32Value
    max: _wrappers_pb2.UInt32Value
    desired: _wrappers_pb2.UInt32Value
    def __init__(self, min: _Optional[_Union[_wrappers_pb2.UInt32Value, _Mapping]] = ..., max: _Optional[_Union[_wrappers_pb2.UInt32Value, _Mapping]] = ..., desired: _Optional[_Union[_wrappers_pb2.UInt32Value, _Mapping]] = ...) -> None: ...

class JobDisruptionBudget(_message.Message):
    __slots__ = ("selfManaged", "availabilityPercentageLimit", "unhealthyTasksLimit", "relocationLimit", "rateUnlimited", "ratePercentagePerHour", "ratePerInterval", "ratePercentagePerInterval", "timeWindows", "containerHealthProviders")
    class SelfManaged(_message.Message):
        __slots__ = ("relocationTimeMs",)
        RELOCATIONTIMEMS_FIELD_NUMBER: _ClassVar[int]
        relocationTimeMs: int
        def __init__(self, relocationTimeMs: _Optional[int] = ...) -> None: ...
    class AvailabilityPercentageLimit(_message.Message):
        __slots__ = ("percentageOfHealthyContainers",)
        PERCENTAGEOFHEALTHYCONTAINERS_FIELD_NUMBER: _ClassVar[int]
        percentageOfHealthyContainers: float
        def __init__(self, percentageOfHealthyContainers: _Optional[float] = ...) -> None: ...
    class UnhealthyTasksLimit(_message.Message):
        __slots__ = ("limitOfUnhealthyContainers",)
        LIMITOFUNHEALTHYCONTAINERS_FIELD_NUMBER: _ClassVar[int]
        limitOfUnhealthyContainers: int
        def __init__(self, limitOfUnhealthyContainers: _Optional[int] = ...) -> None: ...
    class RelocationLimit(_message.Message):
        __slots__ = ("limit",)
        LIMIT_FIELD_NUMBER: _ClassVar[int]
        limit: int
        def __init__(self, limit: _Optional[int] = ...) -> None: ...
    class RateUnlimited(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    class RatePercentagePerHour(_message.Message):
        __slots__ = ("maxPercentageOfContainersRelocatedInHour",)
        MAXPERCENTAGEOFCONTAINERSRELOCATEDINHOUR_FIELD_NUMBER: _ClassVar[int]
        maxPercentageOfContainersRelocatedInHour: float
        def __init__(self, maxPercentageOfContainersRelocatedInHour: _Optional[float] = ...) -> None: ...
    class RatePerInterval(_message.Message):
        __slots__ = ("intervalMs", "limitPerInterval")
        INTERVALMS_FIELD_NUMBER: _ClassVar[int]
        LIMITPERINTERVAL_FIELD_NUMBER: _ClassVar[int]
        intervalMs: int
        limitPerInterval: int
        def __init__(self, intervalMs: _Optional[int] = ..., limitPerInterval: _Optional[int] = ...) -> None: ...
    class RatePercentagePerInterval(_message.Message):
        __slots__ = ("intervalMs", "percentageLimitPerInterval")
        INTERVALMS_FIELD_NUMBER: _ClassVar[int]
        PERCENTAGELIMITPERINTERVAL_FIELD_NUMBER: _ClassVar[int]
        intervalMs: int
        percentageLimitPerInterval: float
        def __init__(self, intervalMs: _Optional[int] = ..., percentageLimitPerInterval: _Optional[float] = ...) -> None: ...
    SELFMANAGED_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITYPERCENTAGELIMIT_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHYTASKSLIMIT_FIELD_NUMBER: _ClassVar[int]
    RELOCATIONLIMIT_FIELD_NUMBER: _ClassVar[int]
    RATEUNLIMITED_FIELD_NUMBER: _ClassVar[int]
    RATEPERCENTAGEPERHOUR_FIELD_NUMBER: _ClassVar[int]
    RATEPERINTERVAL_FIELD_NUMBER: _ClassVar[int]
    RATEPERCENTAGEPERINTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIMEWINDOWS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERHEALTHPROVIDERS_FIELD_NUMBER: _ClassVar[int]
    selfManaged: JobDisruptionBudget.SelfManaged
    availabilityPercentageLimit: JobDisruptionBudget.AvailabilityPercentageLimit
    unhealthyTasksLimit: JobDisruptionBudget.UnhealthyTasksLimit
    relocationLimit: JobDisruptionBudget.RelocationLimit
    rateUnlimited: JobDisruptionBudget.RateUnlimited
    ratePercentagePerHour: JobDisruptionBudget.RatePercentagePerHour
    ratePerInterval: JobDisruptionBudget.RatePerInterval
    ratePercentagePerInterval: JobDisruptionBudget.RatePercentagePerInterval
    timeWindows: _containers.RepeatedCompositeFieldContainer[_titus_base_pb2.TimeWindow]
    containerHealthProviders: _containers.RepeatedCompositeFieldContainer[_titus_base_pb2.ContainerHealthProvider]
    def __init__(self, selfManaged: _Optional[_Union[JobDisruptionBudget.SelfManaged, _Mapping]] = ..., availabilityPercentageLimit: _Optional[_Union[JobDisruptionBudget.AvailabilityPercentageLimit, _Mapping]] = ..., unhealthyTasksLimit: _Optional[_Union[JobDisruptionBudget.UnhealthyTasksLimit, _Mapping]] = ..., relocationLimit: _Optional[_Union[JobDisruptionBudget.RelocationLimit, _Mapping]] = ..., rateUnlimited: _Optional[_Union[JobDisruptionBudget.RateUnlimited, _Mapping]] = ..., ratePercentagePerHour: _Optional[_Union[JobDisruptionBudget.RatePercentagePerHour, _Mapping]] = ..., ratePerInterval: _Optional[_Union[JobDisruptionBudget.RatePerInterval, _Mapping]] = ..., ratePercentagePerInterval: _Optional[_Union[JobDisruptionBudget.RatePercentagePerInterval, _Mapping]] = ..., timeWindows: _Optional[_Iterable[_Union[_titus_base_pb2.TimeWindow, _Mapping]]] = ..., containerHealthProviders: _Optional[_Iterable[_Union[_titus_base_pb2.ContainerHealthProvider, _Mapping]]] = ...) -> None: ...

class BatchJobSpec(_message.Message):
    __slots__ = ("size", "runtimeLimitSec", "retryPolicy", "retryOnRuntimeLimit")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    RUNTIMELIMITSEC_FIELD_NUMBER: _ClassVar[int]
    RETRYPOLICY_FIELD_NUMBER: _ClassVar[int]
    RETRYONRUNTIMELIMIT_FIELD_NUMBER: _ClassVar[int]
    size: int
    runtimeLimitSec: int
    retryPolicy: _titus_base_pb2.RetryPolicy
    retryOnRuntimeLimit: bool
    def __init__(self, size: _Optional[int] = ..., runtimeLimitSec: _Optional[int] = ..., retryPolicy: _Optional[_Union[_titus_base_pb2.RetryPolicy, _Mapping]] = ..., retryOnRuntimeLimit: _Optional[bool] = ...) -> None: ...

class MigrationPolicy(_message.Message):
    __slots__ = ("systemDefault", "selfManaged")
    class SystemDefault(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    class SelfManaged(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    SYSTEMDEFAULT_FIELD_NUMBER: _ClassVar[int]
    SELFMANAGED_FIELD_NUMBER: _ClassVar[int]
    systemDefault: MigrationPolicy.SystemDefault
    selfManaged: MigrationPolicy.SelfManaged
    def __init__(self, systemDefault: _Optional[_Union[MigrationPolicy.SystemDefault, _Mapping]] = ..., selfManaged: _Optional[_Union[MigrationPolicy.SelfManaged, _Mapping]] = ...) -> None: ...

class ServiceJobSpec(_message.Message):
    __slots__ = ("capacity", "enabled", "retryPolicy", "migrationPolicy", "serviceJobProcesses")
    class ServiceJobProcesses(_message.Message):
        __slots__ = ("disableIncreaseDesired", "disableDecreaseDesired")
        DISABLEINCREASEDESIRED_FIELD_NUMBER: _ClassVar[int]
        DISABLEDECREASEDESIRED_FIELD_NUMBER: _ClassVar[int]
        disableIncreaseDesired: bool
        disableDecreaseDesired: bool
        def __init__(self, disableIncreaseDesired: _Optional[bool] = ..., disableDecreaseDesired: _Optional[bool] = ...) -> None: ...
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    RETRYPOLICY_FIELD_NUMBER: _ClassVar[int]
    MIGRATIONPOLICY_FIELD_NUMBER: _ClassVar[int]
    SERVICEJOBPROCESSES_FIELD_NUMBER: _ClassVar[int]
    capacity: Capacity
    enabled: bool
    retryPolicy: _titus_base_pb2.RetryPolicy
    migrationPolicy: MigrationPolicy
    serviceJobProcesses: ServiceJobSpec.ServiceJobProcesses
    def __init__(self, capacity: _Optional[_Union[Capacity, _Mapping]] = ..., enabled: _Optional[bool] = ..., retryPolicy: _Optional[_Union[_titus_base_pb2.RetryPolicy, _Mapping]] = ..., migrationPolicy: _Optional[_Union[MigrationPolicy, _Mapping]] = ..., serviceJobProcesses: _Optional[_Union[ServiceJobSpec.ServiceJobProcesses, _Mapping]] = ...) -> None: ...

class JobDescriptor(_message.Message):
    __slots__ = ("owner", "applicationName", "capacityGroup", "jobGroupInfo", "attributes", "container", "batch", "service", "disruptionBudget")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OWNER_FIELD_NUMBER: _ClassVar[int]
    APPLICATIONNAME_FIELD_NUMBER: _ClassVar[int]
    CAPACITYGROUP_FIELD_NUMBER: _ClassVar[int]
    JOBGROUPINFO_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    DISRUPTIONBUDGET_FIELD_NUMBER: _ClassVar[int]
    owner: Owner
    applicationName: str
    capacityGroup: str
    jobGroupInfo: JobGroupInfo
    attributes: _containers.ScalarMap[str, str]
    container: Container
    batch: BatchJobSpec
    service: ServiceJobSpec
    disruptionBudget: JobDisruptionBudget
    def __init__(self, owner: _Optional[_Union[Owner, _Mapping]] = ..., applicationName: _Optional[str] = ..., capacityGroup: _Optional[str] = ..., jobGroupInfo: _Optional[_Union[JobGroupInfo, _Mapping]] = ..., attributes: _Optional[_Mapping[str, str]] = ..., container: _Optional[_Union[Container, _Mapping]] = ..., batch: _Optional[_Union[BatchJobSpec, _Mapping]] = ..., service: _Optional[_Union[ServiceJobSpec, _Mapping]] = ..., disruptionBudget: _Optional[_Union[JobDisruptionBudget, _Mapping]] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("state", "reasonCode", "reasonMessage", "timestamp")
    class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        Accepted: _ClassVar[JobStatus.JobState]
        KillInitiated: _ClassVar[JobStatus.JobState]
        Finished: _ClassVar[JobStatus.JobState]
    Accepted: JobStatus.JobState
    KillInitiated: JobStatus.JobState
    Finished: JobStatus.JobState
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASONCODE_FIELD_NUMBER: _ClassVar[int]
    REASONMESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    state: JobStatus.JobState
    reasonCode: str
    reasonMessage: str
    timestamp: int
    def __init__(self, state: _Optional[_Union[JobStatus.JobState, str]] = ..., reasonCode: _Optional[str] = ..., reasonMessage: _Optional[str] = ..., timestamp: _Optional[int] = ...) -> None: ...

class TaskStatus(_message.Message):
    __slots__ = ("state", "reasonCode", "reasonMessage", "timestamp")
    class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        Accepted: _ClassVar[TaskStatus.TaskState]
        Launched: _ClassVar[TaskStatus.TaskState]
        StartInitiated: _ClassVar[TaskStatus.TaskState]
        Started: _ClassVar[TaskStatus.TaskState]
        KillInitiated: _ClassVar[TaskStatus.TaskState]
        Disconnected: _ClassVar[TaskStatus.TaskState]
        Finished: _ClassVar[TaskStatus.TaskState]
    Accepted: TaskStatus.TaskState
    Launched: TaskStatus.TaskState
    StartInitiated: TaskStatus.TaskState
    Started: TaskStatus.TaskState
    KillInitiated: TaskStatus.TaskState
    Disconnected: TaskStatus.TaskState
    Finished: TaskStatus.TaskState
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASONCODE_FIELD_NUMBER: _ClassVar[int]
    REASONMESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    state: TaskStatus.TaskState
    reasonCode: str
    reasonMessage: str
    timestamp: int
    def __init__(self, state: _Optional[_Union[TaskStatus.TaskState, str]] = ..., reasonCode: _Optional[str] = ..., reasonMessage: _Optional[str] = ..., timestamp: _Optional[int] = ...) -> None: ...

class LogLocation(_message.Message):
    __slots__ = ("ui", "liveStream", "s3")
    class UI(_message.Message):
        __slots__ = ("url",)
        URL_FIELD_NUMBER: _ClassVar[int]
        url: str
        def __init__(self, url: _Optional[str] = ...) -> None: ...
    class LiveStream(_message.Message):
        __slots__ = ("url",)
        URL_FIELD_NUMBER: _ClassVar[int]
        url: str
        def __init__(self, url: _Optional[str] = ...) -> None: ...
    class S3(_message.Message):
        __slots__ = ("accountName", "accountId", "region", "bucket", "key")
        ACCOUNTNAME_FIELD_NUMBER: _ClassVar[int]
        ACCOUNTID_FIELD_NUMBER: _ClassVar[int]
        REGION_FIELD_NUMBER: _ClassVar[int]
        BUCKET_FIELD_NUMBER: _ClassVar[int]
        KEY_FIELD_NUMBER: _ClassVar[int]
        accountName: str
        accountId: str
        region: str
        bucket: str
        key: str
        def __init__(self, accountName: _Optional[str] = ..., accountId: _Optional[str] = ..., region: _Optional[str] = ..., bucket: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...
    UI_FIELD_NUMBER: _ClassVar[int]
    LIVESTREAM_FIELD_NUMBER: _ClassVar[int]
    S3_FIELD_NUMBER: _ClassVar[int]
    ui: LogLocation.UI
    liveStream: LogLocation.LiveStream
    s3: LogLocation.S3
    def __init__(self, ui: _Optional[_Union[LogLocation.UI, _Mapping]] = ..., liveStream: _Optional[_Union[LogLocation.LiveStream, _Mapping]] = ..., s3: _Optional[_Union[LogLocation.S3, _Mapping]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "jobId", "taskContext", "status", "statusHistory", "logLocation", "attributes")
    class TaskContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    JOBID_FIELD_NUMBER: _ClassVar[int]
    TASKCONTEXT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUSHISTORY_FIELD_NUMBER: _ClassVar[int]
    LOGLOCATION_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    jobId: str
    taskContext: _containers.ScalarMap[str, str]
    status: TaskStatus
    statusHistory: _containers.RepeatedCompositeFieldContainer[TaskStatus]
    logLocation: LogLocation
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., jobId: _Optional[str] = ..., taskContext: _Optional[_Mapping[str, str]] = ..., status: _Optional[_Union[TaskStatus, _Mapping]] = ..., statusHistory: _Optional[_Iterable[_Union[TaskStatus, _Mapping]]] = ..., logLocation: _Optional[_Union[LogLocation, _Mapping]] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "jobDescriptor", "status", "statusHistory")
    ID_FIELD_NUMBER: _ClassVar[int]
    JOBDESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUSHISTORY_FIELD_NUMBER: _ClassVar[int]
    id: str
    jobDescriptor: JobDescriptor
    status: JobStatus
    statusHistory: _containers.RepeatedCompositeFieldContainer[JobStatus]
    def __init__(self, id: _Optional[str] = ..., jobDescriptor: _Optional[_Union[JobDescriptor, _Mapping]] = ..., status: _Optional[_Union[JobStatus, _Mapping]] = ..., statusHistory: _Optional[_Iterable[_Union[JobStatus, _Mapping]]] = ...) -> None: ...

class JobChangeNotification(_message.Message):
    __slots__ = ("jobUpdate", "taskUpdate", "snapshotEnd", "keepAliveResponse", "timestamp")
    class JobUpdate(_message.Message):
        __slots__ = ("job", "archived")
        JOB_FIELD_NUMBER: _ClassVar[int]
        ARCHIVED_FIELD_NUMBER: _ClassVar[int]
        job: Job
        archived: bool
        def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., archived: _Optional[bool] = ...) -> None: ...
    class TaskUpdate(_message.Message):
        __slots__ = ("task", "movedFromAnotherJob", "archived")
        TASK_FIELD_NUMBER: _ClassVar[int]
        MOVEDFROMANOTHERJOB_FIELD_NUMBER: _ClassVar[int]
        ARCHIVED_FIELD_NUMBER: _ClassVar[int]
        task: Task
        movedFromAnotherJob: bool
        archived: bool
        def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., movedFromAnotherJob: _Optional[bool] = ..., archived: _Optional[bool] = ...) -> None: ...
    class SnapshotEnd(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    JOBUPDATE_FIELD_NUMBER: _ClassVar[int]
    TASKUPDATE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTEND_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVERESPONSE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    jobUpdate: JobChangeNotification.JobUpdate
    taskUpdate: JobChangeNotification.TaskUpdate
    snapshotEnd: JobChangeNotification.SnapshotEnd
    keepAliveResponse: _titus_base_pb2.KeepAliveResponse
    timestamp: int
    def __init__(self, jobUpdate: _Optional[_Union[JobChangeNotification.JobUpdate, _Mapping]] = ..., taskUpdate: _Optional[_Union[JobChangeNotification.TaskUpdate, _Mapping]] = ..., snapshotEnd: _Optional[_Union[JobChangeNotification.SnapshotEnd, _Mapping]] = ..., keepAliveResponse: _Optional[_Union[_titus_base_pb2.KeepAliveResponse, _Mapping]] = ..., timestamp: _Optional[int] = ...) -> None: ...

class JobId(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class JobQuery(_message.Message):
    __slots__ = ("page", "filteringCriteria", "fields")
    class FilteringCriteriaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAGE_FIELD_NUMBER: _ClassVar[int]
    FILTERINGCRITERIA_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    page: _titus_base_pb2.Page
    filteringCriteria: _containers.ScalarMap[str, str]
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, page: _Optional[_Union[_titus_base_pb2.Page, _Mapping]] = ..., filteringCriteria: _Optional[_Mapping[str, str]] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class JobQueryResult(_message.Message):
    __slots__ = ("items", "pagination")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Job]
    pagination: _titus_base_pb2.Pagination
    def __init__(self, items: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., pagination: _Optional[_Union[_titus_base_pb2.Pagination, _Mapping]] = ...) -> None: ...

class ObserveJobsQuery(_message.Message):
    __slots__ = ("filteringCriteria", "jobFields", "taskFields")
    class FilteringCriteriaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FILTERINGCRITERIA_FIELD_NUMBER: _ClassVar[int]
    JOBFIELDS_FIELD_NUMBER: _ClassVar[int]
    TASKFIELDS_FIELD_NUMBER: _ClassVar[int]
    filteringCriteria: _containers.ScalarMap[str, str]
    jobFields: _containers.RepeatedScalarFieldContainer[str]
    taskFields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, filteringCriteria: _Optional[_Mapping[str, str]] = ..., jobFields: _Optional[_Iterable[str]] = ..., taskFields: _Optional[_Iterable[str]] = ...) -> None: ...

class ObserveJobsWithKeepAliveRequest(_message.Message):
    __slots__ = ("query", "keepAliveRequest")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVEREQUEST_FIELD_NUMBER: _ClassVar[int]
    query: ObserveJobsQuery
    keepAliveRequest: _titus_base_pb2.KeepAliveRequest
    def __init__(self, query: _Optional[_Union[ObserveJobsQuery, _Mapping]] = ..., keepAliveRequest: _Optional[_Union[_titus_base_pb2.KeepAliveRequest, _Mapping]] = ...) -> None: ...

class JobCapacityUpdate(_message.Message):
    __slots__ = ("jobId", "Capacity")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    jobId: str
    Capacity: Capacity
    def __init__(self, jobId: _Optional[str] = ..., Capacity: _Optional[_Union[Capacity, _Mapping]] = ...) -> None: ...

class JobCapacityUpdateWithOptionalAttributes(_message.Message):
    __slots__ = ("jobId", "jobCapacityWithOptionalAttributes")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    JOBCAPACITYWITHOPTIONALATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    jobId: str
    jobCapacityWithOptionalAttributes: JobCapacityWithOptionalAttributes
    def __init__(self, jobId: _Optional[str] = ..., jobCapacityWithOptionalAttributes: _Optional[_Union[JobCapacityWithOptionalAttributes, _Mapping]] = ...) -> None: ...

class JobStatusUpdate(_message.Message):
    __slots__ = ("id", "enableStatus")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENABLESTATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    enableStatus: bool
    def __init__(self, id: _Optional[str] = ..., enableStatus: _Optional[bool] = ...) -> None: ...

class JobProcessesUpdate(_message.Message):
    __slots__ = ("jobId", "serviceJobProcesses")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    SERVICEJOBPROCESSES_FIELD_NUMBER: _ClassVar[int]
    jobId: str
    serviceJobProcesses: ServiceJobSpec.ServiceJobProcesses
    def __init__(self, jobId: _Optional[str] = ..., serviceJobProcesses: _Optional[_Union[ServiceJobSpec.ServiceJobProcesses, _Mapping]] = ...) -> None: ...

class JobDisruptionBudgetUpdate(_message.Message):
    __slots__ = ("jobId", "disruptionBudget")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    DISRUPTIONBUDGET_FIELD_NUMBER: _ClassVar[int]
    jobId: str
    disruptionBudget: JobDisruptionBudget
    def __init__(self, jobId: _Optional[str] = ..., disruptionBudget: _Optional[_Union[JobDisruptionBudget, _Mapping]] = ...) -> None: ...

class JobAttributesUpdate(_message.Message):
    __slots__ = ("jobId", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOBID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    jobId: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, jobId: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class JobAttributesDeleteRequest(_message.Message):
    __slots__ = ("jobId", "keys")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    jobId: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, jobId: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskId(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class TaskQuery(_message.Message):
    __slots__ = ("page", "filteringCriteria", "fields")
    class FilteringCriteriaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAGE_FIELD_NUMBER: _ClassVar[int]
    FILTERINGCRITERIA_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    page: _titus_base_pb2.Page
    filteringCriteria: _containers.ScalarMap[str, str]
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, page: _Optional[_Union[_titus_base_pb2.Page, _Mapping]] = ..., filteringCriteria: _Optional[_Mapping[str, str]] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskQueryResult(_message.Message):
    __slots__ = ("items", "pagination")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Task]
    pagination: _titus_base_pb2.Pagination
    def __init__(self, items: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., pagination: _Optional[_Union[_titus_base_pb2.Pagination, _Mapping]] = ...) -> None: ...

class TaskKillRequest(_message.Message):
    __slots__ = ("taskId", "shrink", "preventMinSizeUpdate")
    TASKID_FIELD_NUMBER: _ClassVar[int]
    SHRINK_FIELD_NUMBER: _ClassVar[int]
    PREVENTMINSIZEUPDATE_FIELD_NUMBER: _ClassVar[int]
    taskId: str
    shrink: bool
    preventMinSizeUpdate: bool
    def __init__(self, taskId: _Optional[str] = ..., shrink: _Optional[bool] = ..., preventMinSizeUpdate: _Optional[bool] = ...) -> None: ...

class TaskAttributesUpdate(_message.Message):
    __slots__ = ("taskId", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASKID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    taskId: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, taskId: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TaskAttributesDeleteRequest(_message.Message):
    __slots__ = ("taskId", "keys")
    TASKID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    taskId: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, taskId: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskMoveRequest(_message.Message):
    __slots__ = ("sourceJobId", "targetJobId", "taskId")
    SOURCEJOBID_FIELD_NUMBER: _ClassVar[int]
    TARGETJOBID_FIELD_NUMBER: _ClassVar[int]
    TASKID_FIELD_NUMBER: _ClassVar[int]
    sourceJobId: str
    targetJobId: str
    taskId: str
    def __init__(self, sourceJobId: _Optional[str] = ..., targetJobId: _Optional[str] = ..., taskId: _Optional[str] = ...) -> None: ...
