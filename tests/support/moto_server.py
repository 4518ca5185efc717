"""A moto server on loopback for tests that talk to AWS through boto3.

`moto_server` (session) starts `ThreadedMotoServer` once on a loopback port the system
picks; `aws_env` (function) points boto3 at it through the environment (AWS_ENDPOINT_URL, fake
credentials, a region) for one test and resets moto's state after it, so tests never
see each other's buckets or groups. Nothing leaves the machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
#: An image moto always has (its example AMI). Listing Amazon's images to pick one takes
#: moto seconds (it serializes some 1,300 of them).
EXAMPLE_IMAGE = "ami-12c6146b"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def aws_environment(endpoint: str) -> dict[str, str]:
    """The environment that points boto3 (in this process or a child) at moto."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }


def speak_to_moto(env: pytest.MonkeyPatch, endpoint: str) -> None:
    """Point this process's boto3 at moto for as long as `env` holds (no profile either)."""
    for name, value in aws_environment(endpoint).items():
        env.setenv(name, value)
    env.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The endpoint URL; the environment of this test speaks to moto."""
    speak_to_moto(monkeypatch, moto_server)
    yield moto_server
    httpx.post(f"{moto_server}/moto-api/reset", timeout=30)
