"""Running one of the idempotent setup scripts under scripts/ and reading what it prints."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_setup_script(
    name: str, variable: str, timeout: float, env: dict[str, str] | None = None
) -> str | None:
    """Run scripts/NAME with bash (and `env` added to the environment); return the value of
    the `VARIABLE=value` line it prints (None when it prints none). A script that fails
    raises RuntimeError with its output."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / name)],
        env={**os.environ, **env} if env else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"scripts/{name} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    for line in result.stdout.splitlines():
        if line.startswith(f"{variable}="):
            return line.partition("=")[2].strip() or None
    return None
