"""`titus job submit --wait`: follow a new job until its work is under way or done.

A batch job is followed until it finishes, a service job until its desired number of
tasks run. Each time the count of tasks per state changes, one progress line goes to
stderr (stdout stays the job's id or JSON, for scripts), with the scheduler's reason when
tasks wait. Polling the API every POLL_SEC keeps this a plain client of the REST API.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

from titus.cli.client import Api, CommandError, all_pages

POLL_SEC = 0.5


def summary(counts: Counter[str]) -> str:
    order = ["Accepted", "Launched", "StartInitiated", "Started", "KillInitiated", "Finished"]
    return ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s))


def wait_for_job(
    api: Api,
    job_id: str,
    timeout_sec: float,
    out: TextIO = sys.stderr,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until the job's tasks run (service) or the job finished (batch); return the
    job. CommandError when `timeout_sec` passes first."""
    deadline = clock() + timeout_sec
    last = ""
    while True:
        job = api.call("GET", f"/api/v3/jobs/{job_id}")
        tasks = all_pages(api, "/api/v3/tasks", {"jobIds": job_id})
        counts = Counter(t["status"]["state"] for t in tasks)
        line = f"job {job_id}: {job['status']['state']}; tasks: {summary(counts) or 'none yet'}"
        waiting = [t for t in tasks if t["status"]["state"] == "Accepted"]
        if waiting:
            why = api.call("GET", f"/api/v3/scheduler/results/{waiting[0]['id']}")
            if why.get("message") and not why.get("placed"):
                line += f"; waiting: {why['message']}"
        if line != last:
            print(line, file=out, flush=True)
            last = line
        service = job["jobDescriptor"].get("service")
        if job["status"]["state"] == "Finished":
            return job
        if service is not None and counts["Started"] >= service["capacity"]["desired"]:
            return job
        if clock() >= deadline:
            raise CommandError(f"job {job_id}: still not there after {timeout_sec:g} s ({line})")
        time.sleep(POLL_SEC)
