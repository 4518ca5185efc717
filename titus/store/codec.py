"""How both backends write entities as text: job and task documents, the plain columns
kept beside a task's document, and queued kill and move requests."""

from __future__ import annotations

import json

from titus.model.job import Job, Task
from titus.store.records import KillRequest, MoveRequest


def dump_document(model: Job | Task) -> str:
    """A job's or task's stored JSON document (unset fields left out)."""
    return model.model_dump_json(exclude_none=True)


def task_facts(task: Task) -> tuple[str, str | None, int]:
    """The columns written beside a task's document: state, agent id, status time (ms)."""
    return task.status.state.value, task.agent_id, task.status.timestamp


def dump_request(request: KillRequest | MoveRequest) -> str:
    return json.dumps(request.__dict__)


def load_kill_request(value: object) -> KillRequest:
    return KillRequest(**json.loads(str(value)))


def load_move_request(value: object) -> MoveRequest:
    return MoveRequest(**json.loads(str(value)))
