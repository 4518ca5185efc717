"""The start gate's parts that need no engine: the argv a gated container runs is the one
the engine would have run ungated, and only a statically linked shell is bound into
containers (a dynamic one would not run in an image without its libraries)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from titus.agent.gate import (
    NAME,
    SCRIPT,
    SHELL,
    SWEEP_GRACE_SEC,
    StartGate,
    is_static,
    missing_command,
)
from titus.agent.runtime import behind_gate


def _gated(command: list[str] | None, image: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"image": "x"}
    if command:
        kwargs["command"] = command
    behind_gate(kwargs, image, StartGate(tmp_path, Path("/bin/busybox")), "task-1")
    return kwargs


@pytest.mark.parametrize(
    ("command", "image", "argv"),
    [
        # the task's command after the image's entrypoint, as the engine runs them
        (
            ["/bin/sh", "-c", "x"],
            {"Entrypoint": None, "Cmd": ["/bin/true"]},
            ["/bin/sh", "-c", "x"],
        ),
        (["run", "fast"], {"Entrypoint": ["/app"], "Cmd": ["--help"]}, ["/app", "run", "fast"]),
        # no command of its own: the image's entrypoint and command
        (None, {"Entrypoint": ["/app"], "Cmd": ["--help"]}, ["/app", "--help"]),
        (None, {"Entrypoint": None, "Cmd": ["/bin/sh"]}, ["/bin/sh"]),
    ],
)
def test_a_gated_container_runs_the_argv_the_engine_would_have(
    command: list[str] | None, image: dict[str, Any], argv: list[str], tmp_path: Path
) -> None:
    kwargs = _gated(command, image, tmp_path)
    assert kwargs["entrypoint"] == [SHELL, "sh", "-c", SCRIPT, NAME]
    assert kwargs["command"] == argv
    targets = {m["Target"]: (m["Source"], m["ReadOnly"]) for m in kwargs["mounts"]}
    assert targets[SHELL] == ("/bin/busybox", True)
    assert targets["/.titus/gate"] == (str(tmp_path / "task-1"), True)
    assert not (tmp_path / "task-1" / "open").exists()  # closed until the hook opens it


def test_nothing_to_run_is_left_for_the_engine_to_refuse(tmp_path: Path) -> None:
    kwargs = _gated(None, {"Entrypoint": None, "Cmd": None}, tmp_path)
    assert "entrypoint" not in kwargs and "command" not in kwargs


def _script_here(tmp_path: Path, opened: bool) -> tuple[str, str, Path]:
    """(the host's busybox, the gate's script with the container's paths replaced by the
    test's, the gate's directory), the gate opened or not: run as the container would."""
    shell = shutil.which("busybox")
    if shell is None:
        pytest.skip("no busybox on this host")
    gate = tmp_path / "gate"
    gate.mkdir()
    if opened:
        (gate / "open").touch()
    return shell, SCRIPT.replace(SHELL, shell).replace("/.titus/gate", str(gate)), gate


def _run_opened(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    shell, script, _ = _script_here(tmp_path, opened=True)
    return subprocess.run(
        [shell, "sh", "-c", script, NAME, *argv], capture_output=True, text=True, timeout=10
    )


def test_the_script_waits_for_the_gate_then_becomes_the_command(tmp_path: Path) -> None:
    """Run as the container would (with the host's shell at the script's paths replaced
    by the test's): the command does not run until the gate opens, then runs with its
    arguments intact."""
    shell, script, gate = _script_here(tmp_path, opened=False)
    out = tmp_path / "out"
    argv = [shell, "sh", "-c", script, NAME, shell, "sh", "-c", f'echo "$@" > {out}', "a", "b c"]
    proc = subprocess.Popen(argv)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.3)
        assert not out.exists()
        (gate / "open").touch()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    assert out.read_text() == "b c\n"


def test_only_a_statically_linked_executable_counts_as_static(tmp_path: Path) -> None:
    assert not is_static(Path(sys.executable).resolve())  # dynamically linked
    not_elf = tmp_path / "script"
    not_elf.write_text("#!/bin/sh\n")
    assert not is_static(not_elf)
    assert not is_static(tmp_path / "missing")
    busybox = Path("/bin/busybox")
    if (
        busybox.exists()
        and "statically linked"
        in subprocess.run(["file", "-L", str(busybox)], capture_output=True, text=True).stdout
    ):
        assert is_static(busybox)


def test_the_sweep_keeps_held_and_young_gates(tmp_path: Path) -> None:
    """What a crash left behind goes; a gate made after the sweep's snapshot of the held
    tasks (a launch meanwhile) stays, or that task's container could not start."""
    gate = StartGate(tmp_path, Path("/bin/busybox"))
    for task in ("held", "left-behind", "just-launched"):
        gate.prepare(task)
    old = time.time() - SWEEP_GRACE_SEC - 1
    for task in ("held", "left-behind"):
        os.utime(tmp_path / task, (old, old))
    gate.remove_all_but(["held"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["held", "just-launched"]


def test_a_command_not_there_is_named_as_the_gate_says_it(tmp_path: Path) -> None:
    run = _run_opened(tmp_path, "no-such-command", "--flag")
    assert run.returncode == 127
    assert missing_command(run.stderr.strip().splitlines()[-1]) == "no-such-command"
    assert missing_command("sh: no-such-command: not found") is None  # another's words


def test_a_file_there_that_cannot_run_is_not_called_missing(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("not a program\n")
    run = _run_opened(tmp_path, str(data))
    assert run.returncode == 126  # as a shell says of it: permission denied
    assert missing_command(run.stderr.strip().splitlines()[-1]) is None
