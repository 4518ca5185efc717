"""A minimal framework over the raw scheduler API that runs TaskSpecs with the real Titus
executor (`python -m titus.agent.mesos_executor`) on the Mesos double's agents.

It does what the platform's Mesos driver does for one task and no more: take an offer,
launch the task with the spec as its `data`, acknowledge every status update, kill on
request. Tests use it to drive the executor the way the platform does, without the
leader in between, so that the same lifecycle scenarios run against the agent daemon and
the executor (tests/integration/test_task_lifecycle.py).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.support.mesos.client import Subscription, framework_info
from tests.support.mesos.master import TERMINAL_STATES
from titus.master.mesos import default_executor_command
from titus.model.launch import TaskSpec


@dataclass(frozen=True)
class MesosUpdate:
    """One status update of a task, with the Titus part of its `data` decoded."""

    state: str
    message: str
    source: str
    reason: str  # the Mesos reason (REASON_...), empty when there is none
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class MesosTasks:
    """One framework subscribed to the double; every task launches on one of its agents."""

    def __init__(self, address: str, executor_env: dict[str, str]) -> None:
        self.executor_env = dict(executor_env)
        self.sub = Subscription(address, framework_info("titus-lifecycle"))
        assert self.sub.framework_id, self.sub.refusal
        self._cond = threading.Condition()
        self._offers: dict[str, dict[str, Any]] = {}
        self.updates: dict[str, list[MesosUpdate]] = {}
        self.agent_of: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="mesos-tasks", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                event = self.sub.next(timeout=0.5)
            except TimeoutError:
                continue
            except EOFError:
                return
            kind = event["type"]
            with self._cond:
                if kind == "OFFERS":
                    for offer in event["offers"]["offers"]:
                        self._offers[offer["id"]["value"]] = offer
                elif kind == "RESCIND":
                    self._offers.pop(event["rescind"]["offer_id"]["value"], None)
                elif kind == "UPDATE":
                    self._on_update(event["update"]["status"])
                self._cond.notify_all()

    def _on_update(self, status: dict[str, Any]) -> None:
        raw = status.get("data")
        data = json.loads(base64.b64decode(raw)) if raw else {}
        task_id = status["task_id"]["value"]
        self.updates.setdefault(task_id, []).append(
            MesosUpdate(
                state=status["state"],
                message=status.get("message", ""),
                source=status.get("source", ""),
                reason=status.get("reason", ""),
                data=data,
            )
        )
        if "uuid" in status:
            body = {k: status[k] for k in ("agent_id", "task_id", "uuid")}
            threading.Thread(target=self.sub.call, args=("ACKNOWLEDGE", body), daemon=True).start()

    def launch(self, spec: TaskSpec, agent_id: str | None = None, timeout: float = 30.0) -> str:
        """Launch `spec` on an offered agent (`agent_id`, or any); returns the agent id."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                offer = next(
                    (
                        o
                        for o in self._offers.values()
                        if agent_id is None or o["agent_id"]["value"] == agent_id
                    ),
                    None,
                )
                if offer is not None:
                    del self._offers[offer["id"]["value"]]
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no offer for task {spec.taskId} within {timeout}s")
                self._cond.wait(left)
            self.updates[spec.taskId] = []
        agent = offer["agent_id"]["value"]
        self.agent_of[spec.taskId] = agent
        status, text = self.sub.call(
            "ACCEPT",
            {
                "offer_ids": [offer["id"]],
                "operations": [
                    {"type": "LAUNCH", "launch": {"task_infos": [self._info(spec, agent)]}}
                ],
                "filters": {"refuse_seconds": 0.0},
            },
        )
        assert status == 202, text
        return agent

    def _info(self, spec: TaskSpec, agent_id: str) -> dict[str, Any]:
        r = spec.container.resources
        variables = [{"name": k, "value": v} for k, v in sorted(self.executor_env.items())]
        return {
            "name": f"lifecycle-{spec.taskId}",
            "task_id": {"value": spec.taskId},
            "agent_id": {"value": agent_id},
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": float(r.cpu)}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": float(r.memoryMB)}},
            ],
            "executor": {
                "executor_id": {"value": spec.taskId},  # one executor per task, as the platform
                "name": "titus-executor",
                "command": {
                    "value": default_executor_command(),
                    "environment": {"variables": variables},
                },
            },
            "data": base64.b64encode(
                spec.model_dump_json(by_alias=True, exclude_none=True).encode()
            ).decode(),
        }

    def kill(self, task_id: str) -> None:
        status, text = self.sub.call(
            "KILL",
            {"task_id": {"value": task_id}, "agent_id": {"value": self.agent_of[task_id]}},
        )
        assert status == 202, text

    def wait(self, task_id: str, states: set[str], timeout: float = 60.0) -> MesosUpdate:
        """The first update of `task_id` (since its last launch) in one of `states`, or a
        terminal one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for update in self.updates.get(task_id, []):
                    if update.state in states or update.terminal:
                        return update
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [u.state for u in self.updates.get(task_id, [])]
                    raise AssertionError(f"task {task_id} reached none of {states}: {seen}")
                self._cond.wait(left)

    def close(self) -> None:
        self._stop.set()
        self.sub.close()
        self._thread.join(5)
