"""The load a scenario runs: short batch jobs and a service job, as users submit them.

A job counts as acknowledged only once the API answered 202 with its id: that is the
promise the invariants hold the platform to. A submission the API refuses (the store is
down, the disk is full) is not a loss; it is counted apart, as a user would see an error.
Batch jobs allow retries, since some faults (the engine stopping) kill containers; the
invariant is exactly one success per index, not one attempt.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.chaos.cluster import ChaosCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Retries a batch job may use on failures the faults cause.
BATCH_RETRIES = 5


def _descriptor(example: str, app: str, command: str) -> dict[str, Any]:
    d: dict[str, Any] = json.loads((EXAMPLES / example).read_text())
    d.pop("jobGroupInfo", None)
    d["applicationName"] = app
    d["container"]["entryPoint"] = ["sh", "-c", command]
    d["container"].pop("command", None)
    d["container"]["resources"].update(cpu=0.25, memoryMB=128)
    return d


def batch_job(app: str, size: int, seconds: float, zone: str | None = None) -> dict[str, Any]:
    """A batch job of `size` tasks sleeping `seconds`; pinned to `zone` when given."""
    d = _descriptor("batch-hello.json", app, f"sleep {seconds}")
    if zone is not None:
        d["container"]["hardConstraints"] = {"constraints": {"availabilityZone": zone}}
    d["batch"] = {
        "size": size,
        "runtimeLimitSec": "600",
        "retryPolicy": {"immediate": {"retries": BATCH_RETRIES}},
    }
    return d


def service_job(app: str, desired: int) -> dict[str, Any]:
    d = _descriptor("service-web.json", app, "while true; do sleep 1; done")
    d["service"]["capacity"] = {"min": 0, "desired": desired, "max": desired + 2}
    return d


@dataclass
class Job:
    id: str
    kind: str  # "batch" or "service"
    size: int


@dataclass
class Workload:
    """Jobs one scenario submitted; `trickle` keeps submitting while faults run. Every
    other batch job is pinned to `zone` (the zone of the agent the faults hit)."""

    cluster: ChaosCluster
    app: str
    zone: str | None = None
    seconds: float = 3.0
    jobs: list[Job] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, descriptor: dict[str, Any]) -> Job | None:
        kind = "batch" if "batch" in descriptor else "service"
        size = descriptor["batch"]["size"] if kind == "batch" else 0
        if kind == "service":
            size = descriptor["service"]["capacity"]["desired"]
        for _ in range(20):  # bounded: the API's rate limit and brief restarts
            try:
                r = self.cluster.http.post("/api/v3/jobs", json=descriptor, timeout=15)
            except httpx.HTTPError as exc:
                with self._lock:
                    self.refused.append(repr(exc))
                return None
            if r.status_code == 429:
                time.sleep(0.2)
                continue
            if r.status_code != 202:
                with self._lock:
                    self.refused.append(f"{r.status_code}: {r.text[:200]}")
                return None
            job = Job(str(r.json()["id"]), kind, size)
            with self._lock:
                self.jobs.append(job)
            return job
        return None

    def _zone(self, i: int) -> str | None:
        return self.zone if i % 2 == 0 else None

    def batch(self, count: int, size: int = 1) -> None:
        for i in range(count):
            self.submit(batch_job(f"{self.app}b{i}", size, self.seconds, self._zone(i)))

    def service(self, desired: int) -> None:
        self.submit(service_job(f"{self.app}s", desired))

    def trickle(self, stop: threading.Event, every: float, limit: int) -> threading.Thread:
        """Submit one small batch job every `every` seconds until stopped (at most limit)."""

        def run() -> None:
            for i in range(limit):
                if stop.wait(every):
                    return
                self.submit(batch_job(f"{self.app}t{i}", 1, self.seconds, self._zone(i)))

        thread = threading.Thread(target=run, daemon=True, name="chaos-trickle")
        thread.start()
        return thread
