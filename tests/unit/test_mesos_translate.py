"""How the Mesos driver reads Mesos and writes to it: offers become hosts, placements become
TaskInfos, status updates become the reports users see (state, reason, exit code). Pure
functions, no connection."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from titus.master.mesos import MesosConfig, master_uri, status_to_report
from titus.master.mesos.translate import (
    Executor,
    HostDefaults,
    SpecData,
    Usage,
    ack_body,
    fit,
    framework_info,
    host_view,
    parse_offer,
    reconcile_body,
    refused_report,
    task_info,
)
from titus.master.scheduler import HostEnis
from titus.model.job import Container, Image, Resources
from titus.model.launch import TaskSpec
from titus.model.states import Reason, TaskState
from titus.settings import Settings

DEFAULTS = HostDefaults(network_mbps=10_000.0, ip_slots=32.0)


def scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def raw_offer(
    offer_id: str = "o1",
    agent: str = "a1",
    cpus: float = 4,
    mem: float = 8192,
    disk: float = 50_000,
    **attributes: str | float,
) -> dict[str, Any]:
    attrs = [
        {"name": k, "type": "SCALAR", "scalar": {"value": v}}
        if isinstance(v, float)
        else {"name": k, "type": "TEXT", "text": {"value": v}}
        for k, v in attributes.items()
    ]
    return {
        "id": {"value": offer_id},
        "agent_id": {"value": agent},
        "hostname": f"{agent}.example",
        "resources": [scalar("cpus", cpus), scalar("mem", mem), scalar("disk", disk)],
        "attributes": attrs,
    }


def spec(task_id: str = "t1", cpu: float = 1.0, mem: int = 1024, disk: int = 1000) -> TaskSpec:
    return TaskSpec(
        taskId=task_id,
        jobId="j1",
        jobType="batch",
        applicationName="app",
        container=Container(
            image=Image(name="busybox"),
            resources=Resources(cpu=cpu, memoryMB=mem, diskMB=disk),
        ),
        taskIndex=3,
    )


def status(state: str, reason: str = "", data: dict[str, Any] | None = None, **kw: Any) -> Any:
    out: dict[str, Any] = {"task_id": {"value": "t1"}, "state": state, **kw}
    if reason:
        out["reason"] = reason
    if data is not None:
        out["data"] = base64.b64encode(json.dumps(data).encode()).decode()
    return out


# ---- configuration ------------------------------------------------------------------------
def test_cluster_urls_become_pymesos_master_addresses() -> None:
    assert master_uri("mesos://m1") == "m1:5050"
    assert master_uri("mesos://m1:5051") == "m1:5051"
    assert master_uri("mesos+zk://z1:2181,z2:2181/mesos") == "zk://z1:2181,z2:2181/mesos"
    for bad in ("mesos+zk://z1:2181", "mesos://", "http://m1:5050"):
        with pytest.raises(ValueError):
            master_uri(bad)


def test_config_defaults_are_the_settings_defaults() -> None:
    # defaults only (no environment read): a config built by hand is the one from Settings
    assert MesosConfig.from_settings(Settings.model_construct()) == MesosConfig(url="")
    settings = Settings(cluster="mesos://m1", mesos_role="batch", mesos_refuse_sec=9.0)
    config = MesosConfig.from_settings(settings)
    assert (config.url, config.role, config.refuse_seconds) == ("mesos://m1", "batch", 9.0)
    assert "titus.agent.mesos_executor" in config.command
    assert MesosConfig(url="", executor_command="run-it").command == "run-it"


def test_framework_info_names_the_stored_id_and_a_role_other_than_the_default() -> None:
    plain = framework_info(MesosConfig(url=""), None, "h")
    assert "id" not in plain and "roles" not in plain and plain["checkpoint"] is True
    info = framework_info(MesosConfig(url="", role="batch"), "fw-1", "h")
    assert info["id"] == {"value": "fw-1"} and info["roles"] == ["batch"]
    assert info["capabilities"] == [{"type": "MULTI_ROLE"}]


# ---- offers -> hosts ----------------------------------------------------------------------
def test_an_offer_is_read_as_scalars_and_text_attributes() -> None:
    raw = raw_offer(zone="zone-a", networkMbps=2000.0)
    raw["resources"].append(scalar("cpus", 2))  # a second scalar of the same name adds up
    raw["resources"].append({"name": "ports", "type": "RANGES", "ranges": {}})
    offer = parse_offer(raw, received=12.0)
    assert (offer.id, offer.agent_id, offer.hostname) == ("o1", "a1", "a1.example")
    assert offer.resources == {"cpus": 6.0, "mem": 8192.0, "disk": 50_000.0}
    assert offer.attributes == {"zone": "zone-a", "networkMbps": "2000"}
    assert offer.received == 12.0


def test_a_host_totals_its_offers_and_what_the_driver_runs_there() -> None:
    offers = [
        parse_offer(raw_offer("o2", cpus=2, mem=1000, zone="zone-b", instanceType="m5"), 0),
        parse_offer(raw_offer("o1", cpus=1, mem=500, zone="zone-b", instanceType="m5"), 0),
    ]
    view = host_view("a1", offers, Usage(cpus=1.5, mem=512), DEFAULTS)
    assert view.total == {
        "cpu": 4.5,
        "memoryMB": 2012.0,
        "diskMB": 100_000.0,
        "gpu": 0.0,
        "networkMbps": 10_000.0,
        "ipSlots": 32.0,
    }
    assert view.offer_ids == ["o1", "o2"]
    assert view.address == "a1.example"
    assert view.attributes["host"] == "a1.example" and view.attributes["instanceId"] == "a1"
    assert view.attributes["zone"] == "zone-b" and view.attributes["itype"] == "m5"


def test_agent_attributes_name_capacities_mesos_does_not_offer() -> None:
    offer = parse_offer(raw_offer(networkMbps=2500.0, ipSlots="7", itype="c5"), 0)
    view = host_view("a1", [offer], Usage(), DEFAULTS)
    assert view.total["networkMbps"] == 2500.0 and view.total["ipSlots"] == 7.0
    assert view.attributes["itype"] == "c5"
    broken = parse_offer(raw_offer(ipSlots="many"), 0)
    assert host_view("a1", [broken], Usage(), DEFAULTS).total["ipSlots"] == 32.0


def test_agent_attributes_name_a_hosts_eni_limits_within_bounds() -> None:
    offer = parse_offer(raw_offer(maxEnis=3.0, ipsPerEni="5"), 0)
    assert host_view("a1", [offer], Usage(), DEFAULTS).enis == HostEnis(3, 5, {})
    for attrs in ({"maxEnis": "3"}, {"maxEnis": "3", "ipsPerEni": "five"}, {"ipsPerEni": "5"}):
        # not both, or not whole numbers: no ENI limits (ipSlots alone count addresses)
        assert host_view("a1", [parse_offer(raw_offer(**attrs), 0)], Usage(), DEFAULTS).enis is None
    too_many = parse_offer(raw_offer(maxEnis="100000", ipsPerEni="5"), 0)
    assert host_view("a1", [too_many], Usage(), DEFAULTS).enis is None


# ---- placements -> ACCEPT -----------------------------------------------------------------
def test_placements_fit_in_order_into_what_the_offers_free() -> None:
    offers = [parse_offer(raw_offer(cpus=2, mem=4096), 0)]
    placed = fit("a1", offers, [spec("t1"), spec("t2"), spec("t3")])
    assert [(s.taskId, u) for s, u in placed.accepted] == [
        ("t1", Usage(1.0, 1024.0, 1000.0, 0.0)),
        ("t2", Usage(1.0, 1024.0, 1000.0, 0.0)),
    ]
    assert [(s.taskId, why) for s, why in placed.refused] == [
        ("t3", "no longer fits the offers of agent a1")
    ]


def test_placements_on_an_agent_whose_offers_went_away_are_refused_as_lost() -> None:
    placed = fit("a1", [], [spec("t1")])
    assert not placed.accepted
    [(refused, why)] = placed.refused
    assert why == "the offers of agent a1 went away"
    report = refused_report(refused, why)
    assert report.state == TaskState.FINISHED and report.reasonCode == Reason.LOST
    assert report.reasonMessage == "not launched: the offers of agent a1 went away"


def test_a_task_info_runs_the_spec_on_its_own_executor() -> None:
    executor = Executor("python -m x", {"B": "2", "A": "1"}, role="batch")
    info = task_info(spec(), "a1", Usage(cpus=1.0, mem=1024.0), executor)
    assert info["name"] == "app-3"
    assert info["task_id"] == {"value": "t1"} and info["agent_id"] == {"value": "a1"}
    assert info["executor"]["executor_id"] == {"value": "t1"}
    assert info["executor"]["command"] == {
        "value": "python -m x",
        "environment": {"variables": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
    }
    # resources a task does not use are not asked for
    assert [(r["name"], r["scalar"]["value"], r["role"]) for r in info["resources"]] == [
        ("cpus", 1.0, "batch"),
        ("mem", 1024.0, "batch"),
    ]
    assert TaskSpec.model_validate_json(base64.b64decode(info["data"])) == spec()


def test_the_specs_of_one_job_are_encoded_as_each_would_be_alone() -> None:
    """The spec templates (SpecData) give each task the bytes of its own whole dump, and
    a spec that differs in more than its id and index is not taken for its job's."""
    data = SpecData()
    one_job = [spec(f"t{i}").model_copy(update={"taskIndex": i}) for i in range(4)]
    changed = one_job[0].model_copy(
        update={"taskId": "t9", "jobAttributes": {"k": "v"}, "taskIndex": 9}
    )
    odd_id = one_job[0].model_copy(update={"taskId": 'x"y\u00e9'})
    for s in [*one_job, changed, odd_id, *one_job]:
        whole = s.model_dump_json(by_alias=True, exclude_none=True)
        assert data.json(s) == whole
        info = task_info(s, "a1", Usage(cpus=1.0), Executor("x"), data)
        assert TaskSpec.model_validate_json(base64.b64decode(info["data"])) == s


def test_acknowledgement_and_reconciliation_bodies() -> None:
    update = status("TASK_RUNNING", agent_id={"value": "a1"}, uuid="dXU=", message="m")
    assert ack_body(update) == {
        "agent_id": {"value": "a1"},
        "task_id": {"value": "t1"},
        "uuid": "dXU=",
    }
    assert reconcile_body([("t1", "a1")]) == [
        {"task_id": {"value": "t1"}, "agent_id": {"value": "a1"}}
    ]
    assert reconcile_body([]) == []


# ---- status updates -> reports ------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "reason", "expected_state", "expected_reason"),
    [
        ("TASK_STAGING", "", TaskState.LAUNCHED, "normal"),
        ("TASK_STARTING", "", TaskState.START_INITIATED, "normal"),
        ("TASK_RUNNING", "", TaskState.STARTED, "normal"),
        ("TASK_KILLING", "", TaskState.KILL_INITIATED, "killed"),
        ("TASK_UNREACHABLE", "REASON_AGENT_DISCONNECTED", TaskState.DISCONNECTED, "lost"),
        ("TASK_FINISHED", "", TaskState.FINISHED, "normal"),
        ("TASK_KILLED", "", TaskState.FINISHED, "killed"),
        ("TASK_ERROR", "REASON_TASK_INVALID", TaskState.FINISHED, "invalidRequest"),
        ("TASK_LOST", "REASON_RECONCILIATION", TaskState.FINISHED, "lost"),
        ("TASK_GONE", "REASON_AGENT_REMOVED", TaskState.FINISHED, "lost"),
        ("TASK_DROPPED", "", TaskState.FINISHED, "lost"),
        ("TASK_GONE_BY_OPERATOR", "", TaskState.FINISHED, "lost"),
        ("TASK_UNKNOWN", "", TaskState.FINISHED, "lost"),
        ("TASK_FAILED", "REASON_EXECUTOR_TERMINATED", TaskState.FINISHED, "lost"),
        ("TASK_FAILED", "REASON_AGENT_RESTARTED", TaskState.FINISHED, "lost"),
        ("TASK_FAILED", "REASON_COMMAND_EXECUTOR_FAILED", TaskState.FINISHED, "failed"),
        ("TASK_FAILED", "", TaskState.FINISHED, "failed"),
        ("TASK_SOMETHING_NEW", "", TaskState.FINISHED, "unknownSystemError"),
    ],
)
def test_mesos_states_and_reasons_map_onto_titus_states_and_reasons(
    state: str, reason: str, expected_state: TaskState, expected_reason: str
) -> None:
    report = status_to_report(status(state, reason), job_id="j1")
    assert (report.state, report.reasonCode) == (expected_state, expected_reason)
    assert report.taskId == "t1" and report.jobId == "j1"


def test_the_executors_own_report_wins_over_mesoss_words() -> None:
    data = {
        "jobId": "j9",
        "exitCode": 137,
        "reasonCode": "runtimeLimitExceeded",
        "reasonMessage": "ran past its runtime limit",
        "containerId": "c1",
        "context": {"task.exitCode": 137},
    }
    report = status_to_report(status("TASK_FAILED", "REASON_COMMAND_EXECUTOR_FAILED", data))
    assert report.reasonCode == "runtimeLimitExceeded"
    assert report.reasonMessage == "ran past its runtime limit"
    assert (report.jobId, report.exitCode, report.containerId) == ("j9", 137, "c1")
    assert report.context == {"task.exitCode": "137"}
    killed = status_to_report(status("TASK_KILLED", data={"reasonCode": "scaledDown"}))
    assert killed.reasonCode == "scaledDown"


def test_a_reason_titus_does_not_know_is_not_taken_from_the_executor() -> None:
    report = status_to_report(status("TASK_FAILED", data={"reasonCode": "bogus", "exitCode": 3}))
    assert report.reasonCode == "failed" and report.exitCode == 3
    garbage = dict(status("TASK_FINISHED"), data="not base64 json")
    assert status_to_report(garbage).reasonCode == "normal"


def test_mesoss_own_updates_say_their_state_and_reason_in_the_message() -> None:
    with_message = status("TASK_LOST", "REASON_AGENT_REMOVED", message="agent removed")
    assert status_to_report(with_message).reasonMessage == (
        "TASK_LOST (REASON_AGENT_REMOVED): agent removed"
    )
    assert status_to_report(status("TASK_LOST", "REASON_RECONCILIATION")).reasonMessage == (
        "TASK_LOST (REASON_RECONCILIATION)"
    )
    assert status_to_report(status("TASK_RUNNING", message="up")).reasonMessage == "up"


def test_a_status_timestamp_in_seconds_becomes_milliseconds() -> None:
    assert status_to_report(status("TASK_RUNNING", timestamp=1700000000.25)).timestamp == (
        1_700_000_000_250
    )
