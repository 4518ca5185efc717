"""API throughput benchmark: job creations per second and latency at 1, 8 and 32 concurrent
clients, paging `GET /api/v3/jobs` through 10,000 active jobs, and the same load on a
trivial FastAPI endpoint served the same way (uvicorn, one process) as the baseline.

Two more cases, each on a fresh self-started API:
- fairness: a well-behaved caller (a steady stream of creates and reads, within its rate
  limits) alone, then while a runaway caller (its own token, another process)
  creates and reads as fast as it can; the well-behaved caller's p50/p99 both ways and how
  many of the runaway's requests got 429. This API runs with the default rate limits.
- watchers: create and read latency of one client without observe clients, then with
  `--watchers` (default 200) observe streams connected (another process), and the ratio.

    .venv/bin/python -m tests.bench.api_throughput            # starts its own API
    .venv/bin/python -m tests.bench.api_throughput --url URL  # against a running platform

The self-started API is the real app on a SQLite store (synchronous=FULL as in production)
with in-process coordination and rate limits off; no master runs, so jobs stay active.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

from tests.support.poll import wait_until

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
    if kind == "titus-limited":
        # both callers on loopback: tokens tell them apart (rate limits key on the
        # principal, or the client address without one)
        import json, os
        os.makedirs(data, exist_ok=True)
        with open(data + "/tokens.json", "w") as f:
            callers = ("warmup", "steady", "runaway")
            json.dump({f"tok-{c}": {"callerId": c} for c in callers}, f)
        settings = Settings(
            data_dir=data, max_active_jobs=100_000, auth_tokens_file=data + "/tokens.json"
        )
    else:
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
    os.makedirs(data, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(port), data])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            f"the {kind} server to answer",
            lambda: httpx.get(url + "/docs", timeout=1) is not None,  # any answer: it is up
            30,
            interval=0.1,
            retry_on=(httpx.HTTPError,),
        )
    except AssertionError:
        proc.kill()
        raise
    return proc, url


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


def percentiles(latencies: list[float]) -> tuple[float, float]:
    """(p50, p99) in ms."""
    latencies = sorted(latencies)
    return (
        statistics.median(latencies) * 1000,
        latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
    )


async def steady(url: str, caller: str, seconds: float, per_sec: float) -> list[float]:
    """A well-behaved caller: `per_sec` requests a second on a fixed schedule, alternating a
    create and a listing (within its rate limits); the latency of each."""
    latencies: list[float] = []
    headers = {"X-Titus-CallerId": caller, "Authorization": f"Bearer tok-{caller}"}
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as http:
        t0 = time.perf_counter()
        for i in range(int(seconds * per_sec)):
            delay = t0 + i / per_sec - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t = time.perf_counter()
            if i % 2 == 0:
                r = await http.post("/api/v3/jobs", json=JOB)
                expected = 202
            else:
                r = await http.get("/api/v3/jobs", params={"pageSize": 10})
                expected = 200
            latencies.append(time.perf_counter() - t)
            if r.status_code != expected:
                raise RuntimeError(f"well-behaved caller got {r.status_code} {r.text[:200]}")
    return latencies


async def runaway(url: str, seconds: float, clients: int) -> dict[str, int]:
    """A runaway caller: `clients` keep-alive connections creating and reading as fast as
    they can, ignoring Retry-After; the count of each status it got. Plain sockets, not
    httpx: a client library's own cost would cap the runaway's rate below the server's."""
    counts: dict[str, int] = {}
    stop = time.perf_counter() + seconds
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(JOB).encode()
    head = f"Host: {host}\r\nX-Titus-CallerId: runaway\r\nAuthorization: Bearer tok-runaway\r\n"
    create = (
        f"POST /api/v3/jobs HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    read = f"GET /api/v3/jobs?pageSize=10 HTTP/1.1\r\n{head}\r\n".encode()

    async def worker(n: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        i = n
        while time.perf_counter() < stop:
            writer.write(create if i % 2 == 0 else read)
            i += 1
            status = (await reader.readuntil(b"\r\n")).split()[1].decode()
            length = 0
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            counts[status] = counts.get(status, 0) + 1
        writer.close()

    await asyncio.gather(*(worker(n) for n in range(clients)))
    return counts


def helper(*args: str) -> subprocess.Popen[str]:
    """This script in another process (so its load does not share the measuring client's
    event loop): `--runaway` or `--watch`."""
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def fairness(data: str, seconds: float, clients: int) -> None:
    proc, url = start("titus-limited", data)
    try:
        asyncio.run(steady(url, "warmup", 1.0, 20))
        alone = percentiles(asyncio.run(steady(url, "steady", seconds, 40)))
        hog = helper("--runaway", url, "--seconds", str(seconds + 1.0), "--clients", str(clients))
        time.sleep(0.5)  # the runaway is at full speed before the measurement starts
        shared = percentiles(asyncio.run(steady(url, "steady", seconds, 40)))
        out, _ = hog.communicate(timeout=seconds + 60)
        counts: dict[str, int] = json.loads(out.strip().splitlines()[-1])
    finally:
        proc.terminate()
        proc.wait(10)
    total = sum(counts.values())
    print(
        f"fairness: well-behaved caller (40 req/s, creates and reads) p50/p99 alone "
        f"{alone[0]:.2f}/{alone[1]:.2f} ms, beside a runaway {shared[0]:.2f}/{shared[1]:.2f} ms "
        f"(p99 x{shared[1] / alone[1]:.2f}); runaway ({clients} connections): {total} requests "
        f"in {seconds + 1.0:.0f} s, {counts.get('429', 0)} got 429, statuses {counts}"
    )


async def watch(url: str, watchers: int) -> None:
    """`watchers` observe streams on raw sockets (cheap for this process): says `ready` once
    every stream has its SnapshotEnd, reads until told to stop on stdin, then prints how
    many events the streams got, as JSON."""
    host, port = url.removeprefix("http://").split(":")
    events = 0
    ready = 0
    all_ready = asyncio.Event()

    async def one(n: int) -> None:
        nonlocal events, ready
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /api/v3/jobs/observe HTTP/1.1\r\nHost: {host}\r\n"
            f"X-Titus-CallerId: watcher-{n}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        seen_end = False
        tail = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            data = tail + chunk
            events += data.count(b"\nevent: ") + data.startswith(b"event: ")
            tail = data[-16:]
            events -= tail.count(b"\nevent: ")
            if not seen_end and b"SnapshotEnd" in data:
                seen_end = True
                ready += 1
                if ready == watchers:
                    all_ready.set()

    tasks = [asyncio.create_task(one(n)) for n in range(watchers)]
    await asyncio.wait_for(all_ready.wait(), 60)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for task in tasks:
        task.cancel()
    print(json.dumps({"events": events}), flush=True)


async def latency(url: str, count: int) -> dict[str, tuple[float, float]]:
    """One client: `count` creates, then `count` reads of a job and of a page of jobs."""
    out: dict[str, list[float]] = {"create": [], "get": [], "list": []}
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for _ in range(count):
            t = time.perf_counter()
            r = await http.post("/api/v3/jobs", json=JOB)
            out["create"].append(time.perf_counter() - t)
            ids.append(r.json()["id"])
        for job_id in ids:
            t = time.perf_counter()
            await http.get(f"/api/v3/jobs/{job_id}")
            out["get"].append(time.perf_counter() - t)
            t = time.perf_counter()
            await http.get("/api/v3/jobs", params={"pageSize": 10})
            out["list"].append(time.perf_counter() - t)
    return {k: percentiles(v) for k, v in out.items()}


def watchers_case(data: str, watchers: int, count: int) -> None:
    proc, url = start("titus", data)
    try:
        asyncio.run(latency(url, 50))  # warm up
        without = asyncio.run(latency(url, count))
        crowd = helper("--watch", url, "--watchers", str(watchers))
        assert crowd.stdout is not None and crowd.stdin is not None
        if crowd.stdout.readline().strip() != "ready":
            raise RuntimeError("observe clients did not connect")
        with_watchers = asyncio.run(latency(url, count))
        out, _ = crowd.communicate("stop\n", timeout=60)
        got = json.loads(out.strip().splitlines()[-1])["events"]
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"watchers: one client, {count} creates and {count} reads each, p50/p99 ms")
    for what in ("create", "get", "list"):
        a, b = without[what], with_watchers[what]
        print(
            f"  {what:>6}: without {a[0]:.2f}/{a[1]:.2f}, with {watchers} watchers "
            f"{b[0]:.2f}/{b[1]:.2f}, ratio p50 {b[0] / a[0]:.2f} p99 {b[1] / a[1]:.2f}"
        )
    print(f"  the {watchers} watchers received {got} events in all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running platform (default: start one)")
    parser.add_argument("--requests", type=int, default=1000, help="creations per run")
    parser.add_argument("--jobs", type=int, default=10_000, help="active jobs to page through")
    parser.add_argument("--seconds", type=float, default=5.0, help="fairness: seconds per phase")
    parser.add_argument("--clients", type=int, default=32, help="fairness: runaway connections")
    parser.add_argument("--watchers", type=int, default=200, help="observe clients")
    parser.add_argument("--only", choices=["throughput", "fairness", "watchers"])
    parser.add_argument("--runaway", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--watch", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runaway:
        print(json.dumps(asyncio.run(runaway(args.runaway, args.seconds, args.clients))))
        return
    if args.watch:
        asyncio.run(watch(args.watch, args.watchers))
        return
    data = tempfile.mkdtemp(prefix="titus-bench-")
    if args.only in (None, "fairness"):
        fairness(data + "/fairness", args.seconds, args.clients)
    if args.only in (None, "watchers"):
        watchers_case(data + "/watchers", args.watchers, min(args.requests, 500))
    if args.only not in (None, "throughput"):
        return
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
