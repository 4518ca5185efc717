"""Each container's own AWS identity: its metadata service, inside its namespace.

Against a moto server (IAM, STS) and the Docker engine. Credentials are asked for the way a
user's code asks: botocore's own provider chain, with no configuration, run in the
container's network namespace; or busybox's wget inside the container itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest

from tests.support.aws_faults import AwsFaults
from tests.support.docker_engine import (
    AgentFactory,
    run_task,
    task_containers,
    task_spec,
    wait_for_report,
)
from titus.agent.daemon import AgentDaemon
from titus.agent.metadata.credentials import CredentialSource, RoleUnavailable, sts_client
from titus.agent.metadata.hook import IamRoleHook, MetadataHook
from titus.model.job import SecurityProfile
from titus.model.launch import TaskReport, TaskSpec
from titus.model.names import TaskContextKey
from titus.model.states import Reason, TaskState

pytestmark = pytest.mark.docker

ACCOUNT = "123456789012"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)
MD = "http://169.254.169.254/latest"
SDK = """
import json, botocore.session
creds = botocore.session.Session().get_credentials()
frozen = creds.get_frozen_credentials()
print(json.dumps({"method": creds.method, "key": frozen.access_key,
                  "secret": frozen.secret_key, "token": frozen.token}))
"""


def make_role(name: str) -> str:
    return str(
        boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)["Role"][
            "Arn"
        ]
    )


def with_role(spec: TaskSpec, role: str, attributes: dict[str, str] | None = None) -> TaskSpec:
    """`spec` with the job's role and container attributes."""
    update = {"securityProfile": SecurityProfile(iamRole=role), "attributes": attributes or {}}
    return spec.model_copy(update={"container": spec.container.model_copy(update=update)})


def pid_of(client: docker.DockerClient, report: TaskReport) -> int:
    return int(
        client.containers.get(report.context[TaskContextKey.CONTAINER_ID]).attrs["State"]["Pid"]
    )


def sdk_in_namespace_of(pid: int, tmp_path: Path, **env: str) -> dict[str, str]:
    """botocore's default provider chain, unconfigured, in the namespace of `pid`."""
    clean = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        **env,
    }
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", sys.executable, "-c", SDK],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


REQUEST = """
import http.client, json, sys
method, path, headers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
conn = http.client.HTTPConnection("169.254.169.254", 80, timeout=5)
try:
    conn.request(method, path, headers=headers)
except OSError as e:  # nothing listens: what a client sees, said as a status of 0
    print(json.dumps([0, type(e).__name__]))
    sys.exit(0)
answer = conn.getresponse()
print(json.dumps([answer.status, answer.read().decode()]))
"""


def request_in_namespace_of(
    pid: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """One HTTP request to the metadata address from the namespace of `pid`."""
    return request_in_namespace(["-t", str(pid), "-n"], method, path, headers)


def request_in_namespace(
    target: list[str], method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """One HTTP request to the metadata address from the network namespace nsenter's
    `target` arguments name; (0, the error) when nothing answers there."""
    done = subprocess.run(
        [
            "nsenter",
            *target,
            sys.executable,
            "-c",
            REQUEST,
            method,
            path,
            json.dumps(headers or {}),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    status, body = json.loads(done.stdout)
    return int(status), str(body)


def caller(creds: dict[str, str]) -> str:
    """Who AWS says these credentials are."""
    sts = boto3.client(
        "sts",
        aws_access_key_id=creds["key"],
        aws_secret_access_key=creds["secret"],
        aws_session_token=creds["token"],
    )
    return str(sts.get_caller_identity()["Arn"])


def wget(client: docker.DockerClient, report: TaskReport, path: str) -> str:
    """What busybox wget inside the task's container reads at the metadata address."""
    container = client.containers.get(report.context[TaskContextKey.CONTAINER_ID])
    code, out = container.exec_run(["busybox", "timeout", "5", "wget", "-q", "-O", "-", MD + path])
    return out.decode() if code == 0 else f"<wget {code}: {out.decode().strip()}>"


def role_agent(agent_factory: AgentFactory, **more: Any):
    return agent_factory(agent_iam_provider="sts", **more)


def test_the_sdk_in_each_container_gets_its_own_jobs_role_and_never_anothers(
    aws_env: str, agent_factory: AgentFactory, docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    agent = role_agent(agent_factory)
    one, two = make_role("app-one"), make_role("app-two")
    first = with_role(task_spec("sleep 60"), one)
    second = with_role(task_spec("sleep 60"), "app-two")  # a name: this account's role
    a = run_task(agent, first, TaskState.STARTED)
    b = run_task(agent, second, TaskState.STARTED)

    got_a = sdk_in_namespace_of(pid_of(docker_engine, a), tmp_path)
    got_b = sdk_in_namespace_of(pid_of(docker_engine, b), tmp_path)
    assert got_a["method"] == got_b["method"] == "iam-role"
    assert caller(got_a) == f"arn:aws:sts::{ACCOUNT}:assumed-role/app-one/titus-{first.taskId}"
    assert caller(got_b) == f"arn:aws:sts::{ACCOUNT}:assumed-role/app-two/titus-{second.taskId}"

    assert wget(docker_engine, a, "/meta-data/instance-id") == first.taskId
    assert wget(docker_engine, a, "/meta-data/iam/security-credentials/") == "app-one"
    other = wget(docker_engine, a, "/meta-data/iam/security-credentials/app-two")
    assert other.startswith("<wget") and got_b["key"] not in other
    doc = json.loads(wget(docker_engine, b, "/dynamic/instance-identity/document"))
    assert doc["instanceId"] == second.taskId and doc["accountId"] == ACCOUNT
    assert one.endswith("app-one") and two.endswith("app-two")


class _HostMetadata(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"HOST-SECRET"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def host_metadata() -> Iterator[None]:
    """The host's own metadata service, as on an EC2 host: 169.254.169.254 answered by the
    host (its root namespace), which containers on the engine's bridge can reach."""
    subprocess.run(["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"], check=True)
    server = ThreadingHTTPServer(("169.254.169.254", 80), _HostMetadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        subprocess.run(["ip", "addr", "del", "169.254.169.254/32", "dev", "lo"], check=False)


def test_a_container_never_reaches_the_hosts_own_metadata(
    aws_env: str,
    host_metadata: None,
    agent_factory: AgentFactory,
    docker_engine: docker.DockerClient,
    tmp_path: Path,
) -> None:
    make_role("app-one")
    unprotected = agent_factory(agent_metadata_enabled=False, data_dir=str(tmp_path / "u"))
    report = run_task(unprotected, task_spec("sleep 60"), TaskState.STARTED)
    # without the per-task service the host's answers are one request away
    assert wget(docker_engine, report, "/meta-data/iam/security-credentials/") == "HOST-SECRET"
    unprotected.stop()

    agent = role_agent(agent_factory, data_dir=str(tmp_path / "p"), agent_id="agent-protected")
    spec = with_role(task_spec("sleep 60"), "app-one")
    report = run_task(agent, spec, TaskState.STARTED)
    for path in ("/meta-data/iam/security-credentials/", "/meta-data/instance-id", "/user-data"):
        assert "HOST-SECRET" not in wget(docker_engine, report, path)
    assert wget(docker_engine, report, "/meta-data/iam/security-credentials/") == "app-one"
    assert "403" in wget(docker_engine, report, "/user-data")


def test_tokens_required_by_the_job_and_the_sdk_still_finds_its_role(
    aws_env: str, agent_factory: AgentFactory, docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    agent = role_agent(agent_factory)
    make_role("app-one")
    attributes = {"titusParameter.agent.imds.requireToken": "true"}
    spec = with_role(task_spec("sleep 60"), "app-one", attributes)
    report = run_task(agent, spec, TaskState.STARTED)
    assert "401" in wget(docker_engine, report, "/meta-data/instance-id")
    got = sdk_in_namespace_of(
        pid_of(docker_engine, report), tmp_path, AWS_EC2_METADATA_V1_DISABLED="true"
    )
    assert caller(got).endswith(f"/app-one/titus-{spec.taskId}")


def test_credentials_are_renewed_before_they_expire(
    aws_env: str, agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = role_agent(agent_factory, agent_iam_duration_sec=900, agent_iam_renew_before_sec=898)
    make_role("app-one")
    report = run_task(agent, with_role(task_spec("sleep 60"), "app-one"), TaskState.STARTED)
    path = "/meta-data/iam/security-credentials/app-one"
    first = json.loads(wget(docker_engine, report, path))
    assert first["Code"] == "Success" and first["Type"] == "AWS-HMAC"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        later = json.loads(wget(docker_engine, report, path))
        if later["AccessKeyId"] != first["AccessKeyId"]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("credentials were not renewed")
    assert later["Expiration"] >= first["Expiration"]


@pytest.fixture
def sts_faults(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsFaults]:
    faults = AwsFaults(aws_env).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", faults.url)
    yield faults
    faults.stop()


def test_a_role_sts_refuses_ends_the_launch_as_invalid_and_a_throttle_is_ridden_out(
    sts_faults: AwsFaults, agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    agent = role_agent(agent_factory)
    make_role("app-one")
    sts_faults.fail("AssumeRole", 403, "AccessDenied", "not authorized to assume", times=50)
    spec = with_role(task_spec("sleep 60"), "app-one")
    done = run_task(agent, spec)
    assert done.reasonCode == Reason.INVALID_REQUEST
    assert "AccessDenied" in done.reasonMessage and "app-one" in done.reasonMessage
    assert task_containers(docker_engine, spec.taskId) == []

    sts_faults.clear()
    sts_faults.fail("AssumeRole", 400, "Throttling", "Rate exceeded", times=2)
    ok = with_role(task_spec("sleep 60"), "app-one")
    assert run_task(agent, ok, TaskState.STARTED).state == TaskState.STARTED

    sts_faults.fail("AssumeRole", 503, "ServiceUnavailable", "try later", times=50)
    outage = with_role(task_spec("sleep 60"), "app-one")
    done = run_task(agent, outage)
    assert done.reasonCode == Reason.TRANSIENT_SYSTEM_ERROR, done


def test_cached_credentials_answer_403_for_access_errors_and_503_for_outages(
    sts_faults: AwsFaults,
) -> None:
    now = [time.time()]
    source = CredentialSource(sts_client(""), duration_sec=900, retry_sec=0, clock=lambda: now[0])
    arn = make_role("app-one")
    source.prepare("task-1", arn)
    assert source.current("task-1").access_key_id
    now[0] += 1000  # past the expiry; the renewals fail
    sts_faults.fail("AssumeRole", 403, "AccessDenied", "trust removed", times=10)
    source._refresh(source._roles["task-1"])
    with pytest.raises(RoleUnavailable) as refused:
        source.current("task-1")
    assert refused.value.status == 403
    sts_faults.clear()
    sts_faults.fail("AssumeRole", 500, "InternalFailure", "oops", times=10)
    source._refresh(source._roles["task-1"])
    with pytest.raises(RoleUnavailable) as outage:
        source.current("task-1")
    assert outage.value.status == 503
    source.forget("task-1")


def test_a_restarted_agent_adopts_the_metadata_service_and_its_tokens(
    aws_env: str, agent_factory: AgentFactory, docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    first = role_agent(agent_factory)
    make_role("app-one")
    spec = with_role(task_spec("sleep 120"), "app-one")
    report = run_task(first, spec, TaskState.STARTED)
    pid = pid_of(docker_engine, report)
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "600"}
    status, token = request_in_namespace_of(pid, "PUT", "/latest/api/token", ttl)
    assert status == 200
    first.stop()
    assert wget(docker_engine, report, "/meta-data/instance-id").startswith("<wget")

    second = role_agent(agent_factory, agent_id=first.agent_id)
    deadline = time.monotonic() + 30
    while wget(docker_engine, report, "/meta-data/instance-id") != spec.taskId:
        assert time.monotonic() < deadline, "the restarted agent did not serve the task"
        time.sleep(0.3)
    tokened = {"X-aws-ec2-metadata-token": token}
    assert request_in_namespace_of(pid, "GET", "/latest/meta-data/instance-id", tokened) == (
        200,
        spec.taskId,
    )
    got = sdk_in_namespace_of(pid, tmp_path)
    assert caller(got).endswith(f"/app-one/titus-{spec.taskId}")
    second.kill(spec.taskId)


def _hook(agent: AgentDaemon, kind: type[Any]) -> Any:
    return next(h for h in agent.hooks.hooks if isinstance(h, kind))


def test_a_tasks_metadata_service_stops_answering_once_it_ends_and_forgets_the_task(
    aws_env: str, agent_factory: AgentFactory, docker_engine: docker.DockerClient
) -> None:
    """Teardown: after the task ends, nothing answers at its metadata address (asked from
    its namespace, kept alive past the container for the purpose) and the agent holds
    neither its socket nor its credentials."""
    agent = role_agent(agent_factory)
    make_role("app-one")
    spec = with_role(task_spec("sleep 120"), "app-one")
    report = run_task(agent, spec, TaskState.STARTED)
    metadata, iam = _hook(agent, MetadataHook), _hook(agent, IamRoleHook)
    # the namespace outlives the container while it is attached to a name
    name = f"md-{spec.taskId[-12:]}"
    subprocess.run(["ip", "netns", "attach", name, str(pid_of(docker_engine, report))], check=True)
    netns = [f"--net=/run/netns/{name}"]
    path = "/latest/meta-data/iam/security-credentials/app-one"
    try:
        status, body = request_in_namespace(netns, "GET", path)
        assert status == 200 and json.loads(body)["Code"] == "Success", body
        assert spec.taskId in metadata.server.serving()
        assert iam.credentials.role_of(spec.taskId) is not None

        agent.kill(spec.taskId)
        done = wait_for_report(agent, spec.taskId, TaskState.FINISHED)
        assert done.reasonCode == Reason.KILLED, done

        assert request_in_namespace(netns, "GET", path) == (0, "ConnectionRefusedError")
        assert request_in_namespace(netns, "GET", "/latest/meta-data/instance-id")[0] == 0
        assert spec.taskId not in metadata.server.serving()
        assert iam.credentials.role_of(spec.taskId) is None
        with pytest.raises(RoleUnavailable):
            iam.credentials.current(spec.taskId)
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
