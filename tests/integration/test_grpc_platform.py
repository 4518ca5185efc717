"""Spinnaker's server group flow over gRPC against `titus local` as a process running real
containers: create, observe until the tasks run, shrink, resize, kill, observe the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.test_local_platform import example
from tests.integration.test_grpc_jobs import CALLER, descriptor
from tests.support.platform import Platform, _remove_containers, free_port, make_platform
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.grpc.gen.titus_job_api_pb2_grpc import JobManagementServiceStub

pytestmark = pytest.mark.docker

#: Deadline of the observe call: the whole flow must fit in it (a hang fails the test).
FLOW_DEADLINE_SEC = 240
STARTED = pb.TaskStatus.Started


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Platform, JobManagementServiceStub]]:
    port = free_port()
    platform = make_platform(tmp_path, extra_env={"TITUS_GRPC_PORT": str(port)})
    platform.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield platform, JobManagementServiceStub(channel)
    finally:
        channel.close()
        platform.stop()
        _remove_containers(platform.env["DOCKER_HOST"], platform.agent_id)


def test_a_server_group_over_grpc_runs_shrinks_resizes_and_ends(
    served: tuple[Platform, JobManagementServiceStub],
) -> None:
    platform, stub = served
    job_id = stub.CreateJob(descriptor(example("service-web.json")), metadata=CALLER).id
    with pytest.raises(grpc.RpcError) as taken:
        stub.CreateJob(descriptor(example("service-web.json")), metadata=CALLER)
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS

    stream = stub.ObserveJob(pb.JobId(id=job_id), timeout=FLOW_DEADLINE_SEC)
    states: dict[str, int] = {}

    def until(check: object) -> None:
        for note in stream:
            if note.HasField("taskUpdate"):
                task = note.taskUpdate.task
                states[task.id] = task.status.state
            if callable(check) and check():
                return
        raise AssertionError(f"the stream ended first; tasks seen: {states}")

    def running() -> list[str]:
        return sorted(t for t, s in states.items() if s == STARTED)

    until(lambda: len(running()) == 2)
    victim = running()[0]
    stub.KillTask(pb.TaskKillRequest(taskId=victim, shrink=True), metadata=CALLER)
    until(lambda: states.get(victim) == pb.TaskStatus.Finished and len(running()) == 1)
    assert stub.FindJob(pb.JobId(id=job_id)).jobDescriptor.service.capacity.desired == 1
    killed = stub.FindTask(pb.TaskId(id=victim)).status
    assert killed.state == pb.TaskStatus.Finished and killed.reasonCode == "killed"

    stub.UpdateJobCapacity(
        pb.JobCapacityUpdate(jobId=job_id, Capacity=pb.Capacity(min=1, desired=2, max=4)),
        metadata=CALLER,
    )
    until(lambda: len(running()) == 2)
    tasks = stub.FindTasks(pb.TaskQuery(filteringCriteria={"jobIds": job_id}))
    assert {t.id for t in tasks.items} >= set(running()) | {victim}

    stub.KillJob(pb.JobId(id=job_id), metadata=CALLER)
    last = list(stream)  # the server ends the stream once the job has finished
    assert last and last[-1].jobUpdate.job.status.state == pb.JobStatus.Finished
    assert platform.job(job_id)["status"]["state"] == "Finished"
