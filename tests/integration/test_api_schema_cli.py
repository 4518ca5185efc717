"""The schema fuzzer's own command line against a running API, as a client team or an
operator would point it at ours (`st --config-file tests/schemathesis.toml run URL`): over
real HTTP, with the same rules as the pytest run (tests/support/schema_rules.py), its
coverage phase (boundary values of every field, which the pytest run leaves to this one)
and its chains of calls along the description's links find nothing. Its random fuzzing
phase is the pytest run's (tests/integration/test_api_schema.py) in `make test`;
TITUS_SCHEMA_CLI_PHASES adds it.

It also prints warnings. Two are checked: operations it sees "mostly rejecting" generated
data must be ones whose refusals rest on rules JSON Schema cannot state (listed with their
reasons), and none may lack a link to the ids it needs.

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

EXAMPLES = os.environ.get("TITUS_SCHEMA_CLI_EXAMPLES", "10")
PHASES = os.environ.get("TITUS_SCHEMA_CLI_PHASES", "coverage,stateful")
ST = str(Path(sys.executable).parent / "st")


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
