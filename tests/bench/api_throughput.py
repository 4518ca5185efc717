"""API throughput benchmark: job creations per second and latency at 1, 8 and 32 concurrent
clients, paging `GET /api/v3/jobs` through 10,000 active jobs, and the same load on a
trivial FastAPI endpoint served the same way (uvicorn, one process) as the baseline.

    .venv/bin/python tests/bench/api_throughput.py            # starts its own API
    .venv/bin/python tests/bench/api_throughput.py --url URL  # against a running platform

The self-started API is the real app on a SQLite store (synchronous=FULL as in production)
with in-process coordination and rate limits off; no master runs, so jobs stay active.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

SERVER = r"""
import sys, uvicorn
from fastapi import FastAPI
kind, port, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "baseline":
    app = FastAPI()
    @app.post("/ping", status_code=202)
    async def ping() -> dict:
        return {"id": "x"}
    @app.get("/ping")
    async def pong() -> dict:
        return {"items": []}
else:
    from titus.api.app import create_app
    from titus.coord.local import LocalCoordinator
    from titus.settings import Settings
    from titus.store.sqlite import SqliteJobStore
    settings = Settings(data_dir=data, rate_limit_buckets=[], max_active_jobs=100_000)
    app = create_app(settings, SqliteJobStore(data + "/titus.db"), LocalCoordinator())
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""

JOB: dict[str, Any] = {
    "owner": {"teamEmail": "bench@example.com"},
    "applicationName": "bench",
    "container": {
        "image": {"name": "titus/busybox", "tag": "latest"},
        "resources": {"cpu": 0.1, "memoryMB": 512, "diskMB": 10000, "networkMbps": 128},
    },
    "batch": {"size": 1, "runtimeLimitSec": "600"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str, data: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(port), data])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/docs", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


async def load(url: str, path: str, clients: int, total: int, body: Any) -> dict[str, float]:
    latencies: list[float] = []
    left = total

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            r = await http.post(path, json=body)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 202:
                raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "rate": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


async def page_through(url: str, page_size: int) -> tuple[int, float, float]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        seen, pages, cursor = 0, 0, None
        times = []
        t0 = time.perf_counter()
        while True:
            params: dict[str, Any] = {"pageSize": page_size}
            if cursor:
                params["cursor"] = cursor
            t = time.perf_counter()
            r = (await http.get("/api/v3/jobs", params=params)).json()
            times.append(time.perf_counter() - t)
            seen += len(r["items"])
            pages += 1
            if not r["pagination"]["hasMore"]:
                break
            cursor = r["pagination"]["cursor"]
        return seen, time.perf_counter() - t0, statistics.median(times) * 1000


async def fill(url: str, target: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        have = (await http.get("/api/v3/jobs", params={"pageSize": 1})).json()
        missing = target - have["pagination"]["totalItems"]
    if missing > 0:
        await load(url, "/api/v3/jobs", 32, missing, JOB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running platform (default: start one)")
    parser.add_argument("--requests", type=int, default=1000, help="creations per run")
    parser.add_argument("--jobs", type=int, default=10_000, help="active jobs to page through")
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="titus-bench-")
    procs = []
    if args.url:
        url = args.url
    else:
        proc, url = start("titus", data)
        procs.append(proc)
    base_proc, base_url = start("baseline", data)
    procs.append(base_proc)
    try:
        print(
            f"{'clients':>8} {'titus/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'base/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}"
        )
        for clients in (1, 8, 32):
            t = asyncio.run(load(url, "/api/v3/jobs", clients, args.requests, JOB))
            b = asyncio.run(load(base_url, "/ping", clients, args.requests, JOB))
            print(
                f"{clients:>8} {t['rate']:>9.0f} {t['p50']:>8.2f} {t['p99']:>8.2f} "
                f"{b['rate']:>9.0f} {b['p50']:>8.2f} {b['p99']:>8.2f} "
                f"{t['rate'] / b['rate']:>6.2f}"
            )
        asyncio.run(fill(url, args.jobs))
        for size in (100, 1000):
            seen, elapsed, median = asyncio.run(page_through(url, size))
            print(
                f"GET /api/v3/jobs pageSize={size}: {seen} jobs in {elapsed * 1000:.0f} ms "
                f"(median page {median:.2f} ms)"
            )
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", os.getcwd())
    main()
