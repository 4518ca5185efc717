"""Host health on real engines: an agent that refuses to start with no engine configured
and says which engine it uses, an agent that starts with its engine down, a private
dockerd stopped and started under a running agent, health shown in `GET /api/v3/agents`,
termination of a long-unhealthy host through a moto Auto Scaling API with a fleet-wide
limit, and containers nobody owns."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
from fastapi.testclient import TestClient

from tests.support import moto_server as moto_support
from tests.support.docker_engine import (
    AgentFactory,
    PrivateEngine,
    run_task,
    start_docker_engine,
    task_containers,
    task_spec,
    wait_for_report,
)
from tests.support.moto_server import EXAMPLE_IMAGE
from tests.support.platform import TITUS
from titus.agent.daemon import AgentDaemon
from titus.agent.runtime import LABEL_AGENT, LABEL_TASK, EngineNotConfigured, RuntimeConfig
from titus.api.app import create_app
from titus.coord.local import LocalCoordinator
from titus.model.job import Task as StoredTask
from titus.model.job import TaskStatus
from titus.model.states import Reason, TaskState
from titus.settings import Settings
from titus.store.sqlite import SqliteJobStore

pytestmark = pytest.mark.docker


# a free-space floor no disk here meets: a real failing check, not a stub
IMPOSSIBLE_DISK_MB = 1 << 40


def settings(tmp_path: Path, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": str(tmp_path / f"data-{uuid.uuid4().hex[:6]}"),
        "agent_id": f"agent-{uuid.uuid4().hex[:8]}",
        "kill_grace_sec": 1.0,
        "agent_health_interval_sec": 3600.0,  # the tests drive health checks themselves
    }
    base.update(values)
    return Settings(**base)


def _without_engine(tmp_path: Path) -> dict[str, str]:
    """An environment naming no engine: no DOCKER_HOST, no TITUS_ settings."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("TITUS_") and k != "DOCKER_HOST"
    }
    return {**clean, "TITUS_DATA_DIR": str(tmp_path / "cli")}


def test_an_agent_with_no_engine_configured_refuses_to_start_and_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No default socket is guessed: the `titus agent` command, the daemon and the Mesos
    executor each refuse, naming the setting and the variable that would say it."""
    proc = subprocess.run(
        [TITUS, "agent", "--coord", "local"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_without_engine(tmp_path),
    )
    assert proc.returncode == 1, proc.stderr
    assert "no Docker engine configured" in proc.stderr
    assert "docker_url (TITUS_DOCKER_URL)" in proc.stderr and "DOCKER_HOST" in proc.stderr

    executor = subprocess.run(
        [sys.executable, "-m", "titus.agent.mesos_executor"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**_without_engine(tmp_path), "MESOS_SANDBOX": str(tmp_path)},
    )
    assert executor.returncode == 1, executor.stderr
    assert "no Docker engine configured" in executor.stderr

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with pytest.raises(EngineNotConfigured, match=r"docker_url \(TITUS_DOCKER_URL\)"):
        AgentDaemon(settings(tmp_path), LocalCoordinator())
    with pytest.raises(EngineNotConfigured, match="'tcp//engine' .from docker_url"):
        AgentDaemon(settings(tmp_path, docker_url="tcp//engine"), LocalCoordinator())


def test_the_agent_says_which_engine_it_uses_and_where_that_came_from(
    tmp_path: Path,
    docker_engine: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = start_docker_engine()  # the running engine's address (the script is idempotent)
    monkeypatch.setenv("DOCKER_HOST", engine)
    caplog.set_level(logging.INFO, logger="titus.agent.runtime")
    agent = AgentDaemon(settings(tmp_path), LocalCoordinator())
    try:
        assert f"docker engine: {engine} (from DOCKER_HOST)" in caplog.text
        assert agent.client.ping()
    finally:
        agent.stop()


def test_agent_starts_with_its_engine_down_and_refuses_launches_as_transient(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="titus.agent.runtime")
    missing = f"unix://{tmp_path}/no-engine.sock"
    agent = AgentDaemon(settings(tmp_path, docker_url=missing), LocalCoordinator())
    # configured but down is not refused: the agent starts unhealthy and says so
    assert f"docker engine: {missing} (from docker_url (TITUS_DOCKER_URL))" in caplog.text
    assert f"docker engine at {missing} (from docker_url" in caplog.text
    agent.start()
    try:
        registered = agent.coord.agents()[0]
        assert registered.healthy is False
        assert any("docker engine unavailable" in r for r in registered.health_reasons)
        spec = task_spec("true")
        report = run_task(agent, spec)
        assert report.reasonCode == Reason.TRANSIENT_SYSTEM_ERROR
        assert "docker engine unavailable" in report.reasonMessage
    finally:
        agent.stop()


def test_docker_stopped_and_started_under_a_running_agent(
    tmp_path: Path, private_engine: PrivateEngine
) -> None:
    agent = AgentDaemon(
        settings(
            tmp_path,
            docker_url=private_engine.url,
            agent_health_probe_interval_sec=0.0,
            agent_allow_no_userns=True,  # the private engine does not remap (see below)
        ),
        LocalCoordinator(),
        runtime_config=RuntimeConfig(network_mode="none"),
    )
    agent.start()
    try:
        assert agent.check_health().healthy, agent.info.health_reasons
        assert agent.coord.agents()[0].healthy

        private_engine.stop()
        status = agent.check_health()
        assert not status.healthy
        assert not agent.coord.agents()[0].healthy  # published: the master skips the host
        refused = task_spec("echo hi")
        report = run_task(agent, refused)
        assert report.reasonCode == Reason.TRANSIENT_SYSTEM_ERROR

        private_engine.start()
        assert agent.check_health().healthy, agent.info.health_reasons
        assert agent.coord.agents()[0].healthy
        spec = task_spec("echo back")
        done = run_task(agent, spec)
        assert done.reasonCode == Reason.NORMAL, done
        assert agent.log_files.read(spec.taskId, "stdout") == b"back\n"
    finally:
        agent.stop()


def test_an_engine_without_user_namespace_remapping_makes_the_host_unhealthy(
    tmp_path: Path, private_engine: PrivateEngine
) -> None:
    """Root in a container would be root on the host: the agent takes no task there (and
    says why) unless the operator allows it for this host."""
    agent = AgentDaemon(
        settings(tmp_path, docker_url=private_engine.url, agent_health_probe_interval_sec=0.0),
        LocalCoordinator(),
        runtime_config=RuntimeConfig(network_mode="none"),
    )
    agent.start()
    try:
        status = agent.check_health()
        assert not status.healthy
        assert any("user namespaces" in r for r in status.reasons), status.reasons
        assert not agent.coord.agents()[0].healthy
        refused = task_spec("echo hi")
        report = run_task(agent, refused)
        assert report.reasonCode == Reason.TRANSIENT_SYSTEM_ERROR
        assert "user namespaces" in report.reasonMessage
        engine = docker.DockerClient(base_url=private_engine.url)
        try:
            assert task_containers(engine, refused.taskId) == []
        finally:
            engine.close()
    finally:
        agent.stop()


def test_agents_endpoint_shows_health_usage_lifecycle_and_tasks(
    agent_factory: AgentFactory, tmp_path: Path
) -> None:
    agent = agent_factory(
        agent_health_min_free_disk_mb=IMPOSSIBLE_DISK_MB,
        agent_health_interval_sec=3600.0,
        agent_cpu=4.0,
    )
    assert not agent.check_health().healthy
    store = SqliteJobStore(tmp_path / "api.db")
    app = create_app(Settings(data_dir=str(tmp_path), rate_limit_buckets=[]), store, agent.coord)
    with TestClient(app) as http:
        job = {
            "owner": {"teamEmail": "team@example.com"},
            "applicationName": "web",
            "container": {
                "image": {"name": "titus/busybox", "tag": "latest"},
                "resources": {"cpu": 1.5, "memoryMB": 512, "diskMB": 10000},
            },
            "batch": {"size": 1, "runtimeLimitSec": "600"},
        }
        resp = http.post("/api/v3/jobs", json=job)
        assert resp.status_code in (200, 201, 202), resp.text
        job_id = resp.json()["id"]
        store.create_task(
            StoredTask(
                id="task-on-host",
                jobId=job_id,
                originalId="task-on-host",
                status=TaskStatus(state=TaskState.STARTED),
                taskContext={"agent.id": agent.agent_id},
            )
        )

        resp = http.put("/api/v3/instanceGroups/default/lifecycle", json={"state": "phasedOut"})
        assert resp.status_code == 200, resp.text
        assert http.put(
            "/api/v3/instanceGroups/default/lifecycle", json={"state": "gone"}
        ).status_code in (400, 422)

        [item] = http.get("/api/v3/agents").json()["items"]
        assert item["id"] == agent.agent_id
        assert item["healthy"] is False
        assert any("disk nearly full" in r for r in item["healthReasons"])
        assert item["resources"]["cpu"] == 4.0
        assert item["usage"]["cpu"] == 1.5
        assert item["free"]["cpu"] == 2.5
        assert item["tasks"] == ["task-on-host"]
        assert (item["instanceGroup"], item["lifecycleState"]) == ("default", "phasedOut")
        groups = http.get("/api/v3/instanceGroups").json()["items"]
        assert {"id": "default", "lifecycleState": "phasedOut", "hosts": 1} in groups
    store.close()


def _asg_instances(count: int) -> list[str]:
    image = EXAMPLE_IMAGE
    asg = boto3.client("autoscaling", region_name=moto_support.REGION)
    asg.create_launch_configuration(
        LaunchConfigurationName="hosts", ImageId=image, InstanceType="m5.large"
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName="titus-hosts",
        LaunchConfigurationName="hosts",
        MinSize=count,
        MaxSize=count * 2,
        DesiredCapacity=count,
        AvailabilityZones=[f"{moto_support.REGION}a"],
    )
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["titus-hosts"])
    return [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]


def _terminated(instance_ids: list[str]) -> set[str]:
    ec2 = boto3.client("ec2", region_name=moto_support.REGION)
    resp = ec2.describe_instances(InstanceIds=instance_ids)
    return {
        i["InstanceId"]
        for r in resp["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] in ("shutting-down", "terminated")
    }


def _unhealthy_fleet(
    tmp_path: Path, client: docker.DockerClient, instance_ids: list[str], **values: Any
) -> dict[str, int]:
    """One agent per instance on a shared registry, each failing its disk check and past
    its termination delay; every host checks its health in several rounds, then all stop.
    Returns the termination requests each agent made."""
    coord = LocalCoordinator()
    agents: list[AgentDaemon] = []
    try:
        for instance_id in instance_ids:
            agent = AgentDaemon(
                settings(
                    tmp_path,
                    agent_id=instance_id,
                    agent_health_image="",
                    agent_health_min_free_disk_mb=IMPOSSIBLE_DISK_MB,
                    agent_unhealthy_terminate_after_sec=0.01,
                    agent_terminate_cooldown_sec=3600.0,
                    **values,
                ),
                coord,
                docker_client=client,
            )
            agents.append(agent)
            agent.start()
        for _ in range(5):
            for agent in agents:
                agent.check_health()
            time.sleep(0.02)
        # a real verdict, published: what the hosts decide on is an unhealthy fleet
        assert [a.healthy for a in coord.agents()] == [False] * len(instance_ids)
        return {agent.agent_id: agent.reporter.terminations for agent in agents}
    finally:
        for agent in agents:
            agent.stop()


def test_long_unhealthy_hosts_are_terminated_one_at_a_time(
    tmp_path: Path, aws_env: str, docker_engine: docker.DockerClient
) -> None:
    ids = _asg_instances(3)
    terminations = _unhealthy_fleet(
        tmp_path,
        docker_engine,
        ids,
        agent_terminate_max_concurrent=1,
        agent_terminate_max_unhealthy_fraction=1.0,
    )
    # every host is past its limit, yet only one may terminate at a time
    assert sum(terminations.values()) == 1
    assert len(_terminated(ids)) == 1
    [gone] = [agent_id for agent_id, count in terminations.items() if count]
    assert _terminated(ids) == {gone}


def test_a_systemic_fault_terminates_no_host(
    tmp_path: Path, aws_env: str, docker_engine: docker.DockerClient
) -> None:
    ids = _asg_instances(3)
    terminations = _unhealthy_fleet(
        tmp_path,
        docker_engine,
        ids,
        agent_terminate_max_concurrent=3,
        agent_terminate_max_unhealthy_fraction=0.5,
    )
    assert sum(terminations.values()) == 0
    assert _terminated(ids) == set()


def test_a_container_started_behind_the_agents_back_is_killed_after_grace(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory(agent_orphan_grace_sec=0.5)
    stray_task = f"task-stray-{uuid.uuid4().hex[:6]}"
    stray = docker_engine.containers.run(
        "titus/busybox",
        ["sleep", "300"],
        detach=True,
        labels={LABEL_TASK: stray_task, LABEL_AGENT: agent.agent_id},
    )
    report = wait_for_report(agent, stray_task, TaskState.FINISHED)
    assert report.reasonCode == Reason.KILLED
    assert "owned by no task" in report.reasonMessage
    with pytest.raises(docker.errors.NotFound):
        docker_engine.containers.get(stray.id)


def test_a_task_killed_while_the_agent_was_down_is_killed_once_the_master_says_so(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    first = agent_factory()
    kept, dropped = task_spec("sleep 300"), task_spec("sleep 300")
    first.launch(kept)
    first.launch(dropped)
    wait_for_report(first, kept.taskId, TaskState.STARTED)
    wait_for_report(first, dropped.taskId, TaskState.STARTED)
    first.stop()

    second = agent_factory(agent_orphan_grace_sec=0.5)
    wait_for_report(second, dropped.taskId, TaskState.STARTED)  # adopted, not killed yet
    # the master names what it believes runs here: the task killed meanwhile is not in it
    assert second.claim([kept.taskId]) == [dropped.taskId]
    report = wait_for_report(second, dropped.taskId, TaskState.FINISHED)
    assert report.reasonCode == Reason.KILLED
    assert "owned by no task" in report.reasonMessage
    assert second.is_running(kept.taskId)
    assert [c.status for c in task_containers(docker_engine, kept.taskId)] == ["running"]
