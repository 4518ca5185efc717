"""Isolation on the real engine: each test makes a container break one limit and checks
what happens to it and to a well-behaved neighbour on the same host; then the escape
checks (no privileges, root is not root on the host, refused requests)."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.support.docker_engine import (
    AgentFactory,
    run_task,
    task_containers,
    task_spec,
    wait_for_report,
)
from tests.support.poll import wait_until
from titus.agent.cgroups import Cgroup, host_cgroup, shares_to_weight
from titus.agent.daemon import AgentDaemon
from titus.agent.runtime import RuntimeConfig
from titus.model.launch import TaskSpec
from titus.model.states import Reason, TaskState

pytestmark = pytest.mark.docker


def exec_out(client: docker.DockerClient, container_id: str, command: str) -> str:
    result = client.containers.get(container_id).exec_run(["sh", "-c", command])
    return result.output.decode()


def start(agent: AgentDaemon, spec: TaskSpec) -> str:
    report = run_task(agent, spec, TaskState.STARTED)
    assert report.state == TaskState.STARTED, report
    assert report.containerId
    return report.containerId


def container_cgroup(client: docker.DockerClient, container_id: str) -> Cgroup:
    """The container's own cgroup as it sees it (cgroup v1 or v2, whichever is mounted)."""
    container = client.containers.get(container_id)

    def read(name: str) -> str | None:
        result = container.exec_run(["cat", f"/sys/fs/cgroup/{name}"])
        return result.output.decode() if result.exit_code == 0 else None

    return Cgroup.detect(read)


def test_cpu_burner_is_held_to_its_quota_and_a_bursting_job_is_not(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory()
    burner = task_spec("while :; do :; done")  # cpu 0.5
    bursting = task_spec("while :; do :; done")
    bursting.jobAttributes["titusParameter.agent.allowCpuBursting"] = "true"
    burner_id, bursting_id = start(agent, burner), start(agent, bursting)
    burner_cg = container_cgroup(docker_engine, burner_id)
    bursting_cg = container_cgroup(docker_engine, bursting_id)

    assert burner_cg.cpu_quota() == (50_000, 100_000)
    assert burner_cg.cpu_weight() == shares_to_weight(512)
    # the burner hits its quota: the kernel throttles it
    wait_until("burner throttled", lambda: burner_cg.cpu_stat().throttled > 0)

    # the bursting job has shares (its fair part under contention) but no ceiling
    assert bursting_cg.cpu_quota()[0] is None
    assert bursting_cg.cpu_weight() == shares_to_weight(512)
    assert bursting_cg.cpu_stat().throttled == 0

    # over a stretch of CFS periods the burner got about its half core per period
    # (kernel accounting, not our clock); the bursting job ran, never throttled
    before, b0 = burner_cg.cpu_stat(), bursting_cg.cpu_stat().usage_ns
    wait_until("twenty CFS periods", lambda: burner_cg.cpu_stat().periods - before.periods >= 20)
    after = burner_cg.cpu_stat()
    used, elapsed_periods = after.usage_ns - before.usage_ns, after.periods - before.periods
    # each period grants 50 ms. The kernel hands runtime to a cpu in slices and checks it
    # at its tick, so a period can overrun by a millisecond or two (21 ms over 13 periods
    # was seen on a loaded host): a tenth of slack per period plus one period for the
    # window's edges. A loop left unthrottled takes up to 100 ms a period, far above this.
    assert used <= elapsed_periods * 55_000_000 + 50_000_000
    assert bursting_cg.cpu_stat().usage_ns > b0
    assert bursting_cg.cpu_stat().throttled == 0


def test_memory_hog_is_killed_and_its_neighbour_keeps_running(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory()
    neighbour = task_spec("sleep 300", memory_mb=32)
    neighbour_id = start(agent, neighbour)
    hog = task_spec("dd if=/dev/zero of=/dev/null bs=96M count=1", memory_mb=32)
    report = run_task(agent, hog)
    assert report.reasonCode == Reason.FAILED
    assert "memory limit of 32 MB" in report.reasonMessage
    container = docker_engine.containers.get(neighbour_id)
    assert container.status == "running"
    assert container.attrs["State"]["OOMKilled"] is False
    assert container_cgroup(docker_engine, neighbour_id).memory_limit() == 32 * 1024 * 1024


def test_fork_bomb_is_contained_by_the_pids_limit(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory(runtime_config=RuntimeConfig(pids_limit=40))
    bomb = task_spec(
        # the shell that cannot fork any more gives up; the outer one stays without forking
        "(i=0; while [ $i -lt 200 ]; do sleep 300 & i=$((i+1)); done) 2>/dev/null; exec sleep 300"
    )
    bomb_id = start(agent, bomb)
    # read from the host: an exec into a container at its pids limit cannot fork either
    try:
        cgroup = host_cgroup(bomb_id)
    except LookupError as e:
        pytest.fail(f"this check reads the container's cgroup from the host: {e}")
    # the count reaching the limit and the refused fork that follows are two moments
    wait_until("a fork refused at the limit", lambda: cgroup.pids_refused() > 0)
    assert cgroup.pids_limit() == 40
    assert 38 <= cgroup.pids_current() <= 40
    assert docker_engine.containers.get(bomb_id).status == "running"

    # the host still starts and runs other tasks normally
    neighbour = task_spec("echo alive")
    report = run_task(agent, neighbour)
    assert report.reasonCode == Reason.NORMAL
    assert agent.log_files.read(neighbour.taskId, "stdout") == b"alive\n"


def test_open_files_limit_cannot_be_raised(agent_factory: AgentFactory) -> None:
    agent = agent_factory(runtime_config=RuntimeConfig(nofile_soft=256, nofile_hard=512))
    spec = task_spec("ulimit -Sn; ulimit -Hn; ulimit -n 4096 && echo raised || echo refused")
    run_task(agent, spec)

    assert agent.log_files.read(spec.taskId, "stdout") == b"256\n512\nrefused\n"


def test_shm_is_as_large_as_asked_and_no_larger(agent_factory: AgentFactory) -> None:
    agent = agent_factory()
    spec = task_spec("dd if=/dev/zero of=/dev/shm/fill bs=1M count=32; df -k /dev/shm")
    spec.container.resources.shmSizeMB = 8
    neighbour = task_spec("dd if=/dev/zero of=/dev/shm/fill bs=1M count=4 && echo ok")
    neighbour.container.resources.shmSizeMB = 8
    agent.launch(spec)
    agent.launch(neighbour)

    wait_for_report(agent, spec.taskId, TaskState.FINISHED)
    assert "No space left" in agent.log_files.read(spec.taskId, "stderr").decode()
    assert " 8192 " in agent.log_files.read(spec.taskId, "stdout").decode()
    done = wait_for_report(agent, neighbour.taskId, TaskState.FINISHED)
    assert done.reasonCode == Reason.NORMAL
    assert agent.log_files.read(neighbour.taskId, "stdout") == b"ok\n"


def test_disk_quota_holds_on_btrfs_and_the_neighbour_still_writes(
    agent_factory: AgentFactory,
) -> None:
    agent = agent_factory()
    if not agent.runtime.disk_enforced:
        pytest.fail(
            f"this check needs a storage driver that enforces quotas (btrfs, zfs); this "
            f"host's is {agent.runtime.storage_driver}, which can only measure disk use "
            "(that is checked by the next test)"
        )
    filler = task_spec("dd if=/dev/zero of=/tmp/fill bs=1M count=60", disk_mb=20)
    neighbour = task_spec("dd if=/dev/zero of=/tmp/data bs=1M count=10 && echo ok", disk_mb=20)
    agent.launch(filler)
    agent.launch(neighbour)

    report = wait_for_report(agent, filler.taskId, TaskState.FINISHED)
    assert report.reasonCode == Reason.FAILED
    stderr = agent.log_files.read(filler.taskId, "stderr").decode()
    assert "Disk quota exceeded" in stderr or "No space left" in stderr
    done = wait_for_report(agent, neighbour.taskId, TaskState.FINISHED)
    assert done.reasonCode == Reason.NORMAL


def test_without_quota_support_disk_is_measured_and_the_hog_killed(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory(
        runtime_config=RuntimeConfig(disk_enforcement="measure"),
        agent_disk_check_interval_sec=0.5,
    )
    assert not agent.runtime.disk_enforced
    hog = task_spec("dd if=/dev/zero of=/tmp/fill bs=1M count=30; sleep 300", disk_mb=10)
    neighbour = task_spec("dd if=/dev/zero of=/tmp/data bs=1M count=2; sleep 300", disk_mb=10)
    neighbour_id = start(agent, neighbour)
    report = run_task(agent, hog)
    assert report.reasonCode == Reason.FAILED
    assert "disk quota of 10 MB" in report.reasonMessage
    assert "cannot enforce quotas" in report.reasonMessage
    assert docker_engine.containers.get(neighbour_id).status == "running"


def test_containers_run_unprivileged_with_seccomp_and_few_capabilities(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory()
    cid = start(agent, task_spec("sleep 300"))
    status = exec_out(docker_engine, cid, "cat /proc/self/status")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"  # filter mode: the engine's default profile
    cap_eff = int(fields["CapEff"].strip(), 16)
    cap_sys_admin, cap_net_admin, cap_net_raw, cap_chown = 21, 12, 13, 0
    assert not cap_eff & (1 << cap_sys_admin)
    assert not cap_eff & (1 << cap_net_admin)
    assert not cap_eff & (1 << cap_net_raw)
    assert cap_eff & (1 << cap_chown)
    attrs = docker_engine.containers.get(cid).attrs["HostConfig"]
    assert attrs["Privileged"] is False
    assert attrs["CapDrop"] == ["ALL"]
    # mount needs CAP_SYS_ADMIN: refused
    assert "denied" in exec_out(docker_engine, cid, "mount -t tmpfs none /mnt 2>&1")


def test_root_in_a_container_is_not_root_on_the_host(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory()
    cid = start(agent, task_spec("sleep 300"))
    assert exec_out(docker_engine, cid, "id -u") == "0\n"
    uid_map = exec_out(docker_engine, cid, "cat /proc/self/uid_map").split()
    assert uid_map[0] == "0" and uid_map[1] != "0"  # container root maps to another uid
    # seen from the host, the container's process runs as that unprivileged uid
    pid = docker_engine.containers.get(cid).attrs["State"]["Pid"]
    uids = next(
        line.split()[1:]
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Uid:")
    )
    assert set(uids) == {uid_map[1]}
    assert int(uid_map[1]) >= 65536


def test_an_allow_listed_capability_is_granted_on_request(
    agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = agent_factory()
    spec = task_spec("sleep 300")
    spec.container.attributes["titusParameter.agent.capabilities.add"] = "SYS_PTRACE"
    cid = start(agent, spec)
    status = exec_out(docker_engine, cid, "grep CapEff /proc/self/status")
    assert int(status.split()[1], 16) & (1 << 19)  # CAP_SYS_PTRACE


def test_read_only_root_filesystem_on_request(agent_factory: AgentFactory) -> None:
    agent = agent_factory()
    spec = task_spec("touch /etc/x 2>&1; touch /tmp/x && echo tmp-ok")
    spec.container.attributes["titusParameter.agent.readOnlyRootFs"] = "true"
    run_task(agent, spec)

    out = agent.log_files.read(spec.taskId, "stdout").decode()
    assert "Read-only file system" in out
    assert "tmp-ok" in out


@pytest.mark.parametrize(
    ("where", "key", "value", "words"),
    [
        ("container", "titusParameter.agent.privileged", "true", "privileged"),
        ("security", "privileged", "yes", "privileged"),
        ("container", "titusParameter.agent.networkMode", "host", "networkMode=host"),
        ("job", "titusParameter.agent.pidMode", "host", "pidMode=host"),
        ("container", "titusParameter.agent.hostPaths", "/etc:/host-etc", "host paths"),
        ("container", "titusParameter.agent.capabilities.add", "SYS_ADMIN", "SYS_ADMIN"),
        # neighbours on the shared bridge could be spoofed with raw sockets
        ("container", "titusParameter.agent.capabilities.add", "NET_RAW", "NET_RAW"),
    ],
)
def test_escape_requests_are_refused_as_invalid(
    agent_factory: AgentFactory,
    docker_engine: docker.DockerClient,
    where: str,
    key: str,
    value: str,
    words: str,
) -> None:
    agent = agent_factory()
    spec = task_spec("sleep 300")
    target = {
        "container": spec.container.attributes,
        "security": spec.container.securityProfile.attributes,
        "job": spec.jobAttributes,
    }[where]
    target[key] = value
    report = run_task(agent, spec)
    assert report.reasonCode == Reason.INVALID_REQUEST
    assert words in report.reasonMessage
    assert not report.containerId
    assert task_containers(docker_engine, spec.taskId) == []
