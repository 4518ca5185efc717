"""The schema fuzzer's own command line against a running API, as a client team or an
operator would point it at ours (`st --config-file tests/schemathesis.toml run URL`): over
real HTTP, with the same rules as the pytest run (tests/support/schema_rules.py), its
coverage phase (boundary values of every field, which the pytest run leaves to this one)
and its chains of calls along the description's links find nothing. Its random fuzzing
phase is the pytest run's (tests/integration/test_api_schema.py) in `make test`;
TITUS_SCHEMA_CLI_PHASES adds it.

The API starts with jobs and tasks in its store, as a platform in use has: a batch job and
two service jobs, each with a running task (no master runs here; the tasks are written as
it would have left them). The chains reach what they act on through the listings' links,
not only through what they create themselves.

It also prints warnings. Two are checked: operations it sees "mostly rejecting" generated
data must be ones whose refusals rest on rules JSON Schema cannot state (listed with their
reasons), and none may lack a link to the ids it needs. (Its "missing test data" warning,
operations that mostly answered 404, is not: the coverage phase sends made-up ids to every
operation that takes one, so which operations it names depends on how often the chains
happened to reach each with a real one.)

TITUS_SCHEMA_CLI_EXAMPLES raises the examples per operation for a long run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.moto_server import aws_environment
from tests.support.platform import ROOT, free_port, spawn, stop_process
from tests.support.poll import wait_until
from tests.support.schema_rules import CROSS_FIELD
from titus.model.job import Job, JobStatus, Task, TaskStatus
from titus.model.states import JobState, TaskState
from titus.model.validation import parse_job_descriptor
from titus.store import open_store

EXAMPLES = os.environ.get("TITUS_SCHEMA_CLI_EXAMPLES", "10")
PHASES = os.environ.get("TITUS_SCHEMA_CLI_PHASES", "coverage,stateful")
ST = str(Path(sys.executable).parent / "st")


def _seed(data: Path) -> None:
    """A batch job and two service jobs of one application (a task may move between
    those), each with a running task, written to the store the API will open."""
    data.mkdir(parents=True)
    store = open_store(f"sqlite:///{data / 'titus.db'}")
    base = {
        "owner": {"teamEmail": "seed@example.com"},
        "applicationName": "seeded",
        "container": {
            "image": {"name": "titus/busybox", "tag": "latest"},
            "resources": {"cpu": 0.1, "memoryMB": 64, "diskMB": 100, "networkMbps": 10},
        },
    }
    kinds = [
        {"batch": {"size": 1, "runtimeLimitSec": "600"}},
        *[{"service": {"capacity": {"min": 0, "desired": 1, "max": 5}, "enabled": True}}] * 2,
    ]
    try:
        for n, kind in enumerate(kinds):
            job = Job(
                id=f"00000000-0000-4000-8000-00000000000{n}",
                jobDescriptor=parse_job_descriptor({**base, **kind}),
                status=JobStatus(state=JobState.ACCEPTED),
            )
            task_id = f"00000000-0000-4000-9000-00000000000{n}"
            task = Task(
                id=task_id,
                jobId=job.id,
                originalId=task_id,
                status=TaskStatus(state=TaskState.STARTED),
                taskContext={"task.index": "0"},
            )
            store.create_job(job, [task])
    finally:
        store.close()


def test_the_command_line_fuzzer_finds_nothing_against_a_running_api(
    tmp_path: Path, moto_server: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        **aws_environment(moto_server),
        "TITUS_RATE_LIMIT_BUCKETS": "[]",  # one caller sending many requests on purpose
        "TITUS_GRPC_PORT": str(free_port()),
    }
    log = tmp_path / "api.log"
    _seed(tmp_path / "data")
    api = spawn(["api", "--data-dir", str(tmp_path / "data"), "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            "the API serving its description",
            lambda: httpx.get(f"{url}/openapi.json", timeout=5).status_code == 200,
            timeout=60,
            retry_on=(httpx.TransportError,),
            context=log.read_text,
        )
        run = subprocess.run(
            [
                ST,
                "--config-file",
                "tests/schemathesis.toml",
                "run",
                f"{url}/openapi.json",
                f"--max-examples={EXAMPLES}",
                f"--phases={PHASES}",
                "--exclude-path-regex=.*/(observe|logs)$",
                "--seed=1",
                "--no-color",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        stop_process(api)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-12_000:]
    warned = _listed_after("Schema validation mismatch:", report)
    assert warned <= CROSS_FIELD.keys(), (warned, report[-6_000:])
    assert "No links point to" not in report, report[-6_000:]


def _listed_after(heading: str, report: str) -> set[str]:
    """The `  - METHOD /path` lines of the report's paragraph that starts with `heading`."""
    start = report.find(heading)
    if start < 0:
        return set()
    paragraph = report[start:].split("\n\n", 2)[1]
    return set(re.findall(r"^\s*- ([A-Z]+ /\S*)$", paragraph, flags=re.M))
