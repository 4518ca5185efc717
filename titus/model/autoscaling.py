"""Scaling policies on service jobs, in the shape of Titus's AutoScalingService.

The field names are the protobuf-JSON names of Titus's `titus_autoscale_api.proto`
(wrapper types as plain values, enums by name), so a REST body and a gRPC message say the
same thing. Unknown fields are refused by name. `check_policy` holds every rule a policy
must meet, in time linear in its size, each refusal naming the field.

A stored policy (`PolicyRecord`) carries its state as Titus had it: Pending (written,
not yet carried out), Applied, Deleting (asked to go), Deleted, Error (could not be
carried out; `reason` says why).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from titus.model.job import Model
from titus.model.json_schema import WHITE_SPACE, describe_one_of_each
from titus.model.validation import FieldError, InvalidRequest, from_pydantic
from titus.model.wire import Int, Number, Switch, WholeNumber


class PolicyState(StrEnum):
    PENDING = "Pending"
    APPLIED = "Applied"
    DELETING = "Deleting"
    DELETED = "Deleted"
    ERROR = "Error"


#: States of a policy that still acts (or is about to) on its job.
LIVE_STATES = frozenset({PolicyState.PENDING, PolicyState.APPLIED, PolicyState.ERROR})


class ComparisonOperator(StrEnum):
    GE = "GreaterThanOrEqualToThreshold"
    GT = "GreaterThanThreshold"
    LT = "LessThanThreshold"
    LE = "LessThanOrEqualToThreshold"


class Statistic(StrEnum):
    SAMPLE_COUNT = "SampleCount"
    AVERAGE = "Average"
    SUM = "Sum"
    MINIMUM = "Minimum"
    MAXIMUM = "Maximum"


class AdjustmentType(StrEnum):
    CHANGE = "ChangeInCapacity"
    PERCENT = "PercentChangeInCapacity"
    EXACT = "ExactCapacity"


class Aggregation(StrEnum):
    MINIMUM = "Minimum"
    MAXIMUM = "Maximum"
    AVERAGE = "Average"


# ---- bounds -------------------------------------------------------------------------------
#: Longest cooldown a policy may ask for (Application Auto Scaling's own bound: one day).
MAX_COOLDOWN_SEC = 86_400
MAX_EVALUATION_PERIODS = 100
MIN_PERIOD_SEC, MAX_PERIOD_SEC = 10, 86_400
#: Application Auto Scaling takes at most 20 steps and 30 dimensions.
MAX_STEPS = 20
MAX_DIMENSIONS = 30
MAX_NAME = 255
MAX_ADJUSTMENT = 10_000
MAX_TARGET_VALUE = 1e12


#: A name a policy must give: not blank, at most MAX_NAME characters.
NAME: dict[str, Any] = {"pattern": f"[^{WHITE_SPACE}]", "maxLength": MAX_NAME}
COOLDOWN: dict[str, Any] = {"minimum": 0, "maximum": MAX_COOLDOWN_SEC}
#: An alarm's period: 10 or 30 seconds, or whole minutes up to a day (null: 60).
PERIOD: dict[str, Any] = {
    "allOf": [
        {
            "anyOf": [
                {"type": "null"},
                {"enum": [10, 30]},
                {"multipleOf": 60, "minimum": 60, "maximum": MAX_PERIOD_SEC},
            ]
        }
    ]
}


def _required(*names: str) -> Callable[[dict[str, Any]], None]:
    """Fields the rules require although the wire shape lets them be left out (proto3
    wrappers), so the description lists them as required, and not null (validation
    counts a null as absent)."""

    def extra(schema: dict[str, Any]) -> None:
        schema["required"] = sorted({*schema.get("required", []), *names})
        for name in names:
            field = schema["properties"][name]
            field.pop("default", None)
            branches = [b for b in field.get("anyOf", ()) if b != {"type": "null"}]
            if len(branches) == 1:
                del field["anyOf"]
                field.update(branches[0])
            elif branches:
                field["anyOf"] = branches

    return extra


class MetricDimension(Model):
    model_config = ConfigDict(json_schema_extra=_required("name", "value"))
    name: str = Field("", json_schema_extra=NAME)
    value: str = Field("", json_schema_extra=NAME)


class AlarmConfiguration(Model):
    model_config = ConfigDict(
        json_schema_extra=_required("metricNamespace", "metricName", "threshold")
    )
    actionsEnabled: Switch | None = None
    comparisonOperator: ComparisonOperator = ComparisonOperator.GE
    evaluationPeriods: Int | None = Field(
        None, json_schema_extra={"minimum": 1, "maximum": MAX_EVALUATION_PERIODS}
    )
    periodSec: WholeNumber | None = Field(None, json_schema_extra=PERIOD)
    threshold: Number | None = None
    metricNamespace: str = Field("", json_schema_extra=NAME)
    metricName: str = Field("", json_schema_extra=NAME)
    statistic: Statistic = Statistic.AVERAGE
    metricDimensions: list[MetricDimension] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_DIMENSIONS}
    )

    @property
    def periods(self) -> int:
        return self.evaluationPeriods or 1

    @property
    def period(self) -> int:
        return self.periodSec or 60


class StepAdjustments(Model):
    model_config = ConfigDict(json_schema_extra=_required("scalingAdjustment"))
    MetricIntervalLowerBound: Number | None = None
    MetricIntervalUpperBound: Number | None = None
    scalingAdjustment: Int | None = Field(
        None, json_schema_extra={"minimum": -MAX_ADJUSTMENT, "maximum": MAX_ADJUSTMENT}
    )


def _magnitude_with_percent(schema: dict[str, Any]) -> None:
    """minAdjustmentMagnitude only with adjustmentType PercentChangeInCapacity."""
    _required("stepAdjustments")(schema)
    schema["anyOf"] = [
        {
            "required": ["adjustmentType"],
            "properties": {"adjustmentType": {"const": AdjustmentType.PERCENT.value}},
        },
        {"properties": {"minAdjustmentMagnitude": {"type": "null"}}},
    ]


class StepScalingPolicy(Model):
    model_config = ConfigDict(json_schema_extra=_magnitude_with_percent)
    adjustmentType: AdjustmentType = AdjustmentType.CHANGE
    cooldownSec: Int | None = Field(None, json_schema_extra=COOLDOWN)
    minAdjustmentMagnitude: Int | None = Field(
        None, json_schema_extra={"minimum": 0, "maximum": MAX_ADJUSTMENT}
    )
    metricAggregationType: Aggregation = Aggregation.AVERAGE
    stepAdjustments: list[StepAdjustments] = Field(
        default_factory=list, json_schema_extra={"minItems": 1, "maxItems": MAX_STEPS}
    )


class StepScalingPolicyDescriptor(Model):
    model_config = ConfigDict(json_schema_extra=_required("alarmConfig", "scalingPolicy"))
    alarmConfig: AlarmConfiguration | None = None
    scalingPolicy: StepScalingPolicy | None = None


class PredefinedMetricSpecification(Model):
    predefinedMetricType: str = ""
    resourceLabel: str = ""


class CustomizedMetricSpecification(Model):
    model_config = ConfigDict(json_schema_extra=_required("metricName", "namespace"))
    dimensions: list[MetricDimension] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_DIMENSIONS}
    )
    metricName: str = Field("", json_schema_extra=NAME)
    namespace: str = Field("", json_schema_extra=NAME)
    statistic: Statistic = Statistic.AVERAGE
    unit: str = Field("", json_schema_extra={"maxLength": MAX_NAME})


#: Predefined metrics belong to AWS services and are refused: only null is taken.
NOT_SERVED: dict[str, Any] = {
    "type": "null",
    "description": "Not served: predefined metrics belong to AWS services; give "
    "customizedMetricSpecification.",
}


def _target_schema(schema: dict[str, Any]) -> None:
    _required("targetValue", "customizedMetricSpecification")(schema)
    schema["properties"]["predefinedMetricSpecification"] = NOT_SERVED


class TargetTrackingPolicyDescriptor(Model):
    model_config = ConfigDict(json_schema_extra=_target_schema)
    targetValue: Number | None = Field(
        None, json_schema_extra={"exclusiveMinimum": 0, "maximum": MAX_TARGET_VALUE}
    )
    scaleOutCooldownSec: Int | None = Field(None, json_schema_extra=COOLDOWN)
    scaleInCooldownSec: Int | None = Field(None, json_schema_extra=COOLDOWN)
    predefinedMetricSpecification: PredefinedMetricSpecification | None = None
    disableScaleIn: Switch | None = None
    customizedMetricSpecification: CustomizedMetricSpecification | None = None


def _one_kind(schema: dict[str, Any]) -> None:
    describe_one_of_each(schema, ("stepPolicyDescriptor", "targetPolicyDescriptor"))


class ScalingPolicy(Model):
    model_config = ConfigDict(json_schema_extra=_one_kind)
    stepPolicyDescriptor: StepScalingPolicyDescriptor | None = None
    targetPolicyDescriptor: TargetTrackingPolicyDescriptor | None = None

    @property
    def kind(self) -> str:
        return "step" if self.stepPolicyDescriptor is not None else "targetTracking"


def _name(value: str, path: str, errors: list[FieldError], required: bool = True) -> None:
    if required and not value.strip():
        errors.append(FieldError(path, "is required"))
    elif len(value) > MAX_NAME:
        errors.append(FieldError(path, f"must be at most {MAX_NAME} characters"))


def _cooldown(value: int | None, path: str, errors: list[FieldError]) -> None:
    if value is not None and not 0 <= value <= MAX_COOLDOWN_SEC:
        errors.append(FieldError(path, f"must be within 0..{MAX_COOLDOWN_SEC} seconds"))


def _dimensions(dims: list[MetricDimension], path: str, errors: list[FieldError]) -> None:
    if len(dims) > MAX_DIMENSIONS:
        errors.append(FieldError(path, f"must have at most {MAX_DIMENSIONS} dimensions"))
        return
    for i, d in enumerate(dims):
        _name(d.name, f"{path}[{i}].name", errors)
        _name(d.value, f"{path}[{i}].value", errors)


def _check_alarm(alarm: AlarmConfiguration | None, path: str, errors: list[FieldError]) -> None:
    if alarm is None:
        errors.append(FieldError(path, "is required"))
        return
    _name(alarm.metricNamespace, f"{path}.metricNamespace", errors)
    _name(alarm.metricName, f"{path}.metricName", errors)
    if alarm.threshold is None:
        errors.append(FieldError(f"{path}.threshold", "is required"))
    elif not math.isfinite(alarm.threshold):
        errors.append(FieldError(f"{path}.threshold", "must be a finite number"))
    periods = alarm.evaluationPeriods
    if periods is not None and not 1 <= periods <= MAX_EVALUATION_PERIODS:
        errors.append(
            FieldError(f"{path}.evaluationPeriods", f"must be within 1..{MAX_EVALUATION_PERIODS}")
        )
    period = alarm.periodSec
    if period is not None:
        if not MIN_PERIOD_SEC <= period <= MAX_PERIOD_SEC:
            errors.append(
                FieldError(
                    f"{path}.periodSec", f"must be within {MIN_PERIOD_SEC}..{MAX_PERIOD_SEC}"
                )
            )
        elif period not in (10, 30) and period % 60:
            errors.append(FieldError(f"{path}.periodSec", "must be 10, 30 or a multiple of 60"))
    _dimensions(alarm.metricDimensions, f"{path}.metricDimensions", errors)


def _check_steps(policy: StepScalingPolicy | None, path: str, errors: list[FieldError]) -> None:
    if policy is None:
        errors.append(FieldError(path, "is required"))
        return
    _cooldown(policy.cooldownSec, f"{path}.cooldownSec", errors)
    magnitude = policy.minAdjustmentMagnitude
    if magnitude is not None:
        if policy.adjustmentType != AdjustmentType.PERCENT:
            errors.append(
                FieldError(
                    f"{path}.minAdjustmentMagnitude",
                    "applies to adjustmentType PercentChangeInCapacity only",
                )
            )
        elif not 0 <= magnitude <= MAX_ADJUSTMENT:
            errors.append(
                FieldError(f"{path}.minAdjustmentMagnitude", f"must be within 0..{MAX_ADJUSTMENT}")
            )
    steps = policy.stepAdjustments
    where = f"{path}.stepAdjustments"
    if not steps:
        errors.append(FieldError(where, "must have at least one step"))
        return
    if len(steps) > MAX_STEPS:
        errors.append(FieldError(where, f"must have at most {MAX_STEPS} steps"))
        return
    previous_upper: float | None = None
    for i, step in enumerate(steps):
        at = f"{where}[{i}]"
        lower, upper = step.MetricIntervalLowerBound, step.MetricIntervalUpperBound
        adjustment = step.scalingAdjustment
        least = 0 if policy.adjustmentType == AdjustmentType.EXACT else -MAX_ADJUSTMENT
        if adjustment is None:
            errors.append(FieldError(f"{at}.scalingAdjustment", "is required"))
        elif not least <= adjustment <= MAX_ADJUSTMENT:
            errors.append(
                FieldError(f"{at}.scalingAdjustment", f"must be within {least}..{MAX_ADJUSTMENT}")
            )
        for name, bound in (
            ("MetricIntervalLowerBound", lower),
            ("MetricIntervalUpperBound", upper),
        ):
            if bound is not None and not math.isfinite(bound):
                errors.append(FieldError(f"{at}.{name}", "must be a finite number"))
        if lower is None and i > 0:
            errors.append(
                FieldError(
                    f"{at}.MetricIntervalLowerBound", "only the first step may be unbounded below"
                )
            )
        if upper is None and i < len(steps) - 1:
            errors.append(
                FieldError(
                    f"{at}.MetricIntervalUpperBound", "only the last step may be unbounded above"
                )
            )
        if lower is not None and upper is not None and lower >= upper:
            errors.append(
                FieldError(at, "MetricIntervalLowerBound must be below MetricIntervalUpperBound")
            )
        if i > 0 and previous_upper is not None and lower is not None and lower != previous_upper:
            what = "overlaps" if lower < previous_upper else "leaves a gap after"
            errors.append(
                FieldError(
                    f"{at}.MetricIntervalLowerBound",
                    f"{what} the step before (steps must be ordered, each starting where the "
                    f"one before ends: {previous_upper:g})",
                )
            )
        previous_upper = upper


def _check_target(
    target: TargetTrackingPolicyDescriptor, path: str, errors: list[FieldError]
) -> None:
    value = target.targetValue
    if value is None:
        errors.append(FieldError(f"{path}.targetValue", "is required"))
    elif not math.isfinite(value) or not 0 < value <= MAX_TARGET_VALUE:
        errors.append(FieldError(f"{path}.targetValue", "must be greater than 0"))
    _cooldown(target.scaleOutCooldownSec, f"{path}.scaleOutCooldownSec", errors)
    _cooldown(target.scaleInCooldownSec, f"{path}.scaleInCooldownSec", errors)
    custom = target.customizedMetricSpecification
    if target.predefinedMetricSpecification is not None:
        errors.append(
            FieldError(
                f"{path}.predefinedMetricSpecification",
                "is not served: predefined metrics belong to AWS services; give "
                "customizedMetricSpecification",
            )
        )
    if custom is None:
        errors.append(FieldError(f"{path}.customizedMetricSpecification", "is required"))
        return
    where = f"{path}.customizedMetricSpecification"
    _name(custom.namespace, f"{where}.namespace", errors)
    _name(custom.metricName, f"{where}.metricName", errors)
    _name(custom.unit, f"{where}.unit", errors, required=False)
    _dimensions(custom.dimensions, f"{where}.dimensions", errors)


def check_policy(policy: ScalingPolicy, path: str = "scalingPolicy") -> list[FieldError]:
    """Every broken rule of `policy`, each naming its field."""
    errors: list[FieldError] = []
    step, target = policy.stepPolicyDescriptor, policy.targetPolicyDescriptor
    if (step is None) == (target is None):
        errors.append(
            FieldError(
                path, "must have exactly one of stepPolicyDescriptor, targetPolicyDescriptor"
            )
        )
        return errors
    if step is not None:
        _check_alarm(step.alarmConfig, f"{path}.stepPolicyDescriptor.alarmConfig", errors)
        _check_steps(step.scalingPolicy, f"{path}.stepPolicyDescriptor.scalingPolicy", errors)
    if target is not None:
        _check_target(target, f"{path}.targetPolicyDescriptor", errors)
    return errors


def parse_policy(data: Any, path: str = "scalingPolicy") -> ScalingPolicy:
    """A checked policy from its JSON (InvalidRequest naming every bad field)."""
    if not isinstance(data, dict):
        raise InvalidRequest([FieldError(path, "must be an object")], "invalid scaling policy")
    try:
        policy = ScalingPolicy.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(from_pydantic(exc, path), "invalid scaling policy") from None
    errors = check_policy(policy, path)
    if errors:
        raise InvalidRequest(errors, "invalid scaling policy")
    return policy


class PolicyRecord(Model):
    """A policy as stored: what the user asked for and where the platform is with it."""

    id: str
    jobId: str
    policy: ScalingPolicy
    state: PolicyState = PolicyState.PENDING
    #: Why it is pending, or what went wrong (Error), or what removed it.
    reason: str = ""
    #: When the policy was last written by its user (ms).
    updatedAt: int = 0
    #: The store's version of the record (optimistic concurrency); not part of the API.
    version: int = 0

    def policy_json(self) -> dict[str, Any]:
        """The policy as it was given: the fields its writer set, defaults left out, as
        protobuf-JSON leaves them out."""
        return self.policy.model_dump(mode="json", exclude_unset=True)

    def encode(self) -> str:
        return json.dumps({**self.to_json(), "policy": self.policy_json()}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str, version: int) -> PolicyRecord:
        record = cls.model_validate_json(text)
        record.version = version
        return record

    def result_json(self) -> dict[str, Any]:
        """The ScalingPolicyResult of this policy, as protobuf-JSON."""
        status: dict[str, Any] = {"state": self.state.value}
        if self.reason:
            status["pendingReason"] = self.reason
        return {
            "jobId": self.jobId,
            "id": {"id": self.id},
            "scalingPolicy": self.policy_json(),
            "policyState": status,
        }
