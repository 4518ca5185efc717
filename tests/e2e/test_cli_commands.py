"""Every endpoint a user or an operator needs, from the `titus` command: against `titus local`
as a process, each command's effect checked through the API (or its table read as a person
would)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_moves import service
from tests.support.platform import TITUS, Platform

pytestmark = pytest.mark.docker


@pytest.fixture
def platform(module_platform: Platform) -> Platform:
    """One `titus local` for the module, emptied after each test."""
    return module_platform


def titus(platform: Platform, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [TITUS, *args, "--url", platform.url],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )
    assert proc.returncode == 0, f"titus {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def titus_json(platform: Platform, *args: str) -> Any:
    return json.loads(titus(platform, *args, "--json"))


def refused(platform: Platform, *args: str) -> str:
    proc = subprocess.run(
        [TITUS, *args, "--url", platform.url], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0, f"titus {' '.join(args)} was expected to fail"
    return proc.stderr


def test_job_and_task_commands_change_what_the_api_shows(
    platform: Platform, tmp_path: Path
) -> None:
    descriptor = tmp_path / "web.json"
    descriptor.write_text(json.dumps(service("cliweb", 1)))
    job_id = titus(platform, "job", "submit", str(descriptor)).strip()
    platform.wait_for("a running task", lambda: len(platform.running(job_id)) == 1)

    titus(platform, "job", "set-attributes", job_id, "team=search", "tier=gold")
    assert platform.job(job_id)["jobDescriptor"]["attributes"]["team"] == "search"
    listed = titus_json(platform, "job", "list", "--attribute", "team=search")
    assert [j["id"] for j in listed] == [job_id]
    assert titus_json(platform, "job", "list", "--attribute", "team=ads") == []
    titus(platform, "job", "unset-attributes", job_id, "tier")
    assert "tier" not in platform.job(job_id)["jobDescriptor"]["attributes"]
    # `job attributes`: shown as a table, changed first with --set/--unset
    assert re.search(r"^team\s+search$", titus(platform, "job", "attributes", job_id), re.M)
    shown = titus(
        platform,
        "job",
        "attributes",
        job_id,
        "--set",
        "owner=ops",
        "--set",
        "x=1",
        "--unset",
        "team",
    )
    assert re.search(r"^owner\s+ops$", shown, re.M) and re.search(r"^x\s+1$", shown, re.M)
    assert not re.search(r"^team\s", shown, re.M)
    attributes = platform.job(job_id)["jobDescriptor"]["attributes"]
    assert attributes["owner"] == "ops" and "team" not in attributes
    assert titus_json(platform, "job", "attributes", job_id) == attributes

    titus(platform, "job", "processes", job_id, "--increase", "disabled")
    processes = platform.job(job_id)["jobDescriptor"]["service"]["serviceJobProcesses"]
    assert processes["disableIncreaseDesired"] is True
    assert "400" in refused(platform, "job", "resize", job_id, "--desired", "2")
    titus(platform, "job", "processes", job_id, "--increase", "allowed")
    titus(platform, "job", "resize", job_id, "--desired", "2")
    platform.wait_for("two running tasks", lambda: len(platform.running(job_id)) == 2)

    titus(platform, "job", "disable", job_id, "--caller", "ops-alice")
    assert platform.job(job_id)["jobDescriptor"]["service"]["enabled"] is False
    assert "(disabled)" in titus(platform, "job", "list")
    titus(platform, "job", "enable", job_id, "--caller", "ops-bob")
    job = platform.job(job_id)
    assert job["jobDescriptor"]["service"]["enabled"] is True
    # the status history says when and by whom the job was disabled and enabled again
    disabled, enabled = [*job["statusHistory"], job["status"]][-2:]
    assert disabled["reasonMessage"] == "job disabled by ops-alice"
    assert enabled["reasonMessage"] == "job enabled by ops-bob"
    assert disabled["timestamp"] <= enabled["timestamp"]
    assert disabled["state"] == enabled["state"] == "Accepted"

    budget = {"relocationLimit": {"limit": 3}, "rateUnlimited": {}}
    titus(platform, "job", "budget", job_id, "-", stdin=json.dumps(budget))
    assert platform.job(job_id)["jobDescriptor"]["disruptionBudget"]["relocationLimit"] == {
        "limit": 3
    }

    events = [
        json.loads(line)
        for line in titus(
            platform, "job", "observe", "--job", job_id, "--snapshot-only", "--json"
        ).splitlines()
    ]
    assert events[-1]["event"] == "SnapshotEnd"
    assert {e["data"]["job"]["id"] for e in events if e["event"] == "job"} == {job_id}
    assert len([e for e in events if e["event"] == "task"]) == 2

    task = titus_json(platform, "task", "list", "--job", job_id, "--state", "Started")[0]
    titus(platform, "task", "set-attributes", task["id"], "canary=yes")
    assert platform.http.get(f"/api/v3/tasks/{task['id']}").json()["attributes"]["canary"] == "yes"
    assert re.search(r"^canary\s+yes$", titus(platform, "task", "attributes", task["id"]), re.M)
    titus(platform, "task", "unset-attributes", task["id"], "canary")
    assert "canary" not in platform.http.get(f"/api/v3/tasks/{task['id']}").json().get(
        "attributes", {}
    )
    why = titus(platform, "task", "why", task["id"])
    assert f"placed on {task['taskContext']['agent.id']}" in why

    target = platform.submit(service("clitarget", 1))
    platform.wait_for("the target running", lambda: len(platform.running(target)) == 1)
    titus(platform, "task", "move", task["id"], "--to", target)
    platform.wait_for(
        "the task in the target job",
        lambda: platform.http.get(f"/api/v3/tasks/{task['id']}").json()["jobId"] == target,
    )
    bad = refused(platform, "job", "set-attributes", job_id, "no-equals-sign")
    assert "attributes must be key=value, got 'no-equals-sign'" in bad
    bad = refused(platform, "job", "attributes", job_id, "--set", "no-equals-sign")
    assert "attributes must be key=value, got 'no-equals-sign'" in bad


def test_operator_commands_for_capacity_groups_hosts_and_instance_groups(
    platform: Platform, tmp_path: Path
) -> None:
    group = {"appName": "cligroup", "tier": "Critical", "instanceCount": 4, "instanceCPU": 0.5}
    titus(platform, "capacity-group", "create", "-", stdin=json.dumps(group))
    assert titus_json(platform, "capacity-group", "get", "cligroup")["instanceCount"] == 4
    group["instanceCount"] = 6
    path = tmp_path / "group.json"
    path.write_text(json.dumps(group))
    titus(platform, "capacity-group", "update", "cligroup", str(path))
    table = titus(platform, "capacity-group", "list")
    assert any(line.split()[:3] == ["cligroup", "Critical", "6"] for line in table.splitlines())
    assert "names group 'cligroup'" in refused(
        platform, "capacity-group", "update", "other", str(path)
    )
    titus(platform, "capacity-group", "delete", "cligroup")
    assert "404" in refused(platform, "capacity-group", "get", "cligroup")

    hosts = titus_json(platform, "host", "list")
    assert [h["id"] for h in hosts] == [platform.agent_id]
    assert platform.agent_id in titus(platform, "host", "list")
    assert titus_json(platform, "host", "list", "--unhealthy") == []

    titus(platform, "instance-group", "lifecycle", "default", "phasedOut")
    groups = {g["id"]: g for g in titus_json(platform, "instance-group", "list")}
    assert groups["default"]["lifecycleState"] == "phasedOut" and groups["default"]["hosts"] == 1
    titus(platform, "instance-group", "lifecycle", "default", "active")
    assert titus_json(platform, "host", "list")[0]["lifecycleState"] == "active"


def test_submit_wait_shows_progress_until_the_work_is_there(
    platform: Platform, tmp_path: Path
) -> None:
    web = tmp_path / "web.json"
    web.write_text(json.dumps(service("waitweb", 2)))
    proc = subprocess.run(
        [TITUS, "job", "submit", str(web), "--wait", "--url", platform.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.split()[0]
    assert len(platform.running(job_id)) == 2  # it returned once both tasks ran
    progress = proc.stderr.splitlines()
    assert progress[-1].startswith(f"job {job_id}: ") and "2 Started" in progress[-1]
    assert len(progress) >= 2  # a line per change, not one per poll

    batch = tmp_path / "batch.json"
    body = json.loads(
        (Path(__file__).resolve().parents[2] / "examples/batch-hello.json").read_text()
    )
    batch.write_text(json.dumps(body))
    done = titus_json(platform, "job", "submit", str(batch), "--wait")
    assert done["status"]["state"] == "Finished"


def test_top_agents_and_why_short_forms(platform: Platform, tmp_path: Path) -> None:
    web = tmp_path / "web.json"
    web.write_text(json.dumps(service("topweb", 1)))
    job_id = titus(platform, "job", "submit", str(web), "--wait").split()[0]
    big = json.loads(
        (Path(__file__).resolve().parents[2] / "examples/batch-hello.json").read_text()
    )
    big["container"]["resources"]["cpu"] = 2.0  # all of the one host's CPU, part of it in use
    big_id = platform.submit(big)
    [waiting] = platform.wait_for("the big task", lambda: platform.tasks(big_id))
    platform.wait_for(
        "the big task to be found unplaceable",
        lambda: (
            platform.http.get(f"/api/v3/scheduler/results/{waiting['id']}").json()[
                "hostsConsidered"
            ]
            > 0
        ),
    )
    screen = titus(platform, "top", "--once")
    assert "hosts: 1/1 healthy" in screen
    assert "waiting for placement: 1" in screen
    assert re.search(r"^1\s+no host fits", screen, re.M)  # the reason, with its task count
    s = titus_json(platform, "top")
    assert s["tasks"]["Started"] >= 1 and s["waiting"] == 1
    assert [a["id"] for a in titus_json(platform, "agents")] == [platform.agent_id]
    assert "no host fits" in titus(platform, "why", waiting["id"])
    assert platform.running(job_id)
