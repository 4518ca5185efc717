from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import wrappers_pb2 as _wrappers_pb2
from . import titus_job_api_pb2 as _titus_job_api_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AlarmConfiguration(_message.Message):
    __slots__ = ("actionsEnabled", "comparisonOperator", "evaluationPeriods", "periodSec", "threshold", "metricNamespace", "metricName", "statistic", "metricDimensions")
    class ComparisonOperator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        GreaterThanOrEqualToThreshold: _ClassVar[AlarmConfiguration.ComparisonOperator]
        GreaterThanThreshold: _ClassVar[AlarmConfiguration.ComparisonOperator]
        LessThanThreshold: _ClassVar[AlarmConfiguration.ComparisonOperator]
        LessThanOrEqualToThreshold: _ClassVar[AlarmConfiguration.ComparisonOperator]
    GreaterThanOrEqualToThreshold: AlarmConfiguration.ComparisonOperator
    GreaterThanThreshold: AlarmConfiguration.ComparisonOperator
    LessThanThreshold: AlarmConfiguration.ComparisonOperator
    LessThanOrEqualToThreshold: AlarmConfiguration.ComparisonOperator
    class Statistic(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SampleCount: _ClassVar[AlarmConfiguration.Statistic]
        Average: _ClassVar[AlarmConfiguration.Statistic]
        Sum: _ClassVar[AlarmConfiguration.Statistic]
        Minimum: _ClassVar[AlarmConfiguration.Statistic]
        Maximum: _ClassVar[AlarmConfiguration.Statistic]
    SampleCount: AlarmConfiguration.Statistic
    Average: AlarmConfiguration.Statistic
    Sum: AlarmConfiguration.Statistic
    Minimum: AlarmConfiguration.Statistic
    Maximum: AlarmConfiguration.Statistic
    ACTIONSENABLED_FIELD_NUMBER: _ClassVar[int]
    COMPARISONOPERATOR_FIELD_NUMBER: _ClassVar[int]
    EVALUATIONPERIODS_FIELD_NUMBER: _ClassVar[int]
    PERIODSEC_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    METRICNAMESPACE_FIELD_NUMBER: _ClassVar[int]
    METRICNAME_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    METRICDIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    actionsEnabled: _wrappers_pb2.BoolValue
    comparisonOperator: AlarmConfiguration.ComparisonOperator
    evaluationPeriods: _wrappers_pb2.Int32Value
    periodSec: _wrappers_pb2.Int32Value
    threshold: _wrappers_pb2.DoubleValue
    metricNamespace: str
    metricName: str
    statistic: AlarmConfiguration.Statistic
    metricDimensions: _containers.RepeatedCompositeFieldContainer[MetricDimension]
    def __init__(self, actionsEnabled: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., comparisonOperator: _Optional[_Union[AlarmConfiguration.ComparisonOperator, str]] = ..., evaluationPeriods: _Optional[_Union[_wrappers_pb2.Int32Value, _Mapping]] = ..., periodSec: _Optional[_Union[_wrappers_pb2.Int32Value, _Mapping]] = ..., threshold: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., metricNamespace: _Optional[str] = ..., metricName: _Optional[str] = ..., statistic: _Optional[_Union[AlarmConfiguration.Statistic, str]] = ..., metricDimensions: _Optional[_Iterable[_Union[MetricDimension, _Mapping]]] = ...) -> None: ...

class StepAdjustments(_message.Message):
    __slots__ = ("MetricIntervalLowerBound", "MetricIntervalUpperBound", "scalingAdjustment")
    METRICINTERVALLOWERBOUND_FIELD_NUMBER: _ClassVar[int]
    METRICINTERVALUPPERBOUND_FIELD_NUMBER: _ClassVar[int]
    SCALINGADJUSTMENT_FIELD_NUMBER: _ClassVar[int]
    MetricIntervalLowerBound: _wrappers_pb2.DoubleValue
    MetricIntervalUpperBound: _wrappers_pb2.DoubleValue
    scalingAdjustment: _wrappers_pb2.Int32Value
    def __init__(self, MetricIntervalLowerBound: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., MetricIntervalUpperBound: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., scalingAdjustment: _Optional[_Union[_wrappers_pb2.Int32Value, _Mapping]] = ...) -> None: ...

class StepScalingPolicy(_message.Message):
    __slots__ = ("adjustmentType", "cooldownSec", "minAdjustmentMagnitude", "metricAggregationType", "stepAdjustments")
    class AdjustmentType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ChangeInCapacity: _ClassVar[StepScalingPolicy.AdjustmentType]
        PercentChangeInCapacity: _ClassVar[StepScalingPolicy.AdjustmentType]
        ExactCapacity: _ClassVar[StepScalingPolicy.AdjustmentType]
    ChangeInCapacity: StepScalingPolicy.AdjustmentType
    PercentChangeInCapacity: StepScalingPolicy.AdjustmentType
    ExactCapacity: StepScalingPolicy.AdjustmentType
    class MetricAggregationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        Minimum: _ClassVar[StepScalingPolicy.MetricAggregationType]
        Maximum: _ClassVar[StepScalingPolicy.MetricAggregationType]
        Average: _ClassVar[StepScalingPolicy.MetricAggregationType]
    Minimum: StepScalingPolicy.MetricAggregationType
    Maximum: StepScalingPolicy.MetricAggregationType
    Average: StepScalingPolicy.MetricAggregationType
    ADJUSTMENTTYPE_FIELD_NUMBER: _ClassVar[int]
    COOLDOWNSEC_FIELD_NUMBER: _ClassVar[int]
    MINADJUSTMENTMAGNITUDE_FIELD_NUMBER: _ClassVar[int]
    METRICAGGREGATIONTYPE_FIELD_NUMBER: _ClassVar[int]
    STEPADJUSTMENTS_FIELD_NUMBER: _ClassVar[int]
    adjustmentType: StepScalingPolicy.AdjustmentType
    cooldownSec: _wrappers_pb2.Int32Value
    minAdjustmentMagnitude: _wrappers_pb2.Int64Value
    metricAggregationType: StepScalingPolicy.MetricAggregationType
    stepAdjustments: _containers.RepeatedCompositeFieldContainer[StepAdjustments]
    def __init__(self, adjustmentType: _Optional[_Union[StepScalingPolicy.AdjustmentType, str]] = ..., cooldownSec: _Optional[_Union[_wrappers_pb2.Int32Value, _Mapping]] = ..., minAdjustmentMagnitude: _Optional[_Union[_wrappers_pb2.Int64Value, _Mapping]] = ..., metricAggregationType: _Optional[_Union[StepScalingPolicy.MetricAggregationType, str]] = ..., stepAdjustments: _Optional[_Iterable[_Union[StepAdjustments, _Mapping]]] = ...) -> None: ...

class StepScalingPolicyDescriptor(_message.Message):
    __slots__ = ("alarmConfig", "scalingPolicy")
    ALARMCONFIG_FIELD_NUMBER: _ClassVar[int]
    SCALINGPOLICY_FIELD_NUMBER: _ClassVar[int]
    alarmConfig: AlarmConfiguration
    scalingPolicy: StepScalingPolicy
    def __init__(self, alarmConfig: _Optional[_Union[AlarmConfiguration, _Mapping]] = ..., scalingPolicy: _Optional[_Union[StepScalingPolicy, _Mapping]] = ...) -> None: ...

class PredefinedMetricSpecification(_message.Message):
    __slots__ = ("predefinedMetricType", "resourceLabel")
    PREDEFINEDMETRICTYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCELABEL_FIELD_NUMBER: _ClassVar[int]
    predefinedMetricType: str
    resourceLabel: str
    def __init__(self, predefinedMetricType: _Optional[str] = ..., resourceLabel: _Optional[str] = ...) -> None: ...

class MetricDimension(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class CustomizedMetricSpecification(_message.Message):
    __slots__ = ("dimensions", "metricName", "namespace", "statistic", "unit")
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    METRICNAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    dimensions: _containers.RepeatedCompositeFieldContainer[MetricDimension]
    metricName: str
    namespace: str
    statistic: AlarmConfiguration.Statistic
    unit: str
    def __init__(self, dimensions: _Optional[_Iterable[_Union[MetricDimension, _Mapping]]] = ..., metricName: _Optional[str] = ..., namespace: _Optional[str] = ..., statistic: _Optional[_Union[AlarmConfiguration.Statistic, str]] = ..., unit: _Optional[str] = ...) -> None: ...

class TargetTrackingPolicyDescriptor(_message.Message):
    __slots__ = ("targetValue", "scaleOutCooldownSec", "scaleInCooldownSec", "predefinedMetricSpecification", "disableScaleIn", "customizedMetricSpecification")
    TARGETVALUE_FIELD_NUMBER: _ClassVar[int]
    SCALEOUTCOOLDOWNSEC_FIELD_NUMBER: _ClassVar[int]
    SCALEINCOOLDOWNSEC_FIELD_NUMBER: _ClassVar[int]
    PREDEFINEDMETRICSPECIFICATION_FIELD_NUMBER: _ClassVar[int]
    DISABLESCALEIN_FIELD_NUMBER: _ClassVar[int]
    CUSTOMIZEDMETRICSPECIFICATION_FIELD_NUMBER: _ClassVar[int]
    targetValue: _wrappers_pb2.DoubleValue
    scaleOutCooldownSec: _wrappers_pb2.Int32Value
    scaleInCooldownSec: _wrappers_pb2.Int32Value
    predefinedMetricSpecification: PredefinedMetricSpecification
    disableScaleIn: _wrappers_pb2.BoolValue
    customizedMetricSpecification: CustomizedMetricSpecification
    def __init__(self, targetValue: _Optional[_Union[_wrappers_pb2.DoubleValue, _Mapping]] = ..., scaleOutCooldownSec: _Optional[_Union[_wrappers_pb2.Int32Value, _Mapping]] = ..., scaleInCooldownSec: _Optional[_Union[_wrappers_pb2.Int32Value, _Mapping]] = ..., predefinedMetricSpecification: _Optional[_Union[PredefinedMetricSpecification, _Mapping]] = ..., disableScaleIn: _Optional[_Union[_wrappers_pb2.BoolValue, _Mapping]] = ..., customizedMetricSpecification: _Optional[_Union[CustomizedMetricSpecification, _Mapping]] = ...) -> None: ...

class ScalingPolicy(_message.Message):
    __slots__ = ("stepPolicyDescriptor", "targetPolicyDescriptor")
    STEPPOLICYDESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    TARGETPOLICYDESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    stepPolicyDescriptor: StepScalingPolicyDescriptor
    targetPolicyDescriptor: TargetTrackingPolicyDescriptor
    def __init__(self, stepPolicyDescriptor: _Optional[_Union[StepScalingPolicyDescriptor, _Mapping]] = ..., targetPolicyDescriptor: _Optional[_Union[TargetTrackingPolicyDescriptor, _Mapping]] = ...) -> None: ...

class ScalingPolicyID(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ScalingPolicyStatus(_message.Message):
    __slots__ = ("state", "pendingReason")
    class ScalingPolicyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        Pending: _ClassVar[ScalingPolicyStatus.ScalingPolicyState]
        Applied: _ClassVar[ScalingPolicyStatus.ScalingPolicyState]
        Deleting: _ClassVar[ScalingPolicyStatus.ScalingPolicyState]
        Deleted: _ClassVar[ScalingPolicyStatus.ScalingPolicyState]
        Error: _ClassVar[ScalingPolicyStatus.ScalingPolicyState]
    Pending: ScalingPolicyStatus.ScalingPolicyState
    Applied: ScalingPolicyStatus.ScalingPolicyState
    Deleting: ScalingPolicyStatus.ScalingPolicyState
    Deleted: ScalingPolicyStatus.ScalingPolicyState
    Error: ScalingPolicyStatus.ScalingPolicyState
    STATE_FIELD_NUMBER: _ClassVar[int]
    PENDINGREASON_FIELD_NUMBER: _ClassVar[int]
    state: ScalingPolicyStatus.ScalingPolicyState
    pendingReason: str
    def __init__(self, state: _Optional[_Union[ScalingPolicyStatus.ScalingPolicyState, str]] = ..., pendingReason: _Optional[str] = ...) -> None: ...

class ScalingPolicyResult(_message.Message):
    __slots__ = ("jobId", "id", "scalingPolicy", "policyState")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SCALINGPOLICY_FIELD_NUMBER: _ClassVar[int]
    POLICYSTATE_FIELD_NUMBER: _ClassVar[int]
    jobId: str
    id: ScalingPolicyID
    scalingPolicy: ScalingPolicy
    policyState: ScalingPolicyStatus
    def __init__(self, jobId: _Optional[str] = ..., id: _Optional[_Union[ScalingPolicyID, _Mapping]] = ..., scalingPolicy: _Optional[_Union[ScalingPolicy, _Mapping]] = ..., policyState: _Optional[_Union[ScalingPolicyStatus, _Mapping]] = ...) -> None: ...

class GetPolicyResult(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScalingPolicyResult]
    def __init__(self, items: _Optional[_Iterable[_Union[ScalingPolicyResult, _Mapping]]] = ...) -> None: ...

class PutPolicyRequest(_message.Message):
    __slots__ = ("jobId", "scalingPolicy")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    SCALINGPOLICY_FIELD_NUMBER: _ClassVar[int]
    jobId: str
    scalingPolicy: ScalingPolicy
    def __init__(self, jobId: _Optional[str] = ..., scalingPolicy: _Optional[_Union[ScalingPolicy, _Mapping]] = ...) -> None: ...

class UpdatePolicyRequest(_message.Message):
    __slots__ = ("policyId", "scalingPolicy")
    POLICYID_FIELD_NUMBER: _ClassVar[int]
    SCALINGPOLICY_FIELD_NUMBER: _ClassVar[int]
    policyId: ScalingPolicyID
    scalingPolicy: ScalingPolicy
    def __init__(self, policyId: _Optional[_Union[ScalingPolicyID, _Mapping]] = ..., scalingPolicy: _Optional[_Union[ScalingPolicy, _Mapping]] = ...) -> None: ...

class DeletePolicyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: ScalingPolicyID
    def __init__(self, id: _Optional[_Union[ScalingPolicyID, _Mapping]] = ...) -> None: ...
