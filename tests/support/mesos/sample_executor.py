"""A small Mesos executor on pymesos's MesosExecutorDriver, started by the double's agent in
tests: it proves the double starts executors the way a Mesos agent does and relays their
updates and acknowledgements.

What a task does is read from its TaskInfo `data` (base64 JSON): `{"sleep": seconds,
"state": "TASK_FINISHED" | "TASK_FAILED", "hang": true}`. It reports TASK_RUNNING, then the
final state; with "hang" it runs until killed. KILL answers TASK_KILLED. It writes the
environment it was given to `executor-env.json` in its sandbox, and exits once its last
terminal update is acknowledged, or on SHUTDOWN.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
import time
import uuid
from typing import Any

from pymesos import Executor, MesosExecutorDriver, encode_data

logging.basicConfig(level=logging.INFO, format="%(asctime)s executor %(message)s")
log = logging.getLogger("sample_executor")


class Driver(MesosExecutorDriver):  # type: ignore[misc]
    """Records which update uuids the agent acknowledged (ACKNOWLEDGED events)."""

    acked: set[str] = set()

    def on_acknowledged(self, event: dict[str, Any]) -> None:
        super().on_acknowledged(event)
        self.acked.add(event["uuid"])


class SampleExecutor(Executor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.killed: set[str] = set()
        self.final_uuids: dict[str, str] = {}
        self.lock = threading.Lock()

    def registered(
        self, driver: Any, executor_info: Any, framework_info: Any, agent_info: Any
    ) -> None:
        log.info("registered on agent %s", agent_info["id"]["value"])

    def _update(self, driver: Any, task: Any, state: str, message: str = "") -> str:
        status_uuid = encode_data(uuid.uuid4().bytes)
        status = {
            "task_id": task["task_id"],
            "state": state,
            "uuid": status_uuid,
            "timestamp": time.time(),
        }
        if message:
            status["message"] = message
        driver.sendStatusUpdate(status)
        return status_uuid

    def launchTask(self, driver: Any, task: Any) -> None:  # noqa: N802 (pymesos's name)
        threading.Thread(target=self._run, args=(driver, task), daemon=True).start()

    def _run(self, driver: Any, task: Any) -> None:
        spec = json.loads(base64.b64decode(task.get("data") or "e30=") or b"{}")
        task_id = task["task_id"]["value"]
        self._update(driver, task, "TASK_RUNNING")
        deadline = time.monotonic() + float(spec.get("sleep", 0))
        while spec.get("hang") or time.monotonic() < deadline:
            if task_id in self.killed:
                break
            time.sleep(0.02)
        if task_id in self.killed:
            final = self._update(driver, task, "TASK_KILLED", "killed by the framework")
        else:
            final = self._update(driver, task, spec.get("state", "TASK_FINISHED"), "done")
        self.final_uuids[task_id] = final
        deadline = time.monotonic() + 30
        while final not in Driver.acked and time.monotonic() < deadline:
            time.sleep(0.02)
        log.info("task %s done, exiting", task_id)
        driver.stop()

    def killTask(self, driver: Any, task_id: Any) -> None:  # noqa: N802
        self.killed.add(task_id["value"])

    def shutdown(self, driver: Any) -> None:
        log.info("shutdown")
        os._exit(0)


def main() -> int:
    sandbox = os.environ.get("MESOS_SANDBOX", ".")
    with open(os.path.join(sandbox, "executor-env.json"), "w") as f:
        json.dump({k: v for k, v in os.environ.items() if k.startswith("MESOS_")}, f)
    driver = Driver(SampleExecutor(), use_addict=True)
    driver.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
