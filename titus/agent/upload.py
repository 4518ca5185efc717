"""Shipping task log files to S3, so no task's output is lost with its host.

Files are uploaded to `s3://<bucket>/<prefix>/<jobId>/<taskId>/<file name>`: rotated files
as they are rotated, the live files when the task ends. Bucket, prefix and a role to
assume for writing come from settings and may be overridden per job with the job
attributes `titusParameter.agent.log.s3BucketName`, `...s3PathPrefix` and
`...s3WriterRole`, as in Titus.

Every upload goes through a journal on disk (`<logs>/.uploads/`), one small JSON file per
local file: `pending/` until uploaded, then `done/` (kept as a tombstone). So uploads
survive an agent restart (the next process finds `pending/` and goes on), a file is never
uploaded twice (a file already in `done/` is not taken again; a crash between the upload
and the journal write is caught by comparing the object's size and MD5 before uploading
again) and never lost (a pending entry is only dropped once the object is there). Failed
uploads are retried with exponential backoff and full jitter, without bound in count: the
file waits on disk. A local file is deleted only after a successful upload and a retention
period; tombstones outlive it so a file that reappears under the same name (an adopted
task's empty log file made again) never overwrites what was shipped.

A task whose output goes to no bucket keeps it on the host only: its folder is marked
ended when the task ends, and the same pass deletes ended folders older than
`agent_log_local_retention_sec`, and the oldest of them while all ended folders together
are over `agent_log_local_max_mb`, so a host without a bucket never fills its disk with
old output. A folder with a file still waiting for upload is never deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from titus.agent.hooks import TaskContext, TaskHook
from titus.agent.logs import STREAMS, rotated_files
from titus.model.names import LogContextKey
from titus.settings import Settings

log = logging.getLogger(__name__)

ATTR_BUCKET = "titusParameter.agent.log.s3BucketName"
ATTR_PREFIX = "titusParameter.agent.log.s3PathPrefix"
ATTR_ROLE = "titusParameter.agent.log.s3WriterRole"

# taskContext keys the master copies into the task's logLocation.s3
CTX_BUCKET = LogContextKey.S3_BUCKET
CTX_KEY = LogContextKey.S3_KEY
CTX_REGION = LogContextKey.S3_REGION

BACKOFF_BASE_SEC = 1.0
BACKOFF_MAX_SEC = 300.0
TOMBSTONE_KEEP_SEC = 7 * 24 * 3600.0


@dataclass(frozen=True)
class S3Target:
    """Where one task's files go."""

    bucket: str
    prefix: str  # the key prefix of the task's folder, ending in "/"
    region: str
    role: str = ""

    @classmethod
    def for_task(cls, settings: Settings, ctx: TaskContext) -> S3Target | None:
        """The task's folder, or None when log upload is off (no bucket anywhere)."""
        attrs = ctx.spec.jobAttributes
        bucket = attrs.get(ATTR_BUCKET) or settings.agent_log_s3_bucket
        if not bucket:
            return None
        base = (attrs.get(ATTR_PREFIX) or settings.agent_log_s3_prefix).strip("/")
        parts = [p for p in (base, ctx.spec.jobId, ctx.task_id) if p]
        return cls(
            bucket=bucket,
            prefix="/".join(parts) + "/",
            region=settings.agent_log_s3_region,
            role=attrs.get(ATTR_ROLE) or settings.agent_log_s3_writer_role,
        )


@dataclass
class _Entry:
    path: str
    bucket: str
    key: str
    region: str
    role: str = ""
    attempts: int = 0
    uploadedAt: float = 0.0
    lastError: str = ""


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class LogUploader:
    """The journal and the thread that works through it."""

    def __init__(self, settings: Settings, root: Path):
        self.settings = settings
        self.root = Path(root) / ".uploads"
        self.pending_dir = self.root / "pending"
        self.done_dir = self.root / "done"
        self.retention_sec = settings.agent_log_retention_sec
        self.local_retention_sec = settings.agent_log_local_retention_sec
        self.local_max_bytes = settings.agent_log_local_max_mb * 1024 * 1024
        self._lock = threading.Lock()
        self._next_try: dict[str, float] = {}
        self._clients: dict[tuple[str, str], tuple[Any, float]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded = 0  # objects written, for metrics and tests

    # journal

    @staticmethod
    def _name(path: Path) -> str:
        return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:24] + ".json"

    def _write(self, directory: Path, entry: _Entry) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / self._name(Path(entry.path))
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(entry)))
        os.replace(tmp, target)

    @staticmethod
    def _read(path: Path) -> _Entry | None:
        try:
            return _Entry(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def is_journaled(self, path: Path) -> bool:
        name = self._name(path)
        return (self.pending_dir / name).exists() or (self.done_dir / name).exists()

    def enqueue(self, path: Path, target: S3Target) -> bool:
        """Journal a file for upload; False if it is already journaled or missing."""
        path = Path(path)
        with self._lock:
            if not path.exists() or self.is_journaled(path):
                return False
            entry = _Entry(
                path=str(path.resolve()),
                bucket=target.bucket,
                key=target.prefix + path.name,
                region=target.region,
                role=target.role,
            )
            self._write(self.pending_dir, entry)
        self._wake.set()
        return True

    def pending(self) -> list[_Entry]:
        if not self.pending_dir.is_dir():
            return []
        entries = (self._read(p) for p in sorted(self.pending_dir.glob("*.json")))
        return [e for e in entries if e is not None]

    # the worker

    def start(self) -> None:
        self.pending_dir.mkdir(parents=True, exist_ok=True)
        self.done_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="log-upload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        interval = max(0.05, self.settings.agent_log_upload_interval_sec)
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("log upload pass failed")
            self._wake.wait(interval)
            self._wake.clear()

    def run_once(self) -> None:
        """Upload what is due, then delete what is uploaded and past retention."""
        now = time.time()
        for entry in self.pending():
            if self._stop.is_set():
                return
            if self._next_try.get(entry.path, 0.0) <= now:
                self._upload(entry)
        self._expire(time.time())
        self.expire_local(time.time())

    def expire_local(self, now: float) -> list[Path]:
        """Delete ended, bucketless task folders past their retention or over the size
        bound (oldest first); the folders deleted."""
        logs = self.root.parent
        waiting = {str(Path(e.path).parent) for e in self.pending()}
        ended: list[tuple[float, int, Path]] = []
        for marker in logs.glob(f"*/{ENDED_MARKER}"):
            folder = marker.parent
            if str(folder.resolve()) in waiting:
                continue
            try:
                at = marker.stat().st_mtime
                size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
            except OSError:
                continue
            ended.append((at, size, folder))
        ended.sort()
        total = sum(size for _, size, _ in ended)
        gone: list[Path] = []
        for at, size, folder in ended:
            if now - at < self.local_retention_sec and total <= self.local_max_bytes:
                break
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
            gone.append(folder)
        if gone:
            log.info("deleted the kept output of %d ended task(s)", len(gone))
        return gone

    def _upload(self, entry: _Entry) -> None:
        path = Path(entry.path)
        name = self._name(path)
        if not path.exists():
            # nothing left to ship (deleted by hand): keep a tombstone, say so once
            log.warning("log file %s vanished before its upload", path)
            entry.lastError = "local file vanished before upload"
            self._write(self.done_dir, entry)
            (self.pending_dir / name).unlink(missing_ok=True)
            return
        try:
            s3 = self._client(entry.region, entry.role)
            if not self._already_there(s3, entry, path):
                with path.open("rb") as body:
                    s3.put_object(Bucket=entry.bucket, Key=entry.key, Body=body)
                self.uploaded += 1
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as e:
            entry.attempts += 1
            entry.lastError = str(e)[:500]
            delay = random.uniform(0, min(BACKOFF_MAX_SEC, BACKOFF_BASE_SEC * 2**entry.attempts))
            self._next_try[entry.path] = time.time() + delay
            self._write(self.pending_dir, entry)
            log.warning(
                "upload of %s to s3://%s/%s failed (attempt %d, next in %.1fs): %s",
                path,
                entry.bucket,
                entry.key,
                entry.attempts,
                delay,
                e,
            )
            return
        entry.uploadedAt = time.time()
        entry.lastError = ""
        self._write(self.done_dir, entry)
        (self.pending_dir / name).unlink(missing_ok=True)
        self._next_try.pop(entry.path, None)
        log.info("uploaded %s to s3://%s/%s", path, entry.bucket, entry.key)

    @staticmethod
    def _already_there(s3: Any, entry: _Entry, path: Path) -> bool:
        """True when the object holds exactly this file (an upload the journal missed).

        The file is read for its MD5 only when an object of its size is there: on the
        usual first upload it is read once, by the upload itself.
        """
        try:
            head = s3.head_object(Bucket=entry.bucket, Key=entry.key)
        except botocore.exceptions.ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        if int(head.get("ContentLength", -1)) != path.stat().st_size:
            return False
        return str(head.get("ETag", "")).strip('"') == _md5(path)

    def _expire(self, now: float) -> None:
        if not self.done_dir.is_dir():
            return
        for marker in self.done_dir.glob("*.json"):
            entry = self._read(marker)
            if entry is None or not entry.uploadedAt:
                continue
            age = now - entry.uploadedAt
            path = Path(entry.path)
            if age >= self.retention_sec and path.exists():
                path.unlink(missing_ok=True)
                _remove_if_done(path.parent)
            if age >= max(TOMBSTONE_KEEP_SEC, self.retention_sec):
                marker.unlink(missing_ok=True)

    def _client(self, region: str, role: str) -> Any:
        """An S3 client, with the writer role's credentials when one is named.

        Assumed-role credentials are cached and renewed five minutes before they expire.
        """
        key = (region, role)
        cached = self._clients.get(key)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        config = botocore.config.Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=60,
        )
        expires = time.time() + 3600.0
        if role:
            sts = boto3.client("sts", region_name=region, config=config)
            creds = sts.assume_role(RoleArn=role, RoleSessionName="titus-log-upload")["Credentials"]
            client = boto3.client(
                "s3",
                region_name=region,
                config=config,
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
            expires = creds["Expiration"].timestamp() - 300
        else:
            client = boto3.client("s3", region_name=region, config=config)
        self._clients[key] = (client, expires)
        return client


#: In a task's log folder: the task ended and its output goes to no bucket.
ENDED_MARKER = ".ended"


def _remove_if_done(task_dir: Path) -> None:
    """Remove a task's folder once only its bookkeeping is left in it."""
    try:
        left = [p for p in task_dir.iterdir() if not p.name.startswith(".")]
        if not left:
            for p in task_dir.iterdir():
                p.unlink(missing_ok=True)
            task_dir.rmdir()
    except OSError:
        pass


class LogUploadHook(TaskHook):
    """Set up: decide the task's S3 folder and say it in the task's context. Teardown (the
    task ended, its copies drained): journal every file of the task for upload.

    It sits before the container in the hook order, so its teardown runs after the log
    copies have drained.
    """

    name = "log-upload"

    def __init__(self, settings: Settings, uploader: LogUploader):
        self.settings = settings
        self.uploader = uploader
        self._lock = threading.Lock()
        self._targets: dict[str, S3Target] = {}  # by task id, from setup to teardown

    def _target(self, ctx: TaskContext) -> S3Target | None:
        with self._lock:
            return self._targets.get(ctx.task_id)

    def setup(self, ctx: TaskContext) -> None:
        target = S3Target.for_task(self.settings, ctx)
        if target is None:
            return
        with self._lock:
            self._targets[ctx.task_id] = target
        ctx.context[CTX_BUCKET] = target.bucket
        ctx.context[CTX_KEY] = target.prefix
        ctx.context[CTX_REGION] = target.region

    def adopt(self, ctx: TaskContext) -> None:
        self.setup(ctx)
        # rotated by the earlier process but not journaled (it died in between)
        self._enqueue_task_files(ctx, live=False)

    def release(self, ctx: TaskContext) -> None:
        with self._lock:
            self._targets.pop(ctx.task_id, None)

    def teardown(self, ctx: TaskContext) -> None:
        if self._target(ctx) is None:
            # kept here only: from now on the local retention counts for it
            with contextlib.suppress(OSError):
                (ctx.log_dir / ENDED_MARKER).touch()
        self._enqueue_task_files(ctx, live=True)
        with self._lock:
            self._targets.pop(ctx.task_id, None)

    def on_rotate(self, ctx: TaskContext, path: Path) -> None:
        """A file was rotated: journal it for upload."""
        target = self._target(ctx)
        if target is not None:
            self.uploader.enqueue(path, target)

    def _enqueue_task_files(self, ctx: TaskContext, live: bool) -> None:
        """Journal every rotated file of the task, and with `live` its live files too."""
        target = self._target(ctx)
        if target is None:
            return
        for stream in STREAMS:
            for path in rotated_files(ctx.log_dir, stream):
                self.uploader.enqueue(path, target)
            if live:
                self.uploader.enqueue(ctx.log_dir / stream, target)
