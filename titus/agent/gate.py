"""The start gate: a task's own command runs once the hooks that give it its world are set up.

A container's network namespace exists only once its process runs, so the hooks that
give the task its address, packet filter, bandwidth and metadata service (which serves its
IAM credentials) can only work on a started container. Left alone, the task's command
would start first: a job whose first step fetches from S3, or reads its address, would
find nothing but loopback. Titus and Kubernetes hold the workload back until the sandbox's
network is ready; so does this. The container's process is a static shell bound in
read-only from the host (`busybox`, from Debian's busybox-static, which needs nothing of
the image), waiting for a file the agent creates in a directory bound in read-only too,
then replacing itself with the task's command: same process, same environment, same
arguments as the engine would have run. `StartGateHook`, set up after every hook the
command needs, opens it; a task adopted by a restarted agent gets its gate opened again.

Without a static shell on the host, tasks run ungated (and the agent says so at start).
"""

from __future__ import annotations

import logging
import shutil
import struct
import time
from collections.abc import Collection
from pathlib import Path

import docker.types

from titus.agent.hooks import TaskContext, TaskHook

log = logging.getLogger(__name__)

#: Where the shell and the gate's directory appear inside every task's container.
MOUNT_POINT = "/.titus"
SHELL = f"{MOUNT_POINT}/busybox"
GATE = f"{MOUNT_POINT}/gate"
OPEN = "open"
#: The gate's last line on stderr when the task's command is not in the image.
NOT_FOUND = "titus-start-gate: command not found: "
#: Wait for the gate (polled every 5 ms, through the bound shell alone: the image may have
#: no `test` or `sleep`), then become the task's command, or say it is not there (exit
#: 127, as a shell does; `missing_command` reads it back for the task's message). A file
#: that is there but cannot be run is left to `exec`, which says why (exit 126).
SCRIPT = (
    f"while ! {SHELL} test -e {GATE}/{OPEN}; do {SHELL} usleep 5000; done; "
    f'command -v "$1" >/dev/null 2>&1 || {SHELL} test -e "$1" || '
    f'{{ echo "{NOT_FOUND}$1" >&2; exit 127; }}; '
    'exec "$@"'
)
#: `$0` of the waiting shell, as `ps` in the container shows it.
NAME = "titus-start-gate"
#: At most this much of a missing command's name goes into the task's message.
MAX_NAME = 200
#: A gate no held task names is removed once it is this old (seconds).
SWEEP_GRACE_SEC = 300.0

_PT_INTERP = 3


def is_static(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (it needs no libraries,
    so it runs in any image)."""
    try:
        with path.open("rb") as f:
            header = f.read(64)
            if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2:
                return False  # not a 64-bit ELF file
            order = "<" if header[5] == 1 else ">"
            phoff = struct.unpack_from(order + "Q", header, 32)[0]
            phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
            if phnum > 256 or phentsize < 4:
                return False
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    types = (struct.unpack_from(order + "I", table, i * phentsize)[0] for i in range(phnum))
    return len(table) == phentsize * phnum and _PT_INTERP not in types


def find_static_shell() -> Path | None:
    """The host's busybox when it is statically linked, else None."""
    found = shutil.which("busybox") or "/bin/busybox"
    path = Path(found)
    return path if is_static(path) else None


def missing_command(last_stderr_line: str) -> str | None:
    """The task's command the gate did not find in the image, when `last_stderr_line` (of
    a container that exited 127) is the gate saying so; else None."""
    if not last_stderr_line.startswith(NOT_FOUND):
        return None
    return last_stderr_line[len(NOT_FOUND) :][:MAX_NAME]


class StartGate:
    """The gates of one host's tasks: a directory each under `root`."""

    def __init__(self, root: Path, shell: Path):
        self.root = root
        self.shell = shell

    def _dir(self, task_id: str) -> Path:
        return self.root / task_id

    def prepare(self, task_id: str) -> list[docker.types.Mount]:
        """Make the task's (closed) gate; the mounts its container gets."""
        gate = self._dir(task_id)
        gate.mkdir(parents=True, exist_ok=True)
        (gate / OPEN).unlink(missing_ok=True)
        gate.chmod(0o755)  # readable by the container's user, whoever it maps to
        return [
            docker.types.Mount(SHELL, str(self.shell), type="bind", read_only=True),
            docker.types.Mount(GATE, str(gate), type="bind", read_only=True),
        ]

    @staticmethod
    def entrypoint() -> list[str]:
        """The container's entrypoint; its command is the task's whole argv."""
        return [SHELL, "sh", "-c", SCRIPT, NAME]

    def open(self, task_id: str) -> None:
        gate = self._dir(task_id)
        if gate.is_dir():
            (gate / OPEN).touch()

    def remove(self, task_id: str) -> None:
        shutil.rmtree(self._dir(task_id), ignore_errors=True)

    def remove_all_but(self, keep: Collection[str]) -> None:
        """Remove the gates of tasks not in `keep` (what a crash left behind) that are
        older than SWEEP_GRACE_SEC: `keep` is a snapshot, and a task launched since has a
        gate it does not name."""
        now = time.time()
        try:
            gates = list(self.root.iterdir())
        except OSError:
            return
        for gate in gates:
            if gate.name in keep:
                continue
            try:
                if now - gate.stat().st_mtime < SWEEP_GRACE_SEC:
                    continue
            except OSError:
                continue
            self.remove(gate.name)


def start_gate(root: Path) -> StartGate | None:
    """This host's gates, in `root`; None (tasks start ungated) without a static shell on
    the host."""
    shell = find_static_shell()
    if shell is None:
        log.warning(
            "no statically linked busybox on this host (Debian's busybox-static): task "
            "commands start before their network and metadata service are ready"
        )
        return None
    return StartGate(root, shell)


class StartGateHook(TaskHook):
    """Opens the task's gate: set up after every hook its command needs. (The container
    hook makes the gate and removes it with the container.)"""

    name = "start-gate"

    def __init__(self, gate: StartGate):
        self.gate = gate

    def setup(self, ctx: TaskContext) -> None:
        self.gate.open(ctx.task_id)

    def adopt(self, ctx: TaskContext) -> None:
        self.gate.open(ctx.task_id)

    def upkeep(self, running: Collection[str]) -> None:
        self.gate.remove_all_but(running)
