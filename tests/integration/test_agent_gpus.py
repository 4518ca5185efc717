"""GPUs on a real engine. These machines have none: the host offers the devices it
declares, each task's container is asked for exactly the devices the task holds, and an
engine that cannot give them (no NVIDIA runtime here) ends the task with the engine's
reason as a system error (placed again elsewhere), frees the devices, and the host offers
no GPUs from then on. That a container then sees only its devices is the NVIDIA
runtime's part and cannot run here."""

from __future__ import annotations

import docker
import pytest

from tests.support.docker_engine import AgentFactory, run_task, task_containers, task_spec
from tests.support.poll import wait_until
from titus.agent.gpus import GpuHook
from titus.agent.runtime import LABEL_GPUS
from titus.model import names
from titus.model.states import Reason

pytestmark = pytest.mark.docker


def test_a_gpu_task_is_asked_exactly_its_devices_and_gives_them_back(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory(agent_gpus=["0", "1", "2"])
    assert agent.info.resources[names.GPU] == 3.0  # what the master counts
    [pool] = [h.pool for h in agent.hooks.hooks if isinstance(h, GpuHook)]

    spec = task_spec("true")
    spec.container.resources.gpu = 2
    held = pool.allocate(spec.taskId, 2)
    kwargs = agent.runtime.create_kwargs(spec, agent.agent_id, held)
    [request] = kwargs["device_requests"]
    assert request["DeviceIDs"] == held and request["Capabilities"] == [["gpu"]]
    assert kwargs["labels"][LABEL_GPUS] == ",".join(held)
    pool.release(spec.taskId)

    report = run_task(agent, spec)
    # the engine's reason, as a system error: the task is placed again, not failed
    assert report.reasonCode == Reason.TRANSIENT_SYSTEM_ERROR
    assert "cannot give containers GPUs" in report.reasonMessage, report.reasonMessage
    assert "device driver" in report.reasonMessage, report.reasonMessage
    assert sorted(pool.free()) == ["0", "1", "2"]
    assert task_containers(docker_engine, spec.taskId) == []
    # and the host offers no GPUs from now on, so the master does not send it there again
    wait_until(
        "the host published without GPUs",
        lambda: agent.coord.agents()[0].resources[names.GPU] == 0.0,
        timeout=15,
    )
    again = task_spec("true")
    again.container.resources.gpu = 1
    refused = run_task(agent, again)  # one the master placed before it heard: at once
    assert refused.reasonCode == Reason.TRANSIENT_SYSTEM_ERROR
    assert "cannot give containers GPUs" in refused.reasonMessage
    assert task_containers(docker_engine, again.taskId) == []

    plain = task_spec("echo no-gpu")
    assert run_task(agent, plain).reasonCode == "normal"
    assert "device_requests" not in agent.runtime.create_kwargs(plain, agent.agent_id)
