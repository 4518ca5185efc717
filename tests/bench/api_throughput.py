"""API throughput benchmark: job creations per second and latency at 1, 8 and 32 concurrent
clients, paging `GET /api/v3/jobs` through 10,000 active jobs, and the same load on a
trivial FastAPI endpoint served the same way (uvicorn, one process) as the baseline.

The load generator is wrk (Debian's package, installed by scripts/wrk.sh when missing),
in a process of its own, the same for both servers: one thread, N keep-alive connections,
each posting the same job descriptor as fast as it is answered, for `--seconds`. Each
round measures titus and the baseline back to back at each client count; the table shows
every round and then the median of the rounds, with the CPU time each server process
spent per request (from /proc, so a machine busy with other work shows as lower rates,
not as a higher cost per request) and the load average before and after.

wrk's latency percentiles weigh a server's stalls far more than a count of requests
would: at one client, with a few collector pauses in the run, it reported a p90 of 50 ms
while the requests timed from its own system calls (strace) took 1.1 ms at p90, as a
plain client and `ab` measured too. So its p99 here says how long and how often the
server stalls (what a client arriving during one waits), not what most requests took.

Two more cases, each on a fresh self-started API:
- fairness: a well-behaved caller (a steady stream of creates and reads, within its rate
  limits) alone, then while a runaway caller (its own token, another process, a fixed
  schedule at ten times its limits) creates and reads, then while the same caller keeps
  within its limits; the well-behaved caller's p50/p99 each way and what the runaway got.
  This API runs with the default rate limits.
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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.platform import free_port
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
    from titus import collector
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
    collector.install()  # as `titus api` does
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


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "seconds": %%f, "p50_us": %%d, "p99_us": %%d, "non2xx": %%d, ' ..
    '"socket_errors": %%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_path() -> str:
    """wrk, installed by scripts/wrk.sh (Debian's package) when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    script = Path(__file__).resolve().parents[2] / "scripts" / "wrk.sh"
    out = subprocess.run(["bash", str(script)], check=True, capture_output=True, text=True)
    return out.stdout.strip().rpartition("WRK=")[2]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_load(
    wrk: str, script: str, url: str, clients: int, seconds: float, pid: int | None
) -> dict[str, float]:
    """One wrk run: rate, p50/p99 (ms) and, with the server's pid, its CPU per request."""
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{clients}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            script,
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    used = cpu_seconds(pid) - before if pid else 0.0
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["non2xx"] or result["socket_errors"]:
        raise RuntimeError(f"{url}: {result['non2xx']} non-2xx answers, {result}")
    requests = max(1, result["requests"])
    return {
        "rate": requests / result["seconds"],
        "p50": result["p50_us"] / 1000,
        "p99": result["p99_us"] / 1000,
        "cpu_us": used / requests * 1e6 if pid else float("nan"),
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def throughput(
    titus: tuple[str, int | None], base: tuple[str, int], seconds: float, rounds: int
) -> None:
    """Creates at 1, 8 and 32 clients, titus and the baseline back to back, `rounds`
    times; each round's figures, then the medians."""
    wrk = wrk_path()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % json.dumps(JOB))
    print(f"load generator: {wrk} (one thread, N connections, its own process)")
    print(f"load average before: {loadavg()}")
    header = (
        f"{'round':>5} {'clients':>7} {'titus/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cpu us':>7} "
        f"{'base/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cpu us':>7} {'ratio':>6} {'p99 x':>6}"
    )
    print(header)
    rows: dict[int, list[tuple[dict[str, float], dict[str, float]]]] = {1: [], 8: [], 32: []}

    def line(label: str, clients: int, t: dict[str, float], b: dict[str, float]) -> None:
        print(
            f"{label:>5} {clients:>7} {t['rate']:>8.0f} {t['p50']:>7.2f} {t['p99']:>7.2f} "
            f"{t['cpu_us']:>7.0f} {b['rate']:>8.0f} {b['p50']:>7.2f} {b['p99']:>7.2f} "
            f"{b['cpu_us']:>7.0f} {t['rate'] / b['rate']:>6.2f} {t['p99'] / b['p99']:>6.2f}",
            flush=True,
        )

    for clients in rows:  # warm up both (imports, first connections, the view's load)
        wrk_load(wrk, f.name, titus[0] + "/api/v3/jobs", clients, 1, None)
        wrk_load(wrk, f.name, base[0] + "/ping", clients, 1, None)
    for n in range(rounds):
        for clients in rows:
            t = wrk_load(wrk, f.name, titus[0] + "/api/v3/jobs", clients, seconds, titus[1])
            b = wrk_load(wrk, f.name, base[0] + "/ping", clients, seconds, base[1])
            rows[clients].append((t, b))
            line(str(n + 1), clients, t, b)
    os.unlink(f.name)

    def median(runs: list[dict[str, float]]) -> dict[str, float]:
        return {k: statistics.median(r[k] for r in runs) for k in runs[0]}

    for clients, runs in rows.items():
        t, b = median([r[0] for r in runs]), median([r[1] for r in runs])
        t["rate"] = statistics.median(r[0]["rate"] for r in runs)
        ratio = statistics.median(r[0]["rate"] / r[1]["rate"] for r in runs)
        p99x = statistics.median(r[0]["p99"] / r[1]["p99"] for r in runs)
        print(
            f"{'med':>5} {clients:>7} {t['rate']:>8.0f} {t['p50']:>7.2f} {t['p99']:>7.2f} "
            f"{t['cpu_us']:>7.0f} {b['rate']:>8.0f} {b['p50']:>7.2f} {b['p99']:>7.2f} "
            f"{b['cpu_us']:>7.0f} {ratio:>6.2f} {p99x:>6.2f}"
        )
    print(f"load average after: {loadavg()}")


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


async def runaway(
    url: str, seconds: float, connections: int, create_rate: float, read_rate: float
) -> dict[str, Any]:
    """A runaway caller: `create_rate` creates and `read_rate` listings a second on a fixed
    schedule, spread over `connections` keep-alive connections (each sends its next request
    when it is due and its previous answer has come: HTTP/1.1 without pipelining), ignoring
    Retry-After. What it got: the count of each status and the rate it achieved. Plain
    sockets, not httpx: a client library's own cost would cap the runaway's rate below
    what it asks of the server."""
    counts: dict[str, int] = {}
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(JOB).encode()
    head = f"Host: {host}\r\nX-Titus-CallerId: runaway\r\nAuthorization: Bearer tok-runaway\r\n"
    create = (
        f"POST /api/v3/jobs HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    read = f"GET /api/v3/jobs?pageSize=10 HTTP/1.1\r\n{head}\r\n".encode()
    total = create_rate + read_rate
    creators = max(1, round(connections * create_rate / total))
    pools = [(create, creators, create_rate), (read, max(1, connections - creators), read_rate)]
    t0 = time.perf_counter() + 0.2
    stop = t0 + seconds

    async def worker(request: bytes, interval: float, offset: float) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        due = t0 + offset
        while due < stop:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(request)
            status = (await reader.readuntil(b"\r\n")).split()[1].decode()
            length = 0
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            counts[status] = counts.get(status, 0) + 1
            due += interval
        writer.close()

    workers = []
    for request, count, rate in pools:
        interval = count / rate
        workers += [worker(request, interval, interval * i / count) for i in range(count)]
    await asyncio.gather(*workers)
    # when the server falls behind the schedule the run takes longer: the rate is the real one
    return {"counts": counts, "rate": sum(counts.values()) / (time.perf_counter() - t0)}


def helper(*args: str) -> subprocess.Popen[str]:
    """This script in another process (so its load does not share the measuring client's
    event loop): `--runaway` or `--watch`."""
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def fairness(data: str, seconds: float, connections: int, rounds: int) -> None:
    """The well-behaved caller's p50/p99 alone, beside a runaway at ten times its limits
    (the default buckets' refill rates), and beside the same caller keeping within them
    (what the platform owes it anyway: the part of the slowdown no refusal can remove),
    `rounds` times; each round, then the medians."""
    from titus.settings import Settings

    refill = {b.name: b.refill_per_sec for b in Settings().rate_limit_buckets}
    proc, url = start("titus-limited", data)
    print(
        f"fairness: a well-behaved caller (40 req/s, creates and listings alternating, its own "
        f"token) alone, then beside a runaway (another process, its own token, {connections} "
        f"connections, {10 * refill['job-create']:.0f} creates/s and "
        f"{10 * refill['reads']:.0f} listings/s scheduled: 10x its limits), then beside the "
        "same caller at its limits (1x)"
    )
    print(f"load average before: {loadavg()}")

    def beside(factor: float) -> tuple[tuple[float, float], dict[str, Any]]:
        hog = helper(
            "--runaway",
            url,
            "--seconds",
            str(seconds + 1.0),
            "--clients",
            str(connections),
            "--create-rate",
            str(factor * refill["job-create"]),
            "--read-rate",
            str(factor * refill["reads"]),
        )
        time.sleep(0.7)  # the runaway is at full speed before the measurement starts
        shared = percentiles(asyncio.run(steady(url, "steady", seconds, 40)))
        out, _ = hog.communicate(timeout=seconds + 60)
        time.sleep(2.0)  # its buckets refill before the next measurement
        return shared, json.loads(out.strip().splitlines()[-1])

    results = []
    try:
        asyncio.run(steady(url, "warmup", 1.0, 20))
        for n in range(rounds):
            alone = percentiles(asyncio.run(steady(url, "steady", seconds, 40)))
            shared, got = beside(10)
            within, _ = beside(1)
            results.append((alone, shared, within))
            print(
                f"  round {n + 1}: p50/p99 alone {alone[0]:.2f}/{alone[1]:.2f} ms, beside the "
                f"runaway {shared[0]:.2f}/{shared[1]:.2f} ms (p99 x{shared[1] / alone[1]:.2f}), "
                f"beside it within its limits {within[0]:.2f}/{within[1]:.2f} ms (p99 "
                f"x{within[1] / alone[1]:.2f}); runaway answered {got['rate']:.0f}/s, statuses "
                f"{dict(sorted(got['counts'].items()))}",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(10)
    p99x = statistics.median(r[1][1] / r[0][1] for r in results)
    p99w = statistics.median(r[2][1] / r[0][1] for r in results)
    print(
        f"  median: p99 alone {statistics.median(r[0][1] for r in results):.2f} ms, beside "
        f"{statistics.median(r[1][1] for r in results):.2f} ms, ratio x{p99x:.2f}; within "
        f"its limits {statistics.median(r[2][1] for r in results):.2f} ms, x{p99w:.2f}"
    )
    print(f"load average after: {loadavg()}")


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
    parser.add_argument("--requests", type=int, default=500, help="watchers: creates per run")
    parser.add_argument("--rounds", type=int, default=3, help="throughput: rounds (median)")
    parser.add_argument("--jobs", type=int, default=10_000, help="active jobs to page through")
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="seconds per measurement (wrk, fairness)"
    )
    parser.add_argument("--clients", type=int, default=256, help="fairness: runaway connections")
    parser.add_argument("--create-rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--read-rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--watchers", type=int, default=200, help="observe clients")
    parser.add_argument("--only", choices=["throughput", "fairness", "watchers"])
    parser.add_argument("--runaway", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--watch", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runaway:
        got = runaway(args.runaway, args.seconds, args.clients, args.create_rate, args.read_rate)
        print(json.dumps(asyncio.run(got)))
        return
    if args.watch:
        asyncio.run(watch(args.watch, args.watchers))
        return
    data = tempfile.mkdtemp(prefix="titus-bench-")
    if args.only in (None, "fairness"):
        fairness(data + "/fairness", args.seconds, args.clients, args.rounds)
    if args.only in (None, "watchers"):
        watchers_case(data + "/watchers", args.watchers, min(args.requests, 500))
    if args.only not in (None, "throughput"):
        return
    procs = []
    pid: int | None = None
    if args.url:
        url = args.url
    else:
        proc, url = start("titus", data)
        procs.append(proc)
        pid = proc.pid
    base_proc, base_url = start("baseline", data)
    procs.append(base_proc)
    try:
        throughput((url, pid), (base_url, base_proc.pid), args.seconds, args.rounds)
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
