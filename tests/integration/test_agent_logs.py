"""Task logs on the real engine and a moto S3 on loopback: rotated by size, readable live
(following across rotations), shipped to S3 at the task's place, overridable per job,
surviving an agent restart with nothing lost or uploaded twice, deleted locally only
after upload and retention."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest

from tests.support import moto_server as moto_support
from tests.support.docker_engine import (
    WAIT_SEC,
    AgentFactory,
    run_task,
    task_spec,
    wait_for_report,
)
from tests.support.poll import wait_until
from titus.agent.daemon import AgentDaemon
from titus.agent.logs import rotated_files
from titus.agent.upload import LogUploader, S3Target
from titus.model.states import TaskState
from titus.settings import Settings

pytestmark = pytest.mark.docker


BUCKET = "titus-logs"
# 4000 lines "line 0001".."line 4000" (10 bytes each): 40,000 bytes on stdout
PRINT = "seq -w 1 4000 | sed 's/^/line /'"
EXPECTED = "".join(f"line {i:04d}\n" for i in range(1, 4001)).encode()


def s3() -> Any:
    return boto3.client("s3", region_name=moto_support.REGION)


def make_bucket(name: str = BUCKET) -> None:
    s3().create_bucket(Bucket=name)
    # versions count the PUTs: an object uploaded twice has two
    s3().put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def objects(bucket: str, prefix: str) -> dict[str, int]:
    """Key -> number of versions under a prefix."""
    found: dict[str, int] = {}
    resp = s3().list_object_versions(Bucket=bucket, Prefix=prefix)
    for v in resp.get("Versions", []):
        found[v["Key"]] = found.get(v["Key"], 0) + 1
    return found


def body(bucket: str, key: str) -> bytes:
    return bytes(s3().get_object(Bucket=bucket, Key=key)["Body"].read())


def log_agent(factory: AgentFactory, **overrides: Any) -> AgentDaemon:
    values: dict[str, Any] = {
        "agent_log_rotate_bytes": 8_000,
        "agent_log_s3_bucket": BUCKET,
        "agent_log_upload_interval_sec": 0.2,
        "agent_log_retention_sec": 3600.0,
    }
    values.update(overrides)
    return factory(**values)


def stdout_from_s3(bucket: str, prefix: str) -> bytes:
    keys = sorted(k for k in objects(bucket, prefix) if k.rsplit("/", 1)[1].startswith("stdout."))
    return b"".join(body(bucket, k) for k in keys) + body(bucket, prefix + "stdout")


def test_output_is_rotated_by_size_and_shipped_to_s3(
    agent_factory: AgentFactory, aws_env: str
) -> None:
    make_bucket()
    agent = log_agent(agent_factory)
    spec = task_spec(f"{PRINT}; echo done >&2")
    started = run_task(agent, spec, TaskState.STARTED)
    finished = wait_for_report(agent, spec.taskId, TaskState.FINISHED)

    prefix = f"logs/{spec.jobId}/{spec.taskId}/"
    for report in (started, finished):
        assert report.context["logs.s3.bucket"] == BUCKET
        assert report.context["logs.s3.key"] == prefix
        assert report.context["logs.s3.region"] == moto_support.REGION
    task_dir = agent.log_files.task_dir(spec.taskId)
    rotated = rotated_files(task_dir, "stdout")
    assert len(rotated) == 4  # 40,000 bytes in files of 8,000, the last 8,000 still live
    assert all(p.stat().st_size == 8_000 for p in rotated)
    local = b"".join(p.read_bytes() for p in rotated) + (task_dir / "stdout").read_bytes()
    assert local == EXPECTED
    assert agent.log_files.read(spec.taskId, "stdout") == EXPECTED[32_000:]  # the live part

    wait_until("all uploaded", lambda: len(objects(BUCKET, prefix)) == 6)
    found = objects(BUCKET, prefix)
    assert set(found) == {
        *(f"{prefix}stdout.{n:06d}" for n in range(1, 5)),
        f"{prefix}stdout",
        f"{prefix}stderr",
    }
    assert set(found.values()) == {1}  # each uploaded once
    assert stdout_from_s3(BUCKET, prefix) == EXPECTED
    assert body(BUCKET, prefix + "stderr") == b"done\n"
    assert task_dir.exists()  # kept for the retention period


def test_uploaded_files_are_deleted_after_retention_and_not_before(
    agent_factory: AgentFactory, aws_env: str
) -> None:
    agent = log_agent(agent_factory, agent_log_retention_sec=0.0)
    spec = task_spec(PRINT)
    run_task(agent, spec)
    task_dir = agent.log_files.task_dir(spec.taskId)

    # no bucket yet: uploads fail, so nothing may be deleted
    time.sleep(1.0)
    assert len(rotated_files(task_dir, "stdout")) == 4
    assert agent.uploader.pending()
    assert all(e.attempts >= 1 and e.lastError for e in agent.uploader.pending())

    make_bucket()
    # failed uploads are retried (with backoff): all arrive, then the files go
    prefix = f"logs/{spec.jobId}/{spec.taskId}/"
    wait_until("uploaded after retries", lambda: len(objects(BUCKET, prefix)) == 6)
    wait_until("local files deleted", lambda: not task_dir.exists())
    assert stdout_from_s3(BUCKET, prefix) == EXPECTED


def test_job_attributes_override_bucket_prefix_and_writer_role(
    agent_factory: AgentFactory, aws_env: str
) -> None:
    make_bucket("team-bucket")
    agent = log_agent(agent_factory)
    spec = task_spec("echo hello")
    spec.jobAttributes.update(
        {
            "titusParameter.agent.log.s3BucketName": "team-bucket",
            "titusParameter.agent.log.s3PathPrefix": "/teams/alpha/",
            "titusParameter.agent.log.s3WriterRole": "arn:aws:iam::123456789012:role/logs",
        }
    )
    report = run_task(agent, spec)

    prefix = f"teams/alpha/{spec.jobId}/{spec.taskId}/"
    assert report.context["logs.s3.bucket"] == "team-bucket"
    assert report.context["logs.s3.key"] == prefix
    wait_until("uploaded", lambda: f"{prefix}stdout" in objects("team-bucket", prefix))
    assert body("team-bucket", prefix + "stdout") == b"hello\n"


def test_agent_restart_loses_nothing_and_uploads_nothing_twice(
    agent_factory: AgentFactory, aws_env: str, docker_engine: docker.DockerClient
) -> None:
    make_bucket()
    first = log_agent(agent_factory)
    # half the output, a pause in which the agent restarts, then the rest
    spec = task_spec(
        "seq -w 1 2000 | sed 's/^/line /'; while [ ! -e /tmp/go ]; do sleep 0.1; done;"
        " seq -w 2001 4000 | sed 's/^/line /'"
    )
    started = run_task(first, spec, TaskState.STARTED)
    prefix = f"logs/{spec.jobId}/{spec.taskId}/"
    wait_until(
        "first rotated files uploaded",
        lambda: (
            {f"{prefix}stdout.000001", f"{prefix}stdout.000002"} <= set(objects(BUCKET, prefix))
        ),
    )
    first.stop()

    second = log_agent(agent_factory)
    wait_for_report(second, spec.taskId, TaskState.STARTED)
    docker_engine.containers.get(started.containerId).exec_run(["touch", "/tmp/go"])
    wait_for_report(second, spec.taskId, TaskState.FINISHED)

    wait_until("all uploaded", lambda: f"{prefix}stdout" in objects(BUCKET, prefix))
    wait_until("journal empty", lambda: not second.uploader.pending())
    found = objects(BUCKET, prefix)
    assert set(found.values()) == {1}, found
    assert stdout_from_s3(BUCKET, prefix) == EXPECTED


def test_pending_uploads_survive_an_agent_restart(
    agent_factory: AgentFactory, aws_env: str
) -> None:
    first = log_agent(agent_factory)
    spec = task_spec(PRINT)
    run_task(first, spec)
    wait_until("all journaled", lambda: len(first.uploader.pending()) == 6)
    first.stop()  # the bucket did not exist: nothing could be uploaded

    make_bucket()
    second = log_agent(agent_factory)
    prefix = f"logs/{spec.jobId}/{spec.taskId}/"
    wait_until("uploaded by the next agent", lambda: len(objects(BUCKET, prefix)) == 6)
    assert stdout_from_s3(BUCKET, prefix) == EXPECTED
    assert set(objects(BUCKET, prefix).values()) == {1}
    assert second.uploader.pending() == []


def test_following_the_live_log_crosses_rotations(agent_factory: AgentFactory) -> None:
    agent = agent_factory(agent_log_rotate_bytes=8_000)
    spec = task_spec(f"sleep 1; {PRINT}")
    run_task(agent, spec, TaskState.STARTED)

    whole: list[bytes] = []
    part: list[bytes] = []  # a range that spans three rotated files

    def running() -> bool:
        return agent.is_running(spec.taskId)

    def follow(into: list[bytes], offset: int, length: int | None) -> None:
        into.extend(agent.log_files.follow(spec.taskId, "stdout", offset, running, length))

    readers = [
        threading.Thread(target=follow, args=(whole, 0, None)),
        threading.Thread(target=follow, args=(part, 5, 20_000)),
    ]
    for reader in readers:
        reader.start()
    wait_for_report(agent, spec.taskId, TaskState.FINISHED)
    for reader in readers:
        reader.join(WAIT_SEC)
        assert not reader.is_alive()
    assert b"".join(whole) == EXPECTED
    assert b"".join(part) == EXPECTED[5:20_005]


def test_an_upload_the_journal_missed_is_not_made_again(aws_env: str, tmp_path: Path) -> None:
    """A crash between an upload and its journal entry: the object is there already. The
    same bytes are not sent twice; an object that differs (a partial or older upload) is
    replaced."""
    make_bucket()
    uploader = LogUploader(Settings(data_dir=str(tmp_path / "data")), tmp_path / "logs")
    target = S3Target(bucket=BUCKET, prefix="logs/job/task/", region=moto_support.REGION)
    same, differs = tmp_path / "logs" / "task" / "stdout", tmp_path / "logs" / "task" / "stderr"
    same.parent.mkdir(parents=True)
    same.write_bytes(EXPECTED)
    differs.write_bytes(b"complete\n")
    s3().put_object(Bucket=BUCKET, Key="logs/job/task/stdout", Body=EXPECTED)
    s3().put_object(Bucket=BUCKET, Key="logs/job/task/stderr", Body=b"complet\n")

    assert uploader.enqueue(same, target) and uploader.enqueue(differs, target)
    uploader.run_once()

    assert uploader.pending() == []
    assert uploader.uploaded == 1
    assert objects(BUCKET, "logs/job/task/") == {
        "logs/job/task/stdout": 1,
        "logs/job/task/stderr": 2,
    }
    assert body(BUCKET, "logs/job/task/stderr") == b"complete\n"


def test_without_a_bucket_output_is_kept_for_its_retention_then_deleted(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory(agent_log_local_retention_sec=2.0, agent_log_upload_interval_sec=0.2)
    old, running = task_spec("echo kept-for-a-while"), task_spec("echo still-here; sleep 60")
    run_task(agent, old)
    run_task(agent, running, TaskState.STARTED)
    old_dir, running_dir = (agent.log_files.task_dir(t.taskId) for t in (old, running))
    # readable after the task ended, as long as the retention lasts
    assert (old_dir / "stdout").read_text() == "kept-for-a-while\n"
    wait_until("the ended task's output deleted", lambda: not old_dir.exists(), timeout=30)
    # a running task's output is never the retention's to take
    assert (running_dir / "stdout").exists()


def test_kept_output_over_its_size_bound_goes_oldest_first(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), agent_log_local_max_mb=1)
    uploader = LogUploader(settings, tmp_path / "logs")
    now = time.time()
    for i in range(4):
        folder = tmp_path / "logs" / f"task-{i}"
        folder.mkdir(parents=True)
        (folder / "stdout").write_bytes(b"x" * 400_000)
        marker = folder / ".ended"
        marker.touch()
        os.utime(marker, (now - 100 + i, now - 100 + i))
    (tmp_path / "logs" / "task-running").mkdir()
    (tmp_path / "logs" / "task-running" / "stdout").write_bytes(b"x" * 2_000_000)
    gone = uploader.expire_local(now)
    assert [p.name for p in gone] == ["task-0", "task-1"]  # 1.6 MB down to 0.8 MB
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
        "task-2",
        "task-3",
        "task-running",
    ]
