"""Validation of a job descriptor: every problem found, each named by its JSON path.

A client that sends a bad descriptor gets the whole list at once rather than one error per
round trip. Shape errors (types, unknown fields) come from the model; rules that span
fields come from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from titus.model.job import JobDescriptor

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
APP_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
IMAGE_NAME = re.compile(r"^[a-zA-Z0-9./_-]+$")
IMAGE_TAG = re.compile(r"^[a-zA-Z0-9._-]+$")
IMAGE_DIGEST = re.compile(r"^[a-zA-Z0-9_+.-]+:[0-9a-fA-F]{32,}$")


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


def check_descriptor(d: JobDescriptor) -> list[FieldError]:
    """Rules across fields that the shape alone does not express."""
    errors: list[FieldError] = []

    def bad(path: str, message: str) -> None:
        errors.append(FieldError(path, message))

    if not EMAIL.match(d.owner.teamEmail):
        bad("owner.teamEmail", f"'{d.owner.teamEmail}' is not a valid email address")
    if not d.applicationName or not APP_NAME.match(d.applicationName):
        bad("applicationName", "must be letters, digits, '_' or '.', and not empty")

    image = d.container.image
    if not IMAGE_NAME.match(image.name):
        bad("container.image.name", f"'{image.name}' is not a valid image name")
    if image.tag is None and image.digest is None:
        bad("container.image", "needs a tag or a digest")
    if image.tag is not None and image.digest is not None:
        bad("container.image", "give a tag or a digest, not both")
    if image.tag is not None and not IMAGE_TAG.match(image.tag):
        bad("container.image.tag", f"'{image.tag}' is not a valid tag")
    if image.digest is not None and not IMAGE_DIGEST.match(image.digest):
        bad("container.image.digest", f"'{image.digest}' is not a valid digest (algo:hex)")

    r = d.container.resources
    for name in ("cpu", "memoryMB", "diskMB", "networkMbps"):
        if getattr(r, name) <= 0:
            bad(f"container.resources.{name}", "must be greater than 0")
    if r.gpu < 0:
        bad("container.resources.gpu", "must not be negative")
    if r.shmSizeMB is not None and r.shmSizeMB < 0:
        bad("container.resources.shmSizeMB", "must not be negative")

    if (d.batch is None) == (d.service is None):
        bad("$", "exactly one of 'batch' or 'service' must be given")
    if d.batch is not None and d.batch.size < 1:
        bad("batch.size", "must be at least 1")
    if d.service is not None:
        c = d.service.capacity
        if c.min < 0:
            bad("service.capacity.min", "must not be negative")
        if not (c.min <= c.desired <= c.max):
            bad(
                "service.capacity",
                f"must satisfy min <= desired <= max (got {c.min}, {c.desired}, {c.max})",
            )
    spec = d.batch or d.service
    if spec is not None:
        rp = spec.retryPolicy
        given = [p for p in (rp.immediate, rp.delayed, rp.exponentialBackOff) if p is not None]
        base = "batch" if d.batch is not None else "service"
        if len(given) > 1:
            bad(f"{base}.retryPolicy", "give exactly one retry policy")
        if rp.retries < 0:
            bad(f"{base}.retryPolicy", "retries must not be negative")
    return errors


def parse_job_descriptor(data: Any) -> JobDescriptor:
    """Parse and validate a descriptor, raising InvalidRequest with every problem."""
    if not isinstance(data, dict):
        raise InvalidRequest([FieldError("$", "the body must be a JSON object")])
    try:
        descriptor = JobDescriptor.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(from_pydantic(exc)) from None
    errors = check_descriptor(descriptor)
    if errors:
        raise InvalidRequest(errors)
    return descriptor
