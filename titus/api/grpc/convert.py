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

import threading
from collections import OrderedDict
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


#: How many converted jobs and tasks (each) are kept for reuse.
CACHE_SIZE = 10_000


class Converted:
    """Messages already made from API JSON documents, by the document's identity.

    The view keeps one JSON document per job and task and replaces it (a new object)
    when the entity changes, so a document seen before converts to the same message.
    Converting costs about 0.1 ms per job; reusing the message makes a listing page or
    an observe snapshot of thousands of jobs cost little more than REST's ready JSON.
    Entries hold their document, so an id is never reused while it is a key here."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._items: OrderedDict[int, tuple[dict[str, Any], Message]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, doc: dict[str, Any]) -> Message | None:
        with self._lock:
            found = self._items.get(id(doc))
            if found is None or found[0] is not doc:
                return None
            self._items.move_to_end(id(doc))
            return found[1]

    def put(self, doc: dict[str, Any], message: Message) -> None:
        with self._lock:
            self._items[id(doc)] = (doc, message)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_jobs, _tasks = Converted(), Converted()


def job_message(
    job_json: dict[str, Any], fields: list[str] | None = None, *, reuse: bool = False
) -> pb.Job:
    """A job's API JSON as a Job message, projected to `fields`. With `reuse`, the
    document is one the view keeps (it is replaced, never changed), and its message is
    made once; the message returned is then shared and must not be changed."""
    if reuse and not fields:
        found = _jobs.get(job_json)
        if found is None:
            found = _job_message(job_json)
            _jobs.put(job_json, found)
        assert isinstance(found, pb.Job)
        return found
    return _job_message(project(job_json, ",".join(fields)) if fields else job_json)


def _job_message(data: dict[str, Any]) -> pb.Job:
    if "jobDescriptor" in data:
        data = {**data, "jobDescriptor": _descriptor_json(data["jobDescriptor"])}
    return from_json(data, pb.Job())


def task_message(
    task_json: dict[str, Any], fields: list[str] | None = None, *, reuse: bool = False
) -> pb.Task:
    if reuse and not fields:
        found = _tasks.get(task_json)
        if found is None:
            found = _task_message(task_json)
            _tasks.put(task_json, found)
        assert isinstance(found, pb.Task)
        return found
    return _task_message(project(task_json, ",".join(fields)) if fields else task_json)


def _task_message(data: dict[str, Any]) -> pb.Task:
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
