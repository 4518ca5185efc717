"""The `titus` command against a platform that requires tokens: it finds its token where an
engineer keeps it (TITUS_TOKEN, a token file) and refuses a token file others can read."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.platform import TITUS, Platform, running_platform

pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "batch-hello.json"
TOKEN = "alice-token-0123456789"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Platform]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({TOKEN: {"callerId": "alice"}}))
    with running_platform(tmp_path, {"TITUS_AUTH_TOKENS_FILE": str(tokens)}) as p:
        yield p


def _titus(
    platform: Platform, home: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TITUS_TOKEN")}
    return subprocess.run(
        [TITUS, *args, "--url", platform.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "HOME": str(home), **env},
    )


def test_the_cli_sends_the_token_it_finds_and_fails_clearly_without_one(
    secured: Platform, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    refused = _titus(secured, home, "job", "submit", str(EXAMPLE))
    assert refused.returncode != 0 and "401" in refused.stderr

    by_env = _titus(secured, home, "job", "submit", str(EXAMPLE), TITUS_TOKEN=TOKEN)
    assert by_env.returncode == 0, by_env.stderr
    job_id = by_env.stdout.strip()
    # reads need the token too, and the job is alice's
    assert secured.http.get(f"/api/v3/jobs/{job_id}").status_code == 401
    shown = secured.http.get(
        f"/api/v3/jobs/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    assert shown["jobDescriptor"]["attributes"]["titus.createdBy"] == "alice"

    default_file = home / ".config" / "titus" / "token"
    default_file.parent.mkdir(parents=True)
    default_file.write_text(TOKEN + "\n")
    default_file.chmod(0o600)
    by_file = _titus(secured, home, "job", "kill", job_id)
    assert by_file.returncode == 0, by_file.stderr


def test_a_token_file_others_can_read_is_refused_before_anything_is_sent(
    secured: Platform, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)
    proc = _titus(secured, home, "job", "list", "--token-file", str(token_file))
    assert proc.returncode != 0
    assert f"token file {token_file} is open to other users" in proc.stderr
    missing = _titus(secured, home, "job", "list", "--token-file", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr
