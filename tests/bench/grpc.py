"""gRPC next to REST, same run, same `titus api` process: CreateJob per second (one client,
sequential), FindJobs latency (a page of 10 among the jobs created), and ObserveJobs fan-out
(N watchers, each with its snapshot; then one change, and how long until all have it).

    .venv/bin/python -m tests.bench.grpc [--jobs 300] [--watchers 200]

The API runs as `titus api --coord local` on a SQLite store (synchronous=FULL as in
production), rate limits off; no master runs, so jobs stay active and nothing is placed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
import httpx
from google.protobuf import json_format

from tests.support.platform import TITUS, free_port
from tests.support.poll import wait_until
from titus.api.grpc.gen import titus_base_pb2 as base
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.grpc.gen.titus_job_api_pb2_grpc import JobManagementServiceStub

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "service-web.json"


def _body(i: int) -> dict[str, object]:
    body = json.loads(EXAMPLE.read_text())
    body.pop("jobGroupInfo", None)
    body["applicationName"] = f"bench{i % 7}"
    return copy.deepcopy(body)


def _pcts(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms"


def _creates(http: httpx.Client, stub: JobManagementServiceStub, n: int) -> None:
    started = time.perf_counter()
    for i in range(n):
        assert http.post("/api/v3/jobs", json=_body(i)).status_code == 202
    rest = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(n):
        stub.CreateJob(json_format.ParseDict(_body(i), pb.JobDescriptor()))
    rpc = n / (time.perf_counter() - started)
    print(f"creates, 1 client: REST {rest:.0f}/s, gRPC {rpc:.0f}/s, gRPC/REST {rpc / rest:.2f}")


def _finds(http: httpx.Client, stub: JobManagementServiceStub, n: int) -> None:
    rest, rpc = [], []
    for _ in range(n):
        t = time.perf_counter()
        http.get("/api/v3/jobs", params={"pageSize": "10", "applicationName": "bench3"})
        rest.append(time.perf_counter() - t)
        t = time.perf_counter()
        stub.FindJobs(
            pb.JobQuery(
                page=base.Page(pageSize=10), filteringCriteria={"applicationName": "bench3"}
            )
        )
        rpc.append(time.perf_counter() - t)
    print(f"FindJobs, a page of 10: REST {_pcts(rest)}; gRPC {_pcts(rpc)}")


async def _fan_out(address: str, http: httpx.Client, watchers: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = JobManagementServiceStub(channel)
        streams = [stub.ObserveJobs(pb.ObserveJobsQuery()) for _ in range(watchers)]

        async def until_snapshot_end(stream: grpc.aio.UnaryStreamCall) -> int:
            seen = 0
            async for note in stream:
                if note.HasField("snapshotEnd"):
                    return seen
                seen += 1
            return seen

        started = time.perf_counter()
        sizes = await asyncio.gather(*(until_snapshot_end(s) for s in streams))
        snapshot = time.perf_counter() - started
        job_id = http.post("/api/v3/jobs", json=_body(0)).json()["id"]
        created = time.perf_counter()

        async def until_job(stream: grpc.aio.UnaryStreamCall) -> float:
            async for note in stream:
                if note.HasField("jobUpdate") and note.jobUpdate.job.id == job_id:
                    return time.perf_counter() - created
            return float("inf")

        lags = await asyncio.gather(*(until_job(s) for s in streams))
        for s in streams:
            s.cancel()
    print(
        f"ObserveJobs: {watchers} watchers got their snapshots ({sizes[0]} notes each) in "
        f"{snapshot:.2f} s; one new job reached all of them in {max(lags):.3f} s "
        f"(median {statistics.median(lags):.3f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--finds", type=int, default=200)
    parser.add_argument("--watchers", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        port, grpc_port = free_port(), free_port()
        env = {
            **os.environ,
            "TITUS_DATA_DIR": data,
            "TITUS_RATE_LIMIT_BUCKETS": "[]",
            "TITUS_MAX_ACTIVE_JOBS": "100000",
            "TITUS_GRPC_PORT": str(grpc_port),
        }
        proc = subprocess.Popen(
            [TITUS, "api", "--coord", "local", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

            def up() -> bool:
                try:
                    return http.get("/health").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until("the API up", up, 30)
            address = f"127.0.0.1:{grpc_port}"
            with grpc.insecure_channel(address) as channel:
                stub = JobManagementServiceStub(channel)
                _creates(http, stub, args.jobs)
                _finds(http, stub, args.finds)
            asyncio.run(_fan_out(address, http, args.watchers))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
