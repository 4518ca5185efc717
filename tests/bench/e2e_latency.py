"""Submit-to-Started and submit-to-Finished latency of batch jobs, against a bare
`docker run` measured in the same run.

    python -m tests.bench.e2e_latency                # starts its own `titus local`
    python -m tests.bench.e2e_latency --url http://127.0.0.1:7001   # a running platform

Prints p50/p95 of each figure, the baseline and the ratios. Jobs are submitted one after
another (each waits for the previous to finish), so the figures are latencies, not queueing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.docker_engine import start_docker_engine
from tests.support.platform import make_platform
from tests.support.poll import wait_until

JOB: dict[str, Any] = {
    "owner": {"teamEmail": "bench@example.com"},
    "applicationName": "bench",
    "container": {
        "image": {"name": "titus/busybox", "tag": "latest"},
        "entryPoint": ["echo", "hello"],
        "resources": {"cpu": 0.25, "memoryMB": 512, "diskMB": 10000, "networkMbps": 128},
    },
    "batch": {"size": 1},
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def state_time(task: dict[str, Any], state: str) -> float | None:
    for s in [*task["statusHistory"], task["status"]]:
        if s["state"] == state:
            return float(s["timestamp"]) / 1000.0
    return None


def run_jobs(url: str, count: int) -> tuple[list[float], list[float]]:
    http = httpx.Client(base_url=url, timeout=30)
    to_started, to_finished = [], []
    for _ in range(count):
        submitted = time.time()
        job_id = http.post("/api/v3/jobs", json=JOB).json()["id"]
        wait_until(
            f"job {job_id} to finish",
            lambda job=job_id: (
                http.get(f"/api/v3/jobs/{job}").json()["status"]["state"] == "Finished"
            ),
            60,
            interval=0.02,
        )
        [task] = http.get("/api/v3/tasks", params={"jobIds": job_id}).json()["items"]
        started, finished = state_time(task, "Started"), state_time(task, "Finished")
        if started is None or finished is None:
            raise SystemExit(f"job {job_id} did not run: {task['status']}")
        to_started.append(started - submitted)
        to_finished.append(finished - submitted)
    return to_started, to_finished


def bare_docker(docker_host: str, count: int) -> list[float]:
    out = []
    for _ in range(count):
        t = time.perf_counter()
        subprocess.run(
            ["docker", "-H", docker_host, "run", "--rm", "titus/busybox:latest", "echo", "hello"],
            check=True,
            capture_output=True,
        )
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="a running platform (default: start one)")
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    docker_host = start_docker_engine()
    platform = None
    url = args.url
    if url is None:
        platform = make_platform(Path(tempfile.mkdtemp(prefix="titus-bench-")))
        platform.start()
        url = platform.url
    try:
        run_jobs(url, 2)  # warm up
        started, finished = run_jobs(url, args.jobs)
    finally:
        if platform is not None:
            platform.stop()
    baseline = bare_docker(docker_host, args.jobs)
    b50 = statistics.median(baseline)
    print(f"jobs: {args.jobs}")
    print(
        f"bare docker run --rm echo: p50 {b50 * 1000:.0f} ms, p95 {pct(baseline, 95) * 1000:.0f} ms"
    )
    for name, values in (("submit-to-Started", started), ("submit-to-Finished", finished)):
        p50, p95 = statistics.median(values), pct(values, 95)
        print(
            f"{name}: p50 {p50 * 1000:.0f} ms, p95 {pct(values, 95) * 1000:.0f} ms, "
            f"ratio to bare docker p50 {p50 / b50:.2f}, p95 {p95 / pct(baseline, 95):.2f}"
        )


if __name__ == "__main__":
    main()
