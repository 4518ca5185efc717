"""The platform's processes refuse to listen beyond loopback without their credentials: an
API without tokens, an agent without the cluster secret. Started as an operator would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.platform import TITUS


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TITUS_")}
    return subprocess.run(
        [TITUS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "TITUS_DATA_DIR": str(tmp_path), **env},
    )


@pytest.mark.parametrize("variable", ["TITUS_API_HOST", "TITUS_GRPC_HOST"])
def test_an_api_without_tokens_will_not_listen_beyond_loopback(
    tmp_path: Path, variable: str
) -> None:
    proc = _run(tmp_path, "api", "--coord", "local", **{variable: "0.0.0.0"})
    assert proc.returncode == 1
    assert "would serve everyone on 0.0.0.0 without tokens" in proc.stderr


def test_an_agent_without_the_cluster_secret_will_not_listen_beyond_loopback(
    tmp_path: Path,
) -> None:
    proc = _run(tmp_path, "agent", "--coord", "local", TITUS_AGENT_HOST="0.0.0.0")
    assert proc.returncode == 1
    assert "would take unsigned calls on 0.0.0.0" in proc.stderr


def test_a_short_cluster_secret_is_refused_by_name(tmp_path: Path) -> None:
    proc = _run(tmp_path, "agent", "--coord", "local", TITUS_CLUSTER_SECRET="short")
    assert proc.returncode == 1
    assert "cluster_secret must be at least 16 characters" in proc.stderr
