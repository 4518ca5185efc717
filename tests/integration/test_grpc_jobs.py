"""Spinnaker's flows over gRPC with a client generated from our protos, against the API
in-process (REST and gRPC on one event loop, a real SQLite store); helpers for the other
gRPC tests."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient
from google.protobuf import json_format, wrappers_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.integration.test_api_app import BATCH, SERVICE
from titus.api.app import create_app
from titus.api.grpc.gen import titus_base_pb2 as base
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.grpc.gen import titus_job_api_pb2_grpc as pb_grpc
from titus.api.grpc.gen.titus_base_pb2 import Day
from titus.api.grpc.server import attach
from titus.coord.local import LocalCoordinator
from titus.model.job import Task, TaskStatus
from titus.model.states import TaskState
from titus.settings import Settings
from titus.store.sqlite import SqliteJobStore

CALLER = (("x-titus-callerid", "spinnaker"), ("x-titus-callreason", "deploy"))


@dataclass
class Api:
    http: TestClient
    stub: pb_grpc.JobManagementServiceStub
    channel: grpc.Channel
    store: SqliteJobStore


@contextmanager
def grpc_api(tmp: Path, **settings: Any) -> Iterator[Api]:
    store = SqliteJobStore(tmp / "titus.db", synchronous="OFF")
    config = Settings(data_dir=str(tmp), **{"grpc_port": 0, **settings})
    app = create_app(config, store, LocalCoordinator())
    attach(app, config)
    with TestClient(app) as http:
        channel = grpc.insecure_channel(f"127.0.0.1:{app.state.grpc_port}")
        try:
            yield Api(http, pb_grpc.JobManagementServiceStub(channel), channel, store)
        finally:
            channel.close()
    store.close()


def descriptor(body: dict[str, Any] | None = None, **changes: Any) -> pb.JobDescriptor:
    """A JobDescriptor message from the REST tests' JSON shape."""
    data = copy.deepcopy(body if body is not None else SERVICE)
    data.update(changes)
    return json_format.ParseDict(data, pb.JobDescriptor())


def violations(err: grpc.RpcError) -> dict[str, str]:
    """The field violations of a refused call's BadRequest detail, by field path."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no rich status details"
    out: dict[str, str] = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            out.update({v.field: v.description for v in bad.field_violations})
    return out


def retry_delay_sec(err: grpc.RpcError) -> float | None:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return float(info.retry_delay.ToMilliseconds()) / 1000
    return None


def server_group(seq: str = "v001") -> pb.JobDescriptor:
    return descriptor(
        applicationName="api",
        capacityGroup="web",
        jobGroupInfo={"stack": "prod", "detail": "east", "sequence": seq},
        attributes={"source": "spinnaker", "name": f"api-prod-east-{seq}"},
        container={
            **SERVICE["container"],
            "hardConstraints": {"constraints": {"uniqueHost": "true"}},
            "softConstraints": {"constraints": {"zoneBalance": "true"}},
        },
        service={
            "capacity": {"min": 1, "desired": 2, "max": 5},
            "retryPolicy": {"exponentialBackOff": {"initialDelayMs": "1000", "retries": 3}},
        },
    )


def add_task(store: SqliteJobStore, job_id: str, n: int) -> str:
    """A running task as the master would write it."""
    task = Task(
        id=f"{job_id}-t{n}",
        jobId=job_id,
        originalId=f"{job_id}-t{n}",
        status=TaskStatus(state=TaskState.STARTED),
        logLocation={"ui": f"http://logs/{job_id}-t{n}"},
    )
    store.create_task(task)
    return task.id


def test_create_find_resize_disable_enable_kill_like_spinnaker(tmp_path: Path) -> None:
    with grpc_api(tmp_path) as api:
        stub = api.stub
        job_id = stub.CreateJob(server_group(), metadata=CALLER).id
        stub.CreateJob(server_group("v002"), metadata=CALLER)
        with pytest.raises(grpc.RpcError) as taken:
            stub.CreateJob(server_group(), metadata=CALLER)
        assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS

        job = stub.FindJob(pb.JobId(id=job_id))
        d = job.jobDescriptor
        assert d.jobGroupInfo.sequence == "v001" and d.capacityGroup == "web"
        assert d.attributes["titus.createdBy"] == "spinnaker"
        assert d.attributes["titus.callReason"] == "deploy"
        assert d.container.hardConstraints.constraints["uniqueHost"] == "true"
        assert d.service.retryPolicy.exponentialBackOff.retries == 3
        assert d.service.capacity.desired == 2
        assert job.status.state == pb.JobStatus.Accepted

        found = stub.FindJobs(
            pb.JobQuery(
                filteringCriteria={
                    "attributes": "source:spinnaker,name:api-prod-east-v001",
                    "attributes.op": "and",
                    "jobType": "SERVICE",
                }
            )
        )
        assert [j.id for j in found.items] == [job_id]
        either = stub.FindJobs(
            pb.JobQuery(
                filteringCriteria={
                    "attributes": "name:api-prod-east-v001,name:api-prod-east-v002",
                    "attributes.op": "or",
                    "applicationName": "api",
                    "capacityGroup": "web",
                    "jobGroupStack": "prod",
                    "jobState": "Accepted",
                }
            )
        )
        assert len(either.items) == 2 and either.pagination.totalItems == 2
        by_seq = stub.FindJobs(
            pb.JobQuery(filteringCriteria={"jobGroupDetail": "east", "jobGroupSequence": "v002"})
        )
        assert [j.jobDescriptor.jobGroupInfo.sequence for j in by_seq.items] == ["v002"]

        stub.UpdateJobCapacity(
            pb.JobCapacityUpdate(jobId=job_id, Capacity=pb.Capacity(min=1, desired=4, max=6)),
            metadata=CALLER,
        )
        stub.UpdateJobCapacityWithOptionalAttributes(
            pb.JobCapacityUpdateWithOptionalAttributes(
                jobId=job_id,
                jobCapacityWithOptionalAttributes=pb.JobCapacityWithOptionalAttributes(
                    max=wrappers_pb2.UInt32Value(value=8)
                ),
            )
        )
        capacity = stub.FindJob(pb.JobId(id=job_id)).jobDescriptor.service.capacity
        assert (capacity.min, capacity.desired, capacity.max) == (1, 4, 8)
        # listings reuse messages made from the view: a changed job is listed as it is now
        listed = stub.FindJobs(pb.JobQuery(filteringCriteria={"jobIds": job_id})).items[0]
        assert listed.jobDescriptor.service.capacity == capacity
        assert api.http.get(f"/api/v3/jobs/{job_id}").json()["jobDescriptor"]["service"][
            "capacity"
        ] == {"min": 1, "desired": 4, "max": 8}

        stub.UpdateJobStatus(pb.JobStatusUpdate(id=job_id, enableStatus=False))
        assert not stub.FindJob(pb.JobId(id=job_id)).jobDescriptor.service.enabled
        stub.UpdateJobStatus(pb.JobStatusUpdate(id=job_id, enableStatus=True))
        assert stub.FindJob(pb.JobId(id=job_id)).jobDescriptor.service.enabled

        stub.UpdateJobProcesses(
            pb.JobProcessesUpdate(
                jobId=job_id,
                serviceJobProcesses=pb.ServiceJobSpec.ServiceJobProcesses(
                    disableDecreaseDesired=True
                ),
            )
        )
        with pytest.raises(grpc.RpcError) as refused:
            stub.UpdateJobCapacity(
                pb.JobCapacityUpdate(jobId=job_id, Capacity=pb.Capacity(min=1, desired=2, max=8))
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stub.UpdateJobProcesses(
            pb.JobProcessesUpdate(
                jobId=job_id, serviceJobProcesses=pb.ServiceJobSpec.ServiceJobProcesses()
            )
        )

        budget = json_format.ParseDict(
            {
                "availabilityPercentageLimit": {"percentageOfHealthyContainers": 90},
                "ratePerInterval": {"intervalMs": "60000", "limitPerInterval": 2},
                "timeWindows": [{"days": ["Monday"], "hourlyTimeWindows": [{"endHour": 6}]}],
            },
            pb.JobDisruptionBudget(),
        )
        stub.UpdateJobDisruptionBudget(
            pb.JobDisruptionBudgetUpdate(jobId=job_id, disruptionBudget=budget)
        )
        read = stub.FindJob(pb.JobId(id=job_id)).jobDescriptor.disruptionBudget
        assert read.availabilityPercentageLimit.percentageOfHealthyContainers == 90
        assert read.timeWindows[0].days == [Day.Monday]

        stub.UpdateJobAttributes(pb.JobAttributesUpdate(jobId=job_id, attributes={"team": "a"}))
        stub.DeleteJobAttributes(pb.JobAttributesDeleteRequest(jobId=job_id, keys=["source"]))
        attrs = stub.FindJob(pb.JobId(id=job_id)).jobDescriptor.attributes
        assert attrs["team"] == "a" and "source" not in attrs

        t1, t2 = add_task(api.store, job_id, 1), add_task(api.store, job_id, 2)
        tasks = stub.FindTasks(
            pb.TaskQuery(filteringCriteria={"jobIds": job_id, "taskStates": "Started"})
        )
        assert sorted(t.id for t in tasks.items) == [t1, t2]
        assert tasks.items[0].logLocation.ui.url.startswith("http://logs/")
        active = stub.FindTasks(pb.TaskQuery(filteringCriteria={"applicationName": "api"}))
        assert sorted(t.id for t in active.items) == [t1, t2]
        stub.UpdateTaskAttributes(pb.TaskAttributesUpdate(taskId=t1, attributes={"k": "v"}))
        assert stub.FindTask(pb.TaskId(id=t1)).attributes["k"] == "v"
        stub.DeleteTaskAttributes(pb.TaskAttributesDeleteRequest(taskId=t1, keys=["k"]))
        assert "k" not in stub.FindTask(pb.TaskId(id=t1)).attributes

        stub.KillTask(pb.TaskKillRequest(taskId=t1, shrink=True), metadata=CALLER)
        assert stub.FindJob(pb.JobId(id=job_id)).jobDescriptor.service.capacity.desired == 3
        kills = api.store.list_kill_requests(job_id)
        assert [(k.task_id, k.shrink) for k in kills] == [(t1, True)]

        stub.KillJob(pb.JobId(id=job_id), metadata=CALLER)
        assert stub.FindJob(pb.JobId(id=job_id)).status.state == pb.JobStatus.KillInitiated


def test_batch_job_with_retry_policy_and_paging(tmp_path: Path) -> None:
    with grpc_api(tmp_path) as api:
        stub = api.stub
        ids = [
            stub.CreateJob(
                descriptor(
                    BATCH,
                    applicationName=f"batch{i}",
                    batch={
                        "size": 1,
                        "runtimeLimitSec": "600",
                        "retryPolicy": {"delayed": {"initialDelayMs": "5", "retries": 2}},
                    },
                )
            ).id
            for i in range(5)
        ]
        first = stub.FindJobs(pb.JobQuery(page=base.Page(pageSize=2)))
        assert [j.id for j in first.items] == ids[:2]
        assert first.pagination.hasMore and first.pagination.totalPages == 3
        second = stub.FindJobs(
            pb.JobQuery(page=base.Page(pageSize=2, cursor=first.pagination.cursor))
        )
        assert [j.id for j in second.items] == ids[2:4]
        third = stub.FindJobs(pb.JobQuery(page=base.Page(pageSize=2, pageNumber=2)))
        assert [j.id for j in third.items] == ids[4:] and not third.pagination.hasMore
        assert third.pagination.currentPage.pageNumber == 2

        narrow = stub.FindJobs(
            pb.JobQuery(page=base.Page(pageSize=1), fields=["jobDescriptor.applicationName"])
        )
        item = narrow.items[0]
        assert item.id == ids[0] and item.jobDescriptor.applicationName == "batch0"
        assert not item.HasField("status") and not item.jobDescriptor.HasField("container")

        job = stub.FindJob(pb.JobId(id=ids[0]))
        assert job.jobDescriptor.batch.retryPolicy.delayed.retries == 2
        assert job.jobDescriptor.batch.runtimeLimitSec == 600


def test_a_create_retried_with_its_idempotency_key_returns_the_first_job(tmp_path: Path) -> None:
    with grpc_api(tmp_path) as api:
        key = (("idempotency-key", "deploy-42"), *CALLER)
        first = api.stub.CreateJob(descriptor(), metadata=key).id
        assert api.stub.CreateJob(descriptor(), metadata=key).id == first
        with pytest.raises(grpc.RpcError) as other_body:
            api.stub.CreateJob(descriptor(applicationName="other"), metadata=key)
        assert other_body.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert api.stub.FindJobs(pb.JobQuery()).pagination.totalItems == 1
