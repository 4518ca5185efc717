"""Submit-to-Started and submit-to-Finished latency of batch jobs, against a bare
`docker run` measured in the same run.

    python -m tests.bench.e2e_latency                # starts its own `titus local`
    python -m tests.bench.e2e_latency --url http://127.0.0.1:7001   # a running platform

Prints p50/p95 of each figure, the baseline and the ratios. Jobs are submitted one after
another (each waits for the previous to finish), so the figures are latencies, not queueing;
each job is followed by one bare `docker run`, so both see the same (shared) machine.

Then where submit-to-Started goes, p50 of each phase over the jobs, from the client's
clock and the task's status history (every part runs on this machine, one clock):

    API accept and store write   submit -> the 202 (validation, the durable write)
    leader wake-up               the 202 -> the task made (Accepted) by the leader
    placement                    Accepted -> Launched (scheduled, the launch decided)
    launch call                  Launched -> StartInitiated (the agent has the launch)
    agent hooks + container      StartInitiated -> Started, split by the agent's hook
                                 timings (its /metrics histograms, mean per launch)
    report back                  Started -> the API shows it (the client polls every 5 ms)
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


def status_times(task: dict[str, Any]) -> dict[str, float]:
    """The first time (seconds) the task entered each state."""
    out: dict[str, float] = {}
    for st in [*task["statusHistory"], task["status"]]:
        out.setdefault(st["state"], float(st["timestamp"]) / 1000.0)
    return out


def run_jobs(url: str, count: int) -> tuple[list[float], list[float], list[dict[str, float]]]:
    http = httpx.Client(base_url=url, timeout=30)
    to_started, to_finished, phases = [], [], []
    for _ in range(count):
        submitted = time.time()
        job_id = http.post("/api/v3/jobs", json=JOB).json()["id"]
        acked = time.time()

        def started_task(job: str = job_id) -> dict[str, Any] | None:
            items = http.get("/api/v3/tasks", params={"jobIds": job}).json()["items"]
            if items and "Started" in status_times(items[0]):
                return dict(items[0])
            return None

        wait_until(f"job {job_id} to start", started_task, 60, interval=0.005)
        seen = time.time()
        wait_until(
            f"job {job_id} to finish",
            lambda job=job_id: (
                http.get(f"/api/v3/jobs/{job}").json()["status"]["state"] == "Finished"
            ),
            60,
            interval=0.02,
        )
        [task] = http.get("/api/v3/tasks", params={"jobIds": job_id}).json()["items"]
        times = status_times(task)
        started, finished = times.get("Started"), times.get("Finished")
        if started is None or finished is None:
            raise SystemExit(f"job {job_id} did not run: {task['status']}")
        to_started.append(started - submitted)
        to_finished.append(finished - submitted)
        accepted = times.get("Accepted", acked)
        launched = times.get("Launched", accepted)
        initiated = times.get("StartInitiated", launched)
        phases.append(
            {
                "API accept and store write": acked - submitted,
                "leader wake-up": accepted - acked,
                "placement": launched - accepted,
                "launch call": initiated - launched,
                "agent hooks + container": started - initiated,
                "report back": seen - started,
            }
        )
    return to_started, to_finished, phases


def histogram_sums(url: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(sum, count) of the agent's launch and hook-setup histograms, by (metric, hook)."""
    sums: dict[tuple[str, str], list[float]] = {}
    text = httpx.get(url + "/metrics", timeout=30).text
    for line in text.splitlines():
        for name in (
            "titus_agent_hook_setup_duration_seconds",
            "titus_agent_launch_duration_seconds",
        ):
            for suffix, slot in (("_sum{", 0), ("_count{", 1)):
                if line.startswith(name + suffix) and 'result="ok"' in line:
                    hook = line.partition('hook="')[2].partition('"')[0] or "(all hooks)"
                    entry = sums.setdefault((name, hook), [0.0, 0.0])
                    entry[slot] = float(line.rpartition(" ")[2])
    return {k: (v[0], v[1]) for k, v in sums.items()}


def print_breakdown(
    phases: list[dict[str, float]],
    before: dict[tuple[str, str], tuple[float, float]],
    after: dict[tuple[str, str], tuple[float, float]],
) -> None:
    print("where submit-to-Started goes (p50 over the jobs, ms):")
    for name in phases[0]:
        print(f"  {name:<28} {statistics.median(p[name] for p in phases) * 1000:7.1f}")
        if name != "agent hooks + container":
            continue
        for (metric, hook), (total, count) in sorted(after.items()):
            was_total, was_count = before.get((metric, hook), (0.0, 0.0))
            if metric.endswith("hook_setup_duration_seconds") and count > was_count:
                mean = (total - was_total) / (count - was_count) * 1000
                print(f"    hook {hook:<23} {mean:7.1f} (mean)")


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
        before = histogram_sums(url)
        started, finished, phases, baseline = [], [], [], []
        for _ in range(args.jobs):  # job and baseline in turn: both see the same machine
            one = run_jobs(url, 1)
            started += one[0]
            finished += one[1]
            phases += one[2]
            baseline += bare_docker(docker_host, 1)
        after = histogram_sums(url)
    finally:
        if platform is not None:
            platform.stop()
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
    print_breakdown(phases, before, after)
    print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
