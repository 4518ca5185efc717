"""Task output as files on the host: `<logs_path>/<taskId>/stdout` and `.../stderr`.

The files outlive the container (a finished or failed task's output is what its owner
looks at first), so the agent copies the engine's output into them while the task runs,
one thread per stream. Readers take byte ranges, or follow a file while its task runs.

Each stream's file is rotated by size (`agent_log_rotate_bytes`, default 100 MiB): the full
file is renamed `stdout.000001`, `stdout.000002`... and handed to `on_rotate` (the S3
uploader); `stdout` itself always holds the live part, which is what readers see.

After an agent restart the engine replays a container's output from the start; the bytes
already written (the live file plus every rotated one, counted in a small state file
beside them, since rotated files are deleted once uploaded) are skipped, so nothing is
written twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors

from titus.agent.hooks import TaskContext, TaskHook

log = logging.getLogger(__name__)

STREAMS = ("stdout", "stderr")
FOLLOW_POLL_SEC = 0.2
READ_CHUNK = 64 * 1024
DEFAULT_ROTATE_BYTES = 100 * 1024 * 1024

RotateCallback = Callable[[Path], None]


def rotated_files(task_dir: Path, stream: str) -> list[Path]:
    """A stream's rotated files, oldest first."""
    found = [p for p in task_dir.glob(f"{stream}.*") if p.suffix[1:].isdigit()]
    return sorted(found, key=lambda p: int(p.suffix[1:]))


def _state_path(task_dir: Path, stream: str) -> Path:
    return task_dir / f".{stream}.state"


def read_rotation_state(task_dir: Path, stream: str) -> tuple[int, int]:
    """(bytes already rotated away, number of the last rotated file) for a stream."""
    try:
        data = json.loads(_state_path(task_dir, stream).read_text())
        return int(data["rotatedBytes"]), int(data["last"])
    except (OSError, ValueError, KeyError):
        return 0, 0


def _write_rotation_state(task_dir: Path, stream: str, rotated: int, last: int) -> None:
    path = _state_path(task_dir, stream)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"rotatedBytes": rotated, "last": last}))
    os.replace(tmp, path)


class LogFiles:
    """Where task output lives, and reading it."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def task_dir(self, task_id: str) -> Path:
        if not task_id or "/" in task_id or task_id in (".", ".."):
            raise ValueError(f"bad task id {task_id!r}")
        return self.root / task_id

    def path(self, task_id: str, stream: str) -> Path:
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of {', '.join(STREAMS)}")
        return self.task_dir(task_id) / stream

    def exists(self, task_id: str) -> bool:
        try:
            return self.task_dir(task_id).is_dir()
        except ValueError:
            return False

    def read(self, task_id: str, stream: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes [offset, offset+length) of a stream; fewer at its end; b"" past it."""
        path = self.path(task_id, stream)
        if not path.exists():
            return b""
        with path.open("rb") as f:
            f.seek(max(0, offset))
            return f.read(-1 if length is None else max(0, length))

    def follow(
        self,
        task_id: str,
        stream: str,
        offset: int,
        running: Callable[[], bool],
        length: int | None = None,
    ) -> Iterator[bytes]:
        """Chunks from `offset` on, waiting for more while `running()` is true.

        Ends when the task has ended and the file is read to its end, or after `length`
        bytes.
        """
        path = self.path(task_id, stream)
        left = length
        f = None
        try:
            while left != 0:
                alive = running()  # asked before reading, so the last bytes are never missed
                if f is None and path.exists():
                    f = path.open("rb")
                    f.seek(max(0, offset))
                if f is None:
                    data = b""
                else:
                    data = f.read(READ_CHUNK if left is None else min(READ_CHUNK, left))
                if not data and f is not None and _replaced(f, path):
                    # the file was rotated; it may have grown between our read and the
                    # rotation, and a rotated file never grows again: read it to its end,
                    # then go on in the next one (rotated too, if the writer is ahead)
                    data = f.read(-1 if left is None else left)
                    nxt = _next_file(f, path)
                    f.close()
                    f, offset = None, 0  # the next file is read from its start
                    with contextlib.suppress(FileNotFoundError):
                        # the live file may not be made again yet: opened once it is
                        f = nxt.open("rb")
                    if not data:
                        continue
                if data:
                    if left is not None:
                        left -= len(data)
                    yield data
                    continue
                if not alive:
                    return
                time.sleep(FOLLOW_POLL_SEC)
        finally:
            if f is not None:
                f.close()


def _next_file(f: Any, path: Path) -> Path:
    """The file written after the (rotated) one `f` reads: the next rotated or the live."""
    inode = os.fstat(f.fileno()).st_ino
    rotated = rotated_files(path.parent, path.name)
    for i, candidate in enumerate(rotated):
        try:
            if candidate.stat().st_ino == inode:
                return rotated[i + 1] if i + 1 < len(rotated) else path
        except OSError:
            continue
    return path


def _replaced(f: object, path: Path) -> bool:
    try:
        return os.fstat(f.fileno()).st_ino != path.stat().st_ino  # type: ignore[attr-defined]
    except OSError:
        return False


class LogCopier:
    """Copies one container stream into its file, in a thread, until the container ends,
    rotating the file whenever it reaches `rotate_bytes`."""

    def __init__(
        self,
        client: docker.DockerClient,
        container_id: str,
        stream: str,
        path: Path,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
        on_rotate: RotateCallback | None = None,
    ):
        self.client = client
        self.container_id = container_id
        self.stream = stream
        self.path = path
        self.rotate_bytes = max(1, rotate_bytes)
        self.on_rotate = on_rotate
        self.thread = threading.Thread(
            target=self._run, name=f"logs-{container_id[:12]}-{stream}", daemon=True
        )
        self._lock = threading.Lock()
        self._stopped = False
        self._out: Any = None
        self._rotated = 0
        self._last = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Write nothing more, from the moment this returns (the agent is going away)."""
        with self._lock:
            self._stopped = True

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        """Follow the stream while the container runs; then read it once more without
        following, because the engine may end a follow before its last bytes (20.10's
        json-file reader does, when the container exits): nothing of the output is lost."""
        self._out = None
        try:
            for follow in (True, False):
                task_dir = self.path.parent
                self._rotated, self._last = read_rotation_state(task_dir, self.stream)
                size = self.path.stat().st_size if self.path.exists() else 0
                chunks = self.client.api.logs(
                    self.container_id,
                    stdout=self.stream == "stdout",
                    stderr=self.stream == "stderr",
                    stream=True,
                    follow=follow,
                )
                if not self._copy(chunks, self._rotated + size):
                    return
        except docker.errors.NotFound:
            pass
        except Exception as e:
            # 409: the container was removed meanwhile ("dead or marked for removal")
            if not (isinstance(e, docker.errors.APIError) and e.status_code == 409):
                log.exception("copying %s of container %s failed", self.stream, self.container_id)
        finally:
            if self._out is not None:
                self._out.close()
                self._out = None

    def _copy(self, chunks: Iterator[bytes], skip: int) -> bool:
        """Append the chunks past the first `skip` bytes; False when told to stop."""
        if self._out is None:
            self._out = self.path.open("ab")
        for chunk in chunks:
            if skip:
                if len(chunk) <= skip:
                    skip -= len(chunk)
                    continue
                chunk, skip = chunk[skip:], 0
            with self._lock:
                if self._stopped:
                    return False
                while chunk:
                    room = self.rotate_bytes - self._out.tell()
                    if room <= 0:
                        self._out.close()
                        self._rotated, self._last = self._rotate(self._rotated, self._last)
                        self._out = self.path.open("ab")
                        continue
                    self._out.write(chunk[:room])
                    chunk = chunk[room:]
                self._out.flush()
        return True

    def _rotate(self, rotated: int, last: int) -> tuple[int, int]:
        """Move the full live file aside and record it, then hand it to the uploader.

        The state is written right after the rename: a crash between them leaves a
        rotated file that the next agent finds by name (and uploads) and at most one
        file's bytes copied twice, never lost.
        """
        size = self.path.stat().st_size
        last += 1
        target = self.path.with_name(f"{self.stream}.{last:06d}")
        os.replace(self.path, target)
        rotated += size
        _write_rotation_state(self.path.parent, self.stream, rotated, last)
        if self.on_rotate is not None:
            try:
                self.on_rotate(target)
            except Exception:
                log.exception("handing %s to the uploader failed", target)
        return rotated, last


class LogsHook(TaskHook):
    """Set up: the task's log files exist (empty) before anything runs, so readers and
    failed launches always have them. Teardown leaves them: they outlive the task."""

    name = "logs"

    def setup(self, ctx: TaskContext) -> None:
        ctx.log_dir.mkdir(parents=True, exist_ok=True)
        for stream in STREAMS:
            (ctx.log_dir / stream).touch()

    def adopt(self, ctx: TaskContext) -> None:
        self.setup(ctx)


class LogFollowHook(TaskHook):
    """Copies the container's stdout and stderr into the task's files while it runs.

    Teardown waits (bounded) until the copies have drained, so a finished task's files
    hold all of its output by the time its end is reported.
    """

    name = "log-follow"

    def __init__(
        self,
        client: docker.DockerClient,
        drain_timeout_sec: float = 10.0,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
        on_rotate: Callable[[TaskContext, Path], None] | None = None,
    ):
        self.client = client
        self.drain_timeout_sec = drain_timeout_sec
        self.rotate_bytes = rotate_bytes
        self.on_rotate = on_rotate
        self._lock = threading.Lock()
        self._copiers: dict[str, list[LogCopier]] = {}  # by task id, while they copy

    def setup(self, ctx: TaskContext) -> None:
        if not ctx.container_id:
            return
        hand_over = self.on_rotate
        callback: RotateCallback | None = (
            (lambda path: hand_over(ctx, path)) if hand_over is not None else None
        )
        cid = ctx.container_id
        copiers = [
            LogCopier(self.client, cid, s, ctx.log_dir / s, self.rotate_bytes, callback)
            for s in STREAMS
        ]
        for c in copiers:
            c.start()
        with self._lock:
            self._copiers[ctx.task_id] = copiers

    def adopt(self, ctx: TaskContext) -> None:
        self.setup(ctx)

    def _take(self, ctx: TaskContext) -> list[LogCopier]:
        with self._lock:
            return self._copiers.pop(ctx.task_id, [])

    def release(self, ctx: TaskContext) -> None:
        for c in self._take(ctx):
            c.stop()

    def teardown(self, ctx: TaskContext) -> None:
        copiers = self._take(ctx)
        if copiers and self._still_running(ctx):
            # a launch failing after the container started: nothing ends the stream soon
            for c in copiers:
                c.stop()
            return
        deadline = time.monotonic() + self.drain_timeout_sec
        for c in copiers:
            c.join(max(0.0, deadline - time.monotonic()))

    def _still_running(self, ctx: TaskContext) -> bool:
        try:
            state = self.client.api.inspect_container(ctx.container_id)["State"]
        except docker.errors.NotFound:
            return False
        except Exception:
            return True
        return bool(state.get("Running"))
