"""The gRPC server itself: reflection and health as grpcurl and load balancers use them,
observe streams, one service layer behind both transports, code generated from the
current protos, and `titus api` serving gRPC next to REST."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.integration.test_api_app import BATCH, SERVICE
from tests.integration.test_grpc_jobs import CALLER, add_task, descriptor, grpc_api
from tests.support.platform import free_port, spawn, stop_process
from tests.support.poll import wait_until
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.grpc.gen.titus_job_api_pb2_grpc import JobManagementServiceStub
from titus.model.job import Job, JobDescriptor, JobStatus
from titus.model.states import JobState, TaskState

ROOT = Path(__file__).resolve().parents[2]
SERVICE_NAME = "com.netflix.titus.JobManagementService"
#: Deadline of each observe call, so a missing notification fails the test, not hangs it.
OBSERVE_DEADLINE_SEC = 30


def test_reflection_lists_the_service_and_health_says_serving(tmp_path: Path) -> None:
    with grpc_api(tmp_path) as api:
        db = ProtoReflectionDescriptorDatabase(api.channel)
        services = db.get_services()
        assert SERVICE_NAME in services and "grpc.health.v1.Health" in services
        found = db.FindFileContainingSymbol(SERVICE_NAME)
        methods = {m.name for s in found.service for m in s.method}
        assert {"CreateJob", "FindJobs", "ObserveJobs", "KillTask", "MoveTask"} <= methods
        checks = health_pb2_grpc.HealthStub(api.channel)
        for name in ("", SERVICE_NAME):
            reply = checks.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_generated_code_matches_the_protos() -> None:
    proc = subprocess.run(
        [str(ROOT / "scripts/protos.sh"), "--check"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_a_job_created_through_either_transport_reads_back_the_same_through_both(
    tmp_path: Path,
) -> None:
    with grpc_api(tmp_path) as api:
        body = {**SERVICE, "jobGroupInfo": {"stack": "s", "detail": "d"}, "attributes": {"a": "1"}}
        via_rest = api.http.post(
            "/api/v3/jobs", json=body, headers={"X-Titus-CallerId": "spinnaker"}
        ).json()["id"]
        via_grpc = api.stub.CreateJob(descriptor(body), metadata=CALLER[:1]).id
        rest_reads = [api.http.get(f"/api/v3/jobs/{i}").json() for i in (via_rest, via_grpc)]
        assert rest_reads[0]["jobDescriptor"] == rest_reads[1]["jobDescriptor"]
        grpc_reads = [api.stub.FindJob(pb.JobId(id=i)) for i in (via_rest, via_grpc)]
        assert grpc_reads[0].jobDescriptor == grpc_reads[1].jobDescriptor
        as_message = json_format.ParseDict(rest_reads[0], pb.Job(), ignore_unknown_fields=True)
        assert as_message == grpc_reads[0]


def test_observe_jobs_sends_the_snapshot_the_marker_then_live_changes(tmp_path: Path) -> None:
    with grpc_api(tmp_path) as api:
        job_id = api.stub.CreateJob(descriptor(applicationName="watched")).id
        other = api.stub.CreateJob(descriptor(applicationName="other")).id
        task_id = add_task(api.store, job_id, 1)
        stream = api.stub.ObserveJobs(
            pb.ObserveJobsQuery(
                filteringCriteria={"applicationName": "watched"},
                jobFields=["jobDescriptor.service", "status"],
                taskFields=["jobId", "status"],
            ),
            timeout=OBSERVE_DEADLINE_SEC,
        )
        try:
            kinds = []
            for note in stream:
                kind = note.WhichOneof("Notification")
                kinds.append(kind)
                if kind == "jobUpdate":
                    assert note.jobUpdate.job.id == job_id
                    assert not note.jobUpdate.job.jobDescriptor.HasField("container")
                if kind == "taskUpdate":
                    assert note.taskUpdate.task.id == task_id
                    assert note.taskUpdate.task.jobId == job_id
                    assert not note.taskUpdate.task.HasField("logLocation")
                if kind == "snapshotEnd":
                    break
            assert kinds == ["jobUpdate", "taskUpdate", "snapshotEnd"]

            api.http.put(f"/api/v3/jobs/{other}/instances", json={"min": 0, "desired": 1, "max": 5})
            api.http.put(
                f"/api/v3/jobs/{job_id}/instances", json={"min": 1, "desired": 4, "max": 5}
            )
            change = next(stream)
            assert change.jobUpdate.job.id == job_id  # the other job's change is filtered out
            assert change.jobUpdate.job.jobDescriptor.service.capacity.desired == 4

            add_task(api.store, other, 1)  # a task of a job the criteria do not select
            task = api.store.get_task(task_id)
            assert task is not None
            api.store.archive_task(task.with_status(TaskState.FINISHED, "killed", "by test"))
            gone = next(stream)
            assert gone.taskUpdate.task.id == task_id and gone.taskUpdate.archived
            final = gone.taskUpdate.task.status  # as it finally was, not as last seen
            assert final.state == pb.TaskStatus.Finished and final.reasonCode == "killed"
        finally:
            stream.cancel()


def test_observe_job_ends_when_the_job_finishes(tmp_path: Path) -> None:
    with grpc_api(tmp_path) as api:
        job_id = api.stub.CreateJob(descriptor(BATCH)).id
        stream = api.stub.ObserveJob(pb.JobId(id=job_id), timeout=OBSERVE_DEADLINE_SEC)
        first = [next(stream), next(stream)]
        assert first[0].jobUpdate.job.id == job_id
        assert first[1].WhichOneof("Notification") == "snapshotEnd"
        job = api.store.get_job(job_id)
        assert job is not None
        api.store.update_job(job.with_status(JobState.FINISHED, "normal", "done"))
        rest = list(stream)  # the server ends the stream after the Finished notification
        assert rest[-1].jobUpdate.job.status.state == pb.JobStatus.Finished
        again = list(api.stub.ObserveJob(pb.JobId(id=job_id), timeout=OBSERVE_DEADLINE_SEC))
        assert [n.WhichOneof("Notification") for n in again] == ["jobUpdate", "snapshotEnd"]
        assert again[0].jobUpdate.job.status.state == pb.JobStatus.Finished
        with pytest.raises(grpc.RpcError) as missing:
            list(api.stub.ObserveJob(pb.JobId(id="nope"), timeout=OBSERVE_DEADLINE_SEC))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_watcher_that_falls_behind_is_dropped(tmp_path: Path) -> None:
    with grpc_api(tmp_path, observe_queue_size=2) as api:
        stream = api.stub.ObserveJobs(pb.ObserveJobsQuery(), timeout=OBSERVE_DEADLINE_SEC)
        assert next(stream).WhichOneof("Notification") == "snapshotEnd"
        spec = JobDescriptor.model_validate(SERVICE)
        for _ in range(5):  # written at once: the next refresh hands over all five
            api.store.create_job(
                Job(
                    id=str(uuid.uuid4()),
                    jobDescriptor=spec,
                    status=JobStatus(state=JobState.ACCEPTED),
                )
            )
        with pytest.raises(grpc.RpcError) as dropped:
            list(stream)
        assert dropped.value.code() == grpc.StatusCode.ABORTED


def test_titus_api_serves_grpc_next_to_rest(tmp_path: Path) -> None:
    port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "TITUS_DATA_DIR": str(tmp_path / "data"),
        "TITUS_GRPC_PORT": str(grpc_port),
    }
    proc = spawn(["api", "--port", str(port)], env, tmp_path / "api.log")
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        grpc.channel_ready_future(channel).result(timeout=60)
        checks = health_pb2_grpc.HealthStub(channel)
        reply = checks.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        job_id = JobManagementServiceStub(channel).CreateJob(descriptor(), timeout=10).id
        r = wait_until(
            "the REST side to answer",
            lambda: httpx.get(f"http://127.0.0.1:{port}/api/v3/jobs/{job_id}", timeout=5),
            60,
            interval=0.2,
            retry_on=(httpx.HTTPError,),
        )
        assert r.status_code == 200 and r.json()["id"] == job_id
        channel.close()
    finally:
        stop_process(proc)
    assert "Traceback" not in (tmp_path / "api.log").read_text()


def test_a_taken_grpc_port_leaves_rest_serving(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with grpc_api(tmp_path, grpc_port=taken) as api:
            assert api.http.get("/health").status_code == 200
            assert api.http.app.state.grpc_port == 0  # type: ignore[attr-defined]
