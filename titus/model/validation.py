"""Validation of a job descriptor: every problem found, each named by its JSON path.

A client that sends a bad descriptor gets the whole list at once rather than one error per
round trip. Shape errors (types, unknown fields) come from the model; rules that span
fields come from here.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from titus.model.job import (
    BUDGET_POLICIES,
    BUDGET_RATES,
    HEALTH_CHECK_PROVIDER,
    WEEKDAYS,
    DisruptionBudget,
    JobDescriptor,
    known_time_zones,
)

#: Grammars of names, each matched whole (`fullmatch`: with `match`, "$" lets a trailing
#: line break through into logs, labels and environments). The OpenAPI description
#: states the same patterns (titus/api/descriptor_schema.py).
APP_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
IMAGE_NAME = re.compile(r"^[a-zA-Z0-9./_-]+$")
IMAGE_TAG = re.compile(r"^[a-zA-Z0-9._-]+$")
IMAGE_DIGEST = re.compile(r"^[a-zA-Z0-9_+.-]+:[0-9a-fA-F]{32,}$")
SECURITY_GROUP = re.compile(r"^sg-[0-9a-zA-Z]+$")
IAM_ROLE_NAME = re.compile(r"^[A-Za-z0-9_+=,.@-]{1,64}$")
IAM_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
GROUP_PART = re.compile(r"^[A-Za-z0-9._~^]*$")
CAPACITY_GROUP = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")

ENTRY_POINT_MAX_BYTES = 16 * 1024
ENV_MAX_BYTES = 32 * 1024
MAX_SECURITY_GROUPS = 6
MAX_BATCH_SIZE = 1000
MAX_SERVICE_SIZE = 10_000
RUNTIME_LIMIT_MIN_SEC = 5
RUNTIME_LIMIT_MAX_SEC = 864_000
MAX_RETRIES = 1000
# Constraint names, lower-cased; clients may send any case.
CONSTRAINTS = {
    "uniquehost",
    "exclusivehost",
    "zonebalance",
    "activehost",
    "availabilityzone",
    "machineid",
    "machinegroup",
    "machinetype",
}
BOOLEAN_CONSTRAINTS = {"uniquehost", "exclusivehost", "zonebalance", "activehost"}
RESERVED_PREFIX = "titus"


@dataclass(frozen=True)
class Bounds:
    """Resource bounds of one container. The defaults are Titus's; the API builds
    one from settings. `host` is the largest registered host's resources (None when no host
    is registered yet, so a fresh platform still takes jobs): nothing may ask for more."""

    cpu_min: float = 0.01
    cpu_max: float = 96.0
    memory_mb_min: int = 512
    memory_mb_max: int = 1_152_000
    disk_mb_min: int = 10_000
    disk_mb_max: int = 1_550_000
    network_mbps_min: int = 128
    network_mbps_max: int = 400_000
    gpu_max: int = 16
    host: dict[str, float] | None = None


DEFAULT_BOUNDS = Bounds()


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class InvalidRequest(Exception):
    """A request that breaks one or more rules; nothing of it may be stored."""

    def __init__(self, errors: list[FieldError], message: str = "invalid job descriptor"):
        super().__init__(message + ": " + "; ".join(f"{e.path}: {e.message}" for e in errors))
        self.errors = errors
        self.message = message


#: RFC 5321's limit on an address as it travels (a path of 256 octets less the brackets).
EMAIL_MAX_LENGTH = 254


def is_email(value: str) -> bool:
    """`local@domain.tld`: one '@', no white space, a dot inside the domain.

    Checked by hand in one pass rather than with a pattern: a backtracking pattern over
    dots takes quadratic time on inputs such as `a@a.a.a...a ` that fail at the end.
    """
    if len(value) > EMAIL_MAX_LENGTH or value.split() != [value]:
        return False  # empty, or white space somewhere (split scans once, in C)
    local, at, domain = value.partition("@")
    return bool(local and at and "@" not in domain and "." in domain[1:-1])


#: How much of a refused value an error message repeats.
QUOTE_MAX_CHARS = 80


def _quote(value: object) -> str:
    """A refused value in quotes, cut short: an error names the problem, it does not echo a
    megabyte back to the caller (or into the logs)."""
    text = str(value)
    if len(text) <= QUOTE_MAX_CHARS:
        return f"'{text}'"
    return f"'{text[:QUOTE_MAX_CHARS]}...' ({len(text)} characters)"


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def from_pydantic(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    errors = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after", "function-before"))
        path = _path(loc)
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown field '{loc[-1] if loc else ''}'"
        elif err["type"] == "missing":
            message = "is required"
        errors.append(FieldError(path or "$", message))
    return errors


def check_descriptor(d: JobDescriptor, bounds: Bounds = DEFAULT_BOUNDS) -> list[FieldError]:
    """Rules across fields that the shape alone does not express."""
    errors: list[FieldError] = []

    def bad(path: str, message: str) -> None:
        errors.append(FieldError(path, message))

    if not is_email(d.owner.teamEmail):
        bad("owner.teamEmail", f"{_quote(d.owner.teamEmail)} is not a valid email address")
    if not d.applicationName or not APP_NAME.fullmatch(d.applicationName):
        bad("applicationName", "must be letters, digits, '_' or '.', and not empty")

    image = d.container.image
    if not IMAGE_NAME.fullmatch(image.name):
        bad("container.image.name", f"{_quote(image.name)} is not a valid image name")
    if image.tag is None and image.digest is None:
        bad("container.image", "needs a tag or a digest")
    if image.tag is not None and image.digest is not None:
        bad("container.image", "give a tag or a digest, not both")
    if image.tag is not None and not IMAGE_TAG.fullmatch(image.tag):
        bad("container.image.tag", f"{_quote(image.tag)} is not a valid tag")
    if image.digest is not None and not IMAGE_DIGEST.fullmatch(image.digest):
        bad("container.image.digest", f"{_quote(image.digest)} is not a valid digest (algo:hex)")

    errors += _check_resources(d, bounds)
    errors += _check_container(d)
    errors += check_user_attributes(d.attributes)
    if d.capacityGroup and not CAPACITY_GROUP.fullmatch(d.capacityGroup):
        bad("capacityGroup", "must be 1..100 letters, digits, '_', '.' or '-'")
    for part in ("stack", "detail", "sequence"):
        if not GROUP_PART.fullmatch(getattr(d.jobGroupInfo, part)):
            bad(f"jobGroupInfo.{part}", "must be letters, digits, '.', '_', '~' or '^'")
    if d.disruptionBudget is not None:
        errors += check_disruption_budget(d.disruptionBudget, "disruptionBudget")

    if (d.batch is None) == (d.service is None):
        bad("$", "exactly one of 'batch' or 'service' must be given")
    if d.batch is not None:
        if not 1 <= d.batch.size <= MAX_BATCH_SIZE:
            bad("batch.size", f"must be from 1 to {MAX_BATCH_SIZE}")
        limit = d.batch.runtimeLimitSec
        if not RUNTIME_LIMIT_MIN_SEC <= limit <= RUNTIME_LIMIT_MAX_SEC:
            bad(
                "batch.runtimeLimitSec",
                f"must be from {RUNTIME_LIMIT_MIN_SEC} to {RUNTIME_LIMIT_MAX_SEC} seconds",
            )
    if d.service is not None:
        errors += check_capacity(
            d.service.capacity.min,
            d.service.capacity.desired,
            d.service.capacity.max,
            "service.capacity",
        )
    spec = d.batch or d.service
    if spec is not None:
        rp = spec.retryPolicy
        given = [p for p in (rp.immediate, rp.delayed, rp.exponentialBackOff) if p is not None]
        base = "batch" if d.batch is not None else "service"
        if len(given) > 1:
            bad(f"{base}.retryPolicy", "give exactly one retry policy")
        if not 0 <= rp.retries <= MAX_RETRIES:
            bad(f"{base}.retryPolicy", f"retries must be from 0 to {MAX_RETRIES}")
        for name, policy in (
            ("delayed", rp.delayed),
            ("exponentialBackOff", rp.exponentialBackOff),
        ):
            if policy is None:
                continue
            for field, value in policy.model_dump().items():
                if field != "retries" and value < 0:
                    bad(f"{base}.retryPolicy.{name}.{field}", "must not be negative")
    return errors


def check_capacity(lo: int, desired: int, hi: int, path: str) -> list[FieldError]:
    """min <= desired <= max, none negative, max at most MAX_SERVICE_SIZE."""
    errors = []
    if lo < 0:
        errors.append(FieldError(f"{path}.min", "must not be negative"))
    if hi > MAX_SERVICE_SIZE:
        errors.append(FieldError(f"{path}.max", f"must be at most {MAX_SERVICE_SIZE}"))
    if not lo <= desired <= hi:
        errors.append(
            FieldError(path, f"must satisfy min <= desired <= max (got {lo}, {desired}, {hi})")
        )
    return errors


#: Resources a job may ask below the platform's minimum for: it gets the minimum, as Titus's
#: sanitizer gave it, and the job's attribute RAISED_ATTRIBUTE says so.
RAISED_RESOURCES = ("cpu", "memoryMB", "diskMB", "networkMbps")
RAISED_ATTRIBUTE = "titus.resources.raised"


def raise_to_minimums(d: JobDescriptor, b: Bounds) -> list[str]:
    """Raise what is below the minimums to them, and fold `ephemeralStorageMB` (the older
    clients' name for scratch space) into `diskMB`, the disk the container gets and is held
    to. Returns what changed, for the job's attribute RAISED_ATTRIBUTE; values of 0 or less
    are left for the checks to refuse."""
    r = d.container.resources
    changes: list[str] = []
    if r.ephemeralStorageMB is not None and r.ephemeralStorageMB > r.diskMB:
        changes.append(f"diskMB {r.diskMB} -> {r.ephemeralStorageMB} (ephemeralStorageMB)")
        r.diskMB = r.ephemeralStorageMB
    minimums = (b.cpu_min, b.memory_mb_min, b.disk_mb_min, b.network_mbps_min)
    for name, lo in zip(RAISED_RESOURCES, minimums, strict=True):
        value = getattr(r, name)
        if 0 < value < lo:
            setattr(r, name, type(value)(lo))
            changes.append(f"{name} {value:g} -> {lo:g} (the minimum)")
    return changes


def _check_resources(d: JobDescriptor, b: Bounds) -> list[FieldError]:
    r = d.container.resources
    errors: list[FieldError] = []
    base = "container.resources"
    ranges: list[tuple[str, float, float, float]] = [
        ("cpu", r.cpu, b.cpu_min, b.cpu_max),
        ("memoryMB", r.memoryMB, b.memory_mb_min, b.memory_mb_max),
        ("diskMB", r.diskMB, b.disk_mb_min, b.disk_mb_max),
        ("networkMbps", r.networkMbps, b.network_mbps_min, b.network_mbps_max),
        ("gpu", r.gpu, 0, b.gpu_max),
    ]
    for name, value, lo, hi in ranges:
        if name in RAISED_RESOURCES and value <= 0:
            errors.append(
                FieldError(
                    f"{base}.{name}",
                    f"must be more than 0 (a value below {lo:g} is raised to {lo:g})",
                )
            )
        elif not lo <= value <= hi:
            errors.append(FieldError(f"{base}.{name}", f"must be from {lo:g} to {hi:g}"))
        elif b.host is not None and value > b.host.get(name, float("inf")):
            errors.append(
                FieldError(
                    f"{base}.{name}",
                    f"{value:g} is more than the largest host offers ({b.host[name]:g})",
                )
            )
    if r.shmSizeMB is not None and not 0 <= r.shmSizeMB <= r.memoryMB:
        errors.append(FieldError(f"{base}.shmSizeMB", "must be from 0 to memoryMB"))
    if r.ephemeralStorageMB is not None and r.ephemeralStorageMB < 0:
        errors.append(FieldError(f"{base}.ephemeralStorageMB", "must not be negative"))
    return errors


def _check_container(d: JobDescriptor) -> list[FieldError]:
    c = d.container
    errors: list[FieldError] = []

    def bad(path: str, message: str) -> None:
        errors.append(FieldError(f"container.{path}", message))

    groups = c.securityProfile.securityGroups
    if len(groups) > MAX_SECURITY_GROUPS:
        bad("securityProfile.securityGroups", f"at most {MAX_SECURITY_GROUPS} security groups")
    for i, sg in enumerate(groups):
        if not SECURITY_GROUP.fullmatch(sg):
            bad(
                f"securityProfile.securityGroups[{i}]",
                f"{_quote(sg)} is not a security group sg-...",
            )
    if len(set(groups)) != len(groups):
        bad("securityProfile.securityGroups", "lists a security group twice")
    role = c.securityProfile.iamRole
    if role and not (IAM_ROLE_NAME.fullmatch(role) or IAM_ROLE_ARN.fullmatch(role)):
        bad("securityProfile.iamRole", f"{_quote(role)} is neither an IAM role name nor a role ARN")

    from titus.model.health import check_health_attributes  # it uses FieldError from here

    errors += check_health_attributes(c.attributes)
    if sum(len(a.encode()) for a in c.entryPoint) > ENTRY_POINT_MAX_BYTES:
        bad("entryPoint", f"is over {ENTRY_POINT_MAX_BYTES} bytes")
    if sum(len(a.encode()) for a in c.command) > ENTRY_POINT_MAX_BYTES:
        bad("command", f"is over {ENTRY_POINT_MAX_BYTES} bytes")
    env_size = 0
    for name, value in c.env.items():
        env_size += len(name.encode()) + len(value.encode())
        if not name:
            bad("env", "has an empty variable name")
        elif not ENV_NAME.fullmatch(name):
            bad(
                f"env.{name}",
                "a variable name is letters, digits, '_', '.', '-', not first a digit",
            )
    if env_size > ENV_MAX_BYTES:
        bad("env", f"is over {ENV_MAX_BYTES} bytes in total")

    soft = {k.lower(): (k, v) for k, v in c.softConstraints.constraints.items()}
    hard = {k.lower(): (k, v) for k, v in c.hardConstraints.constraints.items()}
    for kind, given in (("softConstraints", soft), ("hardConstraints", hard)):
        for low, (name, value) in given.items():
            path = f"{kind}.constraints.{name}"
            if low not in CONSTRAINTS:
                bad(path, f"unknown constraint '{name}'")
            elif low in BOOLEAN_CONSTRAINTS and value.lower() not in ("true", "false"):
                bad(path, "value must be 'true' or 'false'")
    for low in sorted(set(soft) & set(hard)):
        bad(f"hardConstraints.constraints.{hard[low][0]}", "is also a soft constraint")
    for kind in ("softConstraints", "hardConstraints"):
        if getattr(c, kind).expression:
            # Titus's API carries the field but never gave it a meaning: accepting it would
            # promise a placement rule nothing enforces
            bad(
                f"{kind}.expression",
                "constraint expressions are not supported: name each constraint in "
                "`constraints` (all of them must hold)",
            )
    return errors


#: Bounds on a job's or a task's attributes. They ride along in every listing, every
#: observe event and the container's labels, so a flood of them costs everyone.
ATTRIBUTE_KEY_MAX_CHARS = 256
ATTRIBUTE_VALUE_MAX_CHARS = 4096
ATTRIBUTES_MAX_COUNT = 100
ATTRIBUTES_MAX_BYTES = 32 * 1024


def check_user_attributes(attrs: dict[str, str], path: str = "attributes") -> list[FieldError]:
    """Attributes a user sets (on a job or a task): no empty or reserved `titus*` keys, and
    each key, each value and the whole set within bounds."""
    errors = []
    for key, value in attrs.items():
        if not key:
            errors.append(FieldError(path, "has an empty key"))
        elif len(key) > ATTRIBUTE_KEY_MAX_CHARS:
            errors.append(
                FieldError(
                    f"{path}.{key[:40]}...",
                    f"keys are at most {ATTRIBUTE_KEY_MAX_CHARS} characters",
                )
            )
        elif key.lower().startswith(RESERVED_PREFIX):
            errors.append(FieldError(f"{path}.{key}", "keys starting with 'titus' are reserved"))
        elif len(value) > ATTRIBUTE_VALUE_MAX_CHARS:
            errors.append(
                FieldError(
                    f"{path}.{key}", f"values are at most {ATTRIBUTE_VALUE_MAX_CHARS} characters"
                )
            )
    return errors + check_attribute_totals(attrs, path)


def check_attribute_totals(attrs: dict[str, str], path: str = "attributes") -> list[FieldError]:
    """The whole set of a job's or a task's attributes (what it will hold after a change)."""
    if len(attrs) > ATTRIBUTES_MAX_COUNT:
        return [FieldError(path, f"at most {ATTRIBUTES_MAX_COUNT} attributes ({len(attrs)} given)")]
    size = sum(len(k.encode()) + len(v.encode()) for k, v in attrs.items())
    if size > ATTRIBUTES_MAX_BYTES:
        return [
            FieldError(
                path, f"at most {ATTRIBUTES_MAX_BYTES} bytes of keys and values ({size} given)"
            )
        ]
    return []


def check_disruption_budget(b: DisruptionBudget, path: str) -> list[FieldError]:
    """Exactly one policy and one rate; percentages 0..100; windows within a day."""
    errors = []
    policies = [p for p in BUDGET_POLICIES if getattr(b, p) is not None]
    rates = [r for r in BUDGET_RATES if getattr(b, r) is not None]
    if len(policies) != 1:
        errors.append(FieldError(path, f"give exactly one policy of {', '.join(BUDGET_POLICIES)}"))
    if len(rates) != 1:
        errors.append(FieldError(path, f"give exactly one rate of {', '.join(BUDGET_RATES)}"))
    a, h, pi = b.availabilityPercentageLimit, b.ratePercentagePerHour, b.ratePercentagePerInterval
    pct: list[tuple[str, float | None]] = [
        (
            "availabilityPercentageLimit.percentageOfHealthyContainers",
            a.percentageOfHealthyContainers if a else None,
        ),
        (
            "ratePercentagePerHour.maxPercentageOfContainersRelocatedInHour",
            h.maxPercentageOfContainersRelocatedInHour if h else None,
        ),
        (
            "ratePercentagePerInterval.percentageLimitPerInterval",
            pi.percentageLimitPerInterval if pi else None,
        ),
    ]
    for sub, fraction in pct:
        if fraction is not None and not 0 <= fraction <= 100:
            errors.append(FieldError(f"{path}.{sub}", "must be a percentage from 0 to 100"))
    u, r, m, p = b.unhealthyTasksLimit, b.relocationLimit, b.selfManaged, b.ratePerInterval
    counts: list[tuple[str, int | None]] = [
        (
            "unhealthyTasksLimit.limitOfUnhealthyContainers",
            u.limitOfUnhealthyContainers if u else None,
        ),
        ("relocationLimit.limit", r.limit if r else None),
        ("selfManaged.relocationTimeMs", m.relocationTimeMs if m else None),
        ("ratePerInterval.limitPerInterval", p.limitPerInterval if p else None),
    ]
    for sub, count in counts:
        if count is not None and count < 0:
            errors.append(FieldError(f"{path}.{sub}", "must not be negative"))
    for sub, rate in (
        ("ratePerInterval", b.ratePerInterval),
        ("ratePercentagePerInterval", b.ratePercentagePerInterval),
    ):
        if rate is not None and rate.intervalMs <= 0:
            errors.append(FieldError(f"{path}.{sub}.intervalMs", "must be greater than 0"))
    for i, window in enumerate(b.timeWindows):
        wpath = f"{path}.timeWindows[{i}]"
        for day in window.days:
            if day.lower() not in WEEKDAYS:
                errors.append(
                    FieldError(f"{wpath}.days", f"{_quote(day)} is not a day of the week")
                )
        if window.timeZone not in known_time_zones():
            errors.append(
                FieldError(f"{wpath}.timeZone", f"{_quote(window.timeZone)} is not a time zone")
            )
        for j, hours in enumerate(window.hourlyTimeWindows):
            if not 0 <= hours.startHour < hours.endHour <= 24:
                errors.append(
                    FieldError(
                        f"{wpath}.hourlyTimeWindows[{j}]",
                        "must satisfy 0 <= startHour < endHour <= 24",
                    )
                )
    for i, provider in enumerate(b.containerHealthProviders):
        where = f"{path}.containerHealthProviders[{i}]"
        if not provider.name:
            errors.append(FieldError(f"{where}.name", "is required"))
        elif provider.name != HEALTH_CHECK_PROVIDER:
            errors.append(
                FieldError(
                    f"{where}.name",
                    f"{_quote(provider.name)} is not a health provider here; the one there is "
                    f"is {HEALTH_CHECK_PROVIDER!r} (the container health check)",
                )
            )
        if provider.attributes:
            errors.append(FieldError(f"{where}.attributes", "this provider takes no attributes"))
    return errors


def _rules_beside_shape_errors(
    data: dict[str, Any], exc: ValidationError, reported: set[str], bounds: Bounds
) -> list[FieldError]:
    """Cross-field rules checked on the body minus its badly shaped parts, so one round
    trip names every problem, not just the shape ones."""
    cleaned = copy.deepcopy(data)
    for err in exc.errors():
        node: Any = cleaned
        loc = err["loc"]
        for part in loc[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict):
            node.pop(loc[-1], None)
    try:
        descriptor = JobDescriptor.model_validate(cleaned)
    except ValidationError:
        return []
    return [e for e in check_descriptor(descriptor, bounds) if e.path not in reported]


def parse_job_descriptor(data: Any, bounds: Bounds = DEFAULT_BOUNDS) -> JobDescriptor:
    """Parse and validate a descriptor, raising InvalidRequest with every problem."""
    if not isinstance(data, dict):
        raise InvalidRequest([FieldError("$", "the body must be a JSON object")])
    try:
        descriptor = JobDescriptor.model_validate(data)
    except ValidationError as exc:
        errors = from_pydantic(exc)
        errors += _rules_beside_shape_errors(data, exc, {e.path for e in errors}, bounds)
        raise InvalidRequest(errors) from None
    raised = raise_to_minimums(descriptor, bounds)
    errors = check_descriptor(descriptor, bounds)
    if errors:
        raise InvalidRequest(errors)
    if raised:
        descriptor.attributes[RAISED_ATTRIBUTE] = "; ".join(raised)
    return descriptor
