"""Between protobuf messages and the API's JSON shape.

The model's field names are Titus's JSON names, which are also the proto field names, so
a message becomes the same JSON a REST client sends (and a job's API JSON becomes its
message) through protobuf's own JSON mapping. What goes in is then parsed and validated
by the service layer exactly as a REST body is: nothing here checks or defaults a value.
The few places where the REST shape differs from the wire contract (log locations are
plain URLs in REST, messages with `url` in proto) are adapted here and only here.

Proto3 cannot tell a scalar left at zero from one never set; such fields are left out of
the JSON, so the model's defaults apply as they do to a REST body that omits them.
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.query import project

M = TypeVar("M", bound=Message)


def to_json(message: Message) -> dict[str, Any]:
    """A request message as the JSON body REST would receive."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def from_json(data: dict[str, Any], message: M) -> M:
    """Fill `message` from API JSON; fields the wire contract lacks are skipped."""
    return json_format.ParseDict(data, message, ignore_unknown_fields=True)


def _descriptor_json(descriptor: dict[str, Any]) -> dict[str, Any]:
    budget = descriptor.get("disruptionBudget")
    if not budget or not budget.get("timeWindows"):
        return descriptor
    windows = [
        {**w, "days": [str(d).capitalize() for d in w.get("days", [])]}
        for w in budget["timeWindows"]
    ]
    return {**descriptor, "disruptionBudget": {**budget, "timeWindows": windows}}


def job_message(job_json: dict[str, Any], fields: list[str] | None = None) -> pb.Job:
    """A job's API JSON (as the view keeps it) as a Job message, projected to `fields`."""
    data = project(job_json, ",".join(fields)) if fields else job_json
    if "jobDescriptor" in data:
        data = {**data, "jobDescriptor": _descriptor_json(data["jobDescriptor"])}
    return from_json(data, pb.Job())


def task_message(task_json: dict[str, Any], fields: list[str] | None = None) -> pb.Task:
    data = project(task_json, ",".join(fields)) if fields else task_json
    logs = data.get("logLocation")
    if isinstance(logs, dict):
        wire: dict[str, Any] = {}
        if logs.get("ui"):
            wire["ui"] = {"url": logs["ui"]}
        if logs.get("liveStream"):
            wire["liveStream"] = {"url": logs["liveStream"]}
        if logs.get("s3"):
            wire["s3"] = logs["s3"]
        data = {**data, "logLocation": wire}
    return from_json(data, pb.Task())


def optional_capacity(message: pb.JobCapacityWithOptionalAttributes) -> dict[str, int | None]:
    """The bounds a partial capacity change names (None for those it leaves alone)."""
    return {
        name: getattr(message, name).value if message.HasField(name) else None
        for name in ("min", "desired", "max")
    }
