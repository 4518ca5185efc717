"""The Mesos master/agent double answers as the Mesos v1 HTTP APIs do.

The platform's Mesos driver and executor are tested against this double only, so these tests
hold it to the protocol: over raw HTTP (status codes, headers, events) and through pymesos's
own MesosSchedulerDriver and MesosExecutorDriver, the libraries the platform uses.
"""

from __future__ import annotations

import base64
import json
import queue
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.mesos.client import (
    Subscription,
    framework_info,
    post,
)
from tests.support.mesos.fixture import MesosMasterProcess, sample_executor_command
from tests.support.mesos.master import MesosMasterDouble
from tests.support.prerequisites import PYMESOS, require_module

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]


def scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def task_info(
    offer: dict[str, Any],
    task_id: str,
    *,
    command: str | None = None,
    spec: dict[str, Any] | None = None,
    cpus: float = 0.1,
    mem: float = 32,
) -> dict[str, Any]:
    """A TaskInfo for `offer`: a shell command task, or one run by the sample executor."""
    info: dict[str, Any] = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [scalar("cpus", cpus), scalar("mem", mem)],
    }
    if command is not None:
        info["command"] = {"value": command}
    else:
        info["executor"] = {
            "executor_id": {"value": f"ex-{task_id}"},
            "command": {
                "value": sample_executor_command(),
                "environment": {"variables": [{"name": "SAMPLE_TASK", "value": task_id}]},
            },
            "resources": [scalar("cpus", 0.01), scalar("mem", 32)],
        }
        info["data"] = base64.b64encode(json.dumps(spec or {}).encode()).decode()
    return info


def launch(sub: Subscription, offer: dict[str, Any], *tasks: dict[str, Any]) -> int:
    status, _ = sub.call(
        "ACCEPT",
        {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}],
            "filters": {"refuse_seconds": 0.0},
        },
    )
    return status


def next_update(sub: Subscription, ack: bool = True, timeout: float = 10.0) -> dict[str, Any]:
    status: dict[str, Any] = sub.next("UPDATE", timeout=timeout)["update"]["status"]
    if ack and "uuid" in status:
        code, text = sub.call(
            "ACKNOWLEDGE",
            {"agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]},
        )
        assert code == 202, text
    return status


def offers_of(sub: Subscription, timeout: float = 5.0) -> list[dict[str, Any]]:
    offers: list[dict[str, Any]] = sub.next("OFFERS", timeout=timeout)["offers"]["offers"]
    return offers


# ------------------------------------------------------------------ HTTP-level answers


def test_version_and_refused_requests(mesos_master: MesosMasterDouble) -> None:
    addr = mesos_master.address
    status, body, _ = post(addr, b"", {}, method="GET")
    assert status == 405
    import http.client

    host, port = addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/version")
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read())["version"].startswith("1.")
    conn.close()

    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info()}}
    status, body, _ = post(addr, subscribe, {"Content-Type": "text/plain"})
    assert status == 415, body
    status, body, _ = post(addr, subscribe, {})
    assert (status, body) == (400, "Expecting 'Content-Type' to be present")
    status, body, _ = post(
        addr, subscribe, {"Content-Type": "application/json", "Accept": "text/html"}
    )
    assert status == 406, body
    status, body, _ = post(
        addr, subscribe, {"Content-Type": "application/json", "Mesos-Stream-Id": "x"}
    )
    assert status == 400 and "Mesos-Stream-Id" in body
    status, body, _ = post(addr, b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "JSON" in body
    no_user = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}}
    status, body, _ = post(addr, no_user, {"Content-Type": "application/json"})
    assert status == 400 and "framework_info.user" in body


def test_not_the_leader(mesos_master: MesosMasterDouble) -> None:
    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info()}}
    mesos_master.set_leader(False, redirect_to="127.0.0.1:5050")
    status, _, headers = post(mesos_master.address, subscribe)
    assert (status, headers["Location"]) == (307, "//127.0.0.1:5050/api/v1/scheduler")
    mesos_master.set_leader(False)
    assert post(mesos_master.address, subscribe)[0] == 503
    mesos_master.set_leader(True)
    assert Subscription(mesos_master.address, framework_info()).status == 200


def test_calls_need_framework_id_and_the_stream_id(mesos_master: MesosMasterDouble) -> None:
    sub = Subscription(mesos_master.address, framework_info())
    assert sub.status == 200 and sub.stream_id
    assert sub.headers["transfer-encoding"] == "chunked"
    addr = mesos_master.address
    headers = {"Content-Type": "application/json", "Mesos-Stream-Id": sub.stream_id or ""}

    status, body, _ = post(addr, {"type": "REVIVE"}, headers)
    assert status == 400 and "'framework_id'" in body
    revive = {"type": "REVIVE", "framework_id": {"value": sub.framework_id}}
    status, body, _ = post(addr, revive, {"Content-Type": "application/json"})
    assert (status, body) == (
        400,
        "All non-subscribe calls should include the 'Mesos-Stream-Id' header",
    )
    status, body, _ = post(addr, revive, {**headers, "Mesos-Stream-Id": "not-this-one"})
    assert status == 400 and "didn't match" in body
    status, body, _ = post(addr, {**revive, "framework_id": {"value": "nobody"}}, headers)
    assert status == 400 and "Framework cannot be found" in body
    status, body, _ = post(addr, revive, headers)
    assert (status, body) == (202, "")
    ack = {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "bm90LWEtdXVpZA=="}
    assert sub.call("ACKNOWLEDGE", ack)[0] == 400  # base64 of 10 bytes is no UUID
    sub.close()


def test_subscribed_then_heartbeats_and_offers_from_agents(
    mesos_master: MesosMasterDouble,
) -> None:
    sub = Subscription(mesos_master.address, framework_info())
    # SUBSCRIBED is followed at once by a HEARTBEAT, then heartbeats at the interval.
    assert sub.next("HEARTBEAT", skip_others=False, timeout=1)["type"] == "HEARTBEAT"
    subscribed = sub.seen[0]["subscribed"]
    assert subscribed["framework_id"]["value"] == f"{mesos_master.master_id}-0000"
    assert subscribed["heartbeat_interval_seconds"] == 0.5
    assert subscribed["master_info"]["address"]["port"] == int(mesos_master.address.split(":")[1])

    offers = offers_of(sub)
    assert sorted(o["hostname"] for o in offers) == ["agent-a", "agent-b"]
    offer = next(o for o in offers if o["hostname"] == "agent-a")
    assert offer["id"]["value"].startswith(f"{mesos_master.master_id}-O")
    assert offer["agent_id"]["value"].startswith(f"{mesos_master.master_id}-S")
    assert offer["framework_id"]["value"] == sub.framework_id
    resources = {r["name"]: r for r in offer["resources"]}
    assert resources["cpus"]["scalar"]["value"] == 4.0
    assert resources["ports"]["ranges"]["range"] == [{"begin": 31000, "end": 32000}]
    assert {"name": "zone", "type": "TEXT", "text": {"value": "zone-a"}} in offer["attributes"]

    # Heartbeats keep coming while the subscription lasts.
    sub.next("HEARTBEAT", timeout=2)
    sub.next("HEARTBEAT", timeout=2)
    sub.close()


def test_disconnected_framework_is_forbidden(mesos_master: MesosMasterDouble) -> None:
    sub = Subscription(mesos_master.address, framework_info())
    sub.close()
    mesos_master.wait_for(lambda: not mesos_master.frameworks[sub.framework_id or ""].connected)
    status, body = sub.call("REVIVE")
    assert (status, body) == (403, "Framework is not subscribed")


# ---------------------------------------------------------------------- offers, tasks


def test_invalid_and_reused_offers_lose_their_tasks(mesos_master: MesosMasterDouble) -> None:
    sub = Subscription(mesos_master.address, framework_info())
    offer = offers_of(sub)[0]
    assert launch(sub, offer, task_info(offer, "t1", command="sleep 30")) == 202
    assert next_update(sub)["state"] == "TASK_STARTING"

    assert launch(sub, offer, task_info(offer, "t2", command="true")) == 202
    lost = next_update(sub)
    while lost["task_id"]["value"] != "t2":
        lost = next_update(sub)
    assert lost["state"] == "TASK_LOST"
    assert lost["reason"] == "REASON_INVALID_OFFERS"
    assert "uuid" not in lost  # made up by the master: nothing to acknowledge

    bogus = dict(offer, id={"value": "no-such-offer"})
    assert launch(sub, bogus, task_info(offer, "t3", command="true")) == 202
    update = next_update(sub)
    while update["task_id"]["value"] != "t3":
        update = next_update(sub)
    assert (update["state"], update["reason"]) == ("TASK_LOST", "REASON_INVALID_OFFERS")
    sub.close()


def test_task_larger_than_its_offer_is_an_error(mesos_master: MesosMasterDouble) -> None:
    sub = Subscription(mesos_master.address, framework_info())
    offer = offers_of(sub)[0]
    assert launch(sub, offer, task_info(offer, "big", command="true", cpus=64)) == 202
    update = next_update(sub)
    assert (update["state"], update["reason"]) == ("TASK_ERROR", "REASON_TASK_INVALID")
    sub.close()


def test_decline_filters_the_agent_until_refuse_seconds_pass(
    mesos_master: MesosMasterDouble,
) -> None:
    sub = Subscription(mesos_master.address, framework_info())
    offers = offers_of(sub)
    a = next(o for o in offers if o["hostname"] == "agent-a")
    b = next(o for o in offers if o["hostname"] == "agent-b")
    assert (
        sub.call("DECLINE", {"offer_ids": [a["id"]], "filters": {"refuse_seconds": 1.0}})[0] == 202
    )
    assert (
        sub.call("DECLINE", {"offer_ids": [b["id"]], "filters": {"refuse_seconds": 30}})[0] == 202
    )
    # Nothing while agent-a's 1 s filter holds (the fixture allocates every 50 ms), then
    # agent-a alone: agent-b stays filtered for 30 s.
    with pytest.raises(TimeoutError):
        sub.next("OFFERS", timeout=0.7)
    again = offers_of(sub, timeout=3)
    assert [o["hostname"] for o in again] == ["agent-a"]
    # SUPPRESS: no more offers; REVIVE clears the filters and offers everything again.
    assert sub.call("SUPPRESS")[0] == 202
    assert (
        sub.call("DECLINE", {"offer_ids": [again[0]["id"]], "filters": {"refuse_seconds": 0}})[0]
        == 202
    )
    with pytest.raises(TimeoutError):
        sub.next("OFFERS", timeout=0.5)
    assert sub.call("REVIVE")[0] == 202
    assert sorted(o["hostname"] for o in offers_of(sub)) == ["agent-a", "agent-b"]
    sub.close()


def test_rescinded_offer_cannot_be_used(mesos_master: MesosMasterDouble) -> None:
    sub = Subscription(mesos_master.address, framework_info())
    offer = offers_of(sub)[0]
    mesos_master.rescind_offer(offer["id"]["value"])
    assert sub.next("RESCIND")["rescind"]["offer_id"] == offer["id"]
    assert launch(sub, offer, task_info(offer, "late", command="true")) == 202
    update = next_update(sub)
    assert (update["state"], update["reason"]) == ("TASK_LOST", "REASON_INVALID_OFFERS")
    sub.close()


def test_command_task_updates_wait_for_acknowledgement(mesos_master: MesosMasterDouble) -> None:
    sub = Subscription(mesos_master.address, framework_info())
    offer = offers_of(sub)[0]
    launch(sub, offer, task_info(offer, "c1", command="exit 3"))
    first = next_update(sub, ack=False)
    assert first["state"] == "TASK_STARTING" and first["source"] == "SOURCE_EXECUTOR"
    # The next update of the task is held back until this one is acknowledged.
    with pytest.raises(TimeoutError):
        sub.next("UPDATE", timeout=0.5)
    sub.call(
        "ACKNOWLEDGE",
        {"agent_id": first["agent_id"], "task_id": first["task_id"], "uuid": first["uuid"]},
    )
    assert next_update(sub)["state"] == "TASK_RUNNING"
    failed = next_update(sub)
    assert failed["state"] == "TASK_FAILED" and "status 3" in failed["message"]
    sub.close()


def test_kill_and_reconciliation(mesos_master: MesosMasterDouble) -> None:
    sub = Subscription(mesos_master.address, framework_info())
    offer = offers_of(sub)[0]
    launch(sub, offer, task_info(offer, "r1", command="sleep 30"))
    assert next_update(sub)["state"] == "TASK_STARTING"
    assert next_update(sub)["state"] == "TASK_RUNNING"

    sub.call("KILL", {"task_id": {"value": "ghost"}})
    ghost = next_update(sub)
    assert (ghost["task_id"]["value"], ghost["state"]) == ("ghost", "TASK_LOST")

    sub.call("RECONCILE", {"tasks": [{"task_id": {"value": "r1"}}, {"task_id": {"value": "x"}}]})
    known, unknown = next_update(sub), next_update(sub)
    assert (known["task_id"]["value"], known["state"]) == ("r1", "TASK_RUNNING")
    assert known["reason"] == "REASON_RECONCILIATION" and "uuid" not in known
    assert known["agent_id"] == offer["agent_id"]
    assert (unknown["task_id"]["value"], unknown["state"]) == ("x", "TASK_LOST")
    assert unknown["reason"] == "REASON_RECONCILIATION"

    sub.call("RECONCILE", {"tasks": []})
    implicit = next_update(sub)
    assert (implicit["task_id"]["value"], implicit["state"]) == ("r1", "TASK_RUNNING")
    assert implicit["reason"] == "REASON_RECONCILIATION"

    sub.call("KILL", {"task_id": {"value": "r1"}})
    assert next_update(sub)["state"] == "TASK_KILLED"
    sub.close()


def test_failover_to_a_new_subscription_with_the_same_id(mesos_master: MesosMasterDouble) -> None:
    old = Subscription(mesos_master.address, framework_info())
    offers_of(old)
    fw_id = old.framework_id
    new = Subscription(mesos_master.address, framework_info(id={"value": fw_id}))
    assert new.framework_id == fw_id and new.stream_id != old.stream_id
    assert old.next("ERROR")["error"]["message"] == "Framework failed over"
    with pytest.raises(EOFError):
        old.next(timeout=2)
    assert old.call("REVIVE")[0] == 400  # the old stream id is no longer the framework's
    # Offers the old scheduler held were dropped without RESCIND and are offered anew.
    assert sorted(o["hostname"] for o in offers_of(new)) == ["agent-a", "agent-b"]
    assert not mesos_master.events_of(fw_id or "", "RESCIND")

    mismatch = framework_info(id={"value": fw_id})
    status, body, _ = post(
        mesos_master.address,
        {
            "type": "SUBSCRIBE",
            "framework_id": {"value": "other"},
            "subscribe": {"framework_info": mismatch},
        },
    )
    assert status == 400 and "differs" in body
    new.close()


def test_failover_timeout_tears_the_framework_down(mesos_master: MesosMasterDouble) -> None:
    sub = Subscription(mesos_master.address, framework_info(failover_timeout=0.3))
    offer = offers_of(sub)[0]
    launch(sub, offer, task_info(offer, "doomed", command="sleep 30"))
    next_update(sub)
    sub.close()
    mesos_master.wait_for(lambda: sub.framework_id in mesos_master.completed_frameworks)
    assert mesos_master.task_state(sub.framework_id or "", "doomed") == "TASK_KILLED"
    again = Subscription(mesos_master.address, framework_info(id={"value": sub.framework_id}))
    assert again.status == 200 and again.framework_id is None
    assert again.refusal == {"type": "ERROR", "error": {"message": "Framework has been removed"}}
    with pytest.raises(EOFError):
        again.next(timeout=2)


def test_teardown_kills_tasks_and_ends_the_stream(mesos_master: MesosMasterDouble) -> None:
    sub = Subscription(mesos_master.address, framework_info())
    offer = offers_of(sub)[0]
    launch(sub, offer, task_info(offer, "td", command="sleep 30"))
    next_update(sub)
    assert sub.call("TEARDOWN")[0] == 202
    with pytest.raises(EOFError):
        while True:
            sub.next(timeout=3)
    mesos_master.wait_for(lambda: not mesos_master.executor_processes(), timeout=5)


# -------------------------------------------------------- executors run by the agents


def test_executor_gets_the_agent_environment_and_relays_updates(
    mesos_master: MesosMasterDouble,
) -> None:
    require_module("pymesos", PYMESOS)
    sub = Subscription(mesos_master.address, framework_info())
    offer = offers_of(sub)[0]
    launch(sub, offer, task_info(offer, "e1", spec={"sleep": 0.2}))
    running = next_update(sub)
    assert running["state"] == "TASK_RUNNING" and running["source"] == "SOURCE_EXECUTOR"
    assert running["executor_id"] == {"value": "ex-e1"}
    assert running["agent_id"] == offer["agent_id"]
    finished = next_update(sub)
    assert finished["state"] == "TASK_FINISHED"
    failure = sub.next("FAILURE", timeout=10)["failure"]  # the executor exits after the ack
    assert failure["executor_id"] == {"value": "ex-e1"} and failure["status"] == 0

    env_file = next(mesos_master.work_dir.rglob("executor-env.json"))
    env = json.loads(env_file.read_text())
    agent = mesos_master.agents[offer["agent_id"]["value"]]
    assert env["MESOS_AGENT_ENDPOINT"] == agent.endpoint
    assert env["MESOS_FRAMEWORK_ID"] == sub.framework_id
    assert env["MESOS_EXECUTOR_ID"] == "ex-e1"
    assert env["MESOS_SLAVE_ID"] == agent.id
    assert env["MESOS_DIRECTORY"] == env["MESOS_SANDBOX"] == str(env_file.parent)
    assert env["MESOS_CHECKPOINT"] == "0"
    assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "2secs"
    assert env["MESOS_LOCAL"] == "1"
    calls = [c["type"] for c in mesos_master.executor_calls if c["status"] < 300]
    assert calls[:3] == ["SUBSCRIBE", "UPDATE", "UPDATE"]
    sub.close()


def test_killed_executor_fails_its_task_and_reports_failure(
    mesos_master: MesosMasterDouble,
) -> None:
    require_module("pymesos", PYMESOS)
    sub = Subscription(mesos_master.address, framework_info())
    offer = offers_of(sub)[0]
    launch(sub, offer, task_info(offer, "victim", spec={"hang": True}))
    assert next_update(sub)["state"] == "TASK_RUNNING"
    mesos_master.kill_executor("ex-victim")
    update = next_update(sub)
    assert (update["state"], update["reason"]) == ("TASK_FAILED", "REASON_EXECUTOR_TERMINATED")
    assert update["source"] == "SOURCE_AGENT"
    failure = sub.next("FAILURE")["failure"]
    assert failure["executor_id"] == {"value": "ex-victim"} and failure["status"] == 9
    sub.close()


def test_kill_reaches_the_executor(mesos_master: MesosMasterDouble) -> None:
    require_module("pymesos", PYMESOS)
    sub = Subscription(mesos_master.address, framework_info())
    offer = offers_of(sub)[0]
    launch(sub, offer, task_info(offer, "k1", spec={"hang": True}))
    assert next_update(sub)["state"] == "TASK_RUNNING"
    sub.call("KILL", {"task_id": {"value": "k1"}, "agent_id": offer["agent_id"]})
    killed = next_update(sub)
    assert (killed["state"], killed["source"]) == ("TASK_KILLED", "SOURCE_EXECUTOR")
    sub.close()


@pytest.mark.parametrize("partition_aware", [False, True])
def test_removed_agent(mesos_master: MesosMasterDouble, partition_aware: bool) -> None:
    caps = [{"type": "PARTITION_AWARE"}] if partition_aware else []
    sub = Subscription(mesos_master.address, framework_info(capabilities=caps))
    offer = offers_of(sub)[0]
    launch(sub, offer, task_info(offer, "on-agent", command="sleep 30"))
    assert next_update(sub)["state"] == "TASK_STARTING"
    assert next_update(sub)["state"] == "TASK_RUNNING"
    agent_id = offer["agent_id"]["value"]
    mesos_master.remove_agent(agent_id)
    gone = "TASK_GONE" if partition_aware else "TASK_LOST"
    lost = next_update(sub)
    assert (lost["state"], lost["reason"]) == (gone, "REASON_AGENT_REMOVED")
    assert sub.next("FAILURE")["failure"] == {"agent_id": {"value": agent_id}}
    sub.call("RECONCILE", {"tasks": [{"task_id": {"value": "on-agent"}}]})
    assert next_update(sub)["state"] == gone
    mesos_master.wait_for(lambda: not mesos_master.executor_processes())
    sub.close()


def test_master_restart_keeps_tasks_running(mesos_master: MesosMasterDouble) -> None:
    sub = Subscription(mesos_master.address, framework_info())
    offer = offers_of(sub)[0]
    launch(sub, offer, task_info(offer, "survivor", command="sleep 30"))
    next_update(sub)
    next_update(sub)
    old_master = mesos_master.master_id
    mesos_master.restart()
    with pytest.raises(EOFError):
        while True:
            sub.next(timeout=3)
    again = Subscription(mesos_master.address, framework_info(id={"value": sub.framework_id}))
    assert again.framework_id == sub.framework_id
    assert mesos_master.master_id != old_master
    again.call("RECONCILE", {"tasks": [{"task_id": {"value": "survivor"}}]})
    assert next_update(again)["state"] == "TASK_RUNNING"
    again.close()


def test_double_as_a_subprocess(mesos_master_process: MesosMasterProcess) -> None:
    double = mesos_master_process
    sub = Subscription(double.address, framework_info())
    assert len(offers_of(sub)) == 2
    agent_id = double.add_agent("agent-c", cpus=2, attributes={"zone": "zone-c"})
    (offer,) = offers_of(sub)
    assert (offer["hostname"], offer["agent_id"]["value"]) == ("agent-c", agent_id)
    launch(sub, offer, task_info(offer, "sp", command="sleep 30"))
    assert next_update(sub)["state"] == "TASK_STARTING"
    assert next_update(sub)["state"] == "TASK_RUNNING"
    assert [t["task_id"] for t in double.state()["tasks"]] == ["sp"]
    double.remove_agent(agent_id)
    assert next_update(sub)["state"] == "TASK_LOST"
    assert any(c["type"] == "ACCEPT" for c in double.calls)
    sub.close()


def test_executor_that_never_subscribes_fails_its_task_after_the_registration_timeout(
    tmp_path: Path,
) -> None:
    """As a Mesos agent does (--executor_registration_timeout, 1 min by default): the
    executor process is killed and its task fails; a framework then replaces the task. The
    timeout counts from the process's start, and the double records when each started."""
    double = MesosMasterProcess(
        "--heartbeat=0.5",
        "--allocation-interval=0.05",
        "--executor-registration-timeout=1",
        f"--work-dir={tmp_path / 'mesos'}",
    )
    try:
        sub = Subscription(double.address, framework_info())
        offer = offers_of(sub)[0]
        info = task_info(offer, "silent")
        info["executor"]["command"] = {"value": "sleep 30"}  # runs, never subscribes
        launched = time.time()
        assert launch(sub, offer, info) == 202
        failed = next_update(sub, timeout=15)
        assert (failed["state"], failed["reason"], failed["source"]) == (
            "TASK_FAILED",
            "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
            "SOURCE_AGENT",
        )
        ((executor_id, started),) = double.executor_starts
        assert executor_id == "ex-silent" and started >= launched - 1
        assert failed["timestamp"] - started >= 1.0
        assert sub.next("FAILURE")["failure"]["executor_id"] == {"value": "ex-silent"}
        sub.close()
    finally:
        double.stop()


# --------------------------------------------------------------------------- pymesos


class RecordingScheduler:
    """A tiny pymesos scheduler: launches one sample-executor task per wanted id."""

    def __init__(self, wanted: list[str]) -> None:
        self.wanted = list(wanted)
        self.updates: queue.Queue[dict[str, Any]] = queue.Queue()
        self.registered_ids: list[str] = []
        self.reregistrations = 0
        self.errors: list[str] = []
        self.offers_seen = 0
        self.spec: dict[str, Any] = {"sleep": 0.1}

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self.registered_ids.append(framework_id["value"])

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.reregistrations += 1
        # Refusal filters outlive a failover (they belong to the framework): ask again.
        driver.reviveOffers()

    def disconnected(self, driver: Any) -> None:
        pass

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:  # noqa: N802
        self.offers_seen += len(offers)
        for offer in offers:
            if self.wanted:
                task = task_info(offer, self.wanted.pop(0), spec=self.spec)
                driver.launchTasks(offer["id"], [task], {"refuse_seconds": 1.0})
            else:
                driver.declineOffer(offer["id"], {"refuse_seconds": 30.0})

    def offerRescinded(self, driver: Any, offer_id: Any) -> None:  # noqa: N802
        pass

    def statusUpdate(self, driver: Any, status: Any) -> None:  # noqa: N802
        self.updates.put(dict(status))

    def frameworkMessage(self, *args: Any) -> None:  # noqa: N802
        pass

    def slaveLost(self, *args: Any) -> None:  # noqa: N802
        pass

    def executorLost(self, *args: Any) -> None:  # noqa: N802
        pass

    def error(self, driver: Any, message: str) -> None:
        self.errors.append(message)
        driver.stop(failover=True)  # failed over: this instance must not subscribe again

    def processHeartBeat(self, driver: Any) -> None:  # noqa: N802
        pass

    def states(self, task_id: str, until: str, timeout: float = 15.0) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while until not in seen:
            status = self.updates.get(timeout=max(0.01, deadline - time.monotonic()))
            if status["task_id"]["value"] == task_id:
                seen.append(status["state"])
        return seen


def start_driver(master: str, sched: RecordingScheduler, framework_id: str | None = None) -> Any:
    from pymesos import MesosSchedulerDriver

    info: dict[str, Any] = {"user": "root", "name": "pymesos-test", "failover_timeout": 60.0}
    if framework_id:
        info["id"] = {"value": framework_id}
    driver = MesosSchedulerDriver(sched, info, master, use_addict=True)
    driver.start()
    return driver


@pytest.mark.parametrize("fragment_records", [False, True])
def test_pymesos_scheduler_runs_a_task_through_the_executor(
    mesos_master_factory: Any, fragment_records: bool
) -> None:
    require_module("pymesos", PYMESOS)
    master = mesos_master_factory(fragment_records=fragment_records)
    sched = RecordingScheduler(["p1"])
    driver = start_driver(master.address, sched)
    try:
        assert sched.states("p1", "TASK_FINISHED") == ["TASK_RUNNING", "TASK_FINISHED"]
        fw_id = sched.registered_ids[0]
        # pymesos acknowledged both updates itself, so the task is no longer active.
        master.wait_for(lambda: master.task_state(fw_id, "p1") == "TASK_FINISHED")
        master.wait_for(lambda: not master.tasks)
        acks = [c for c in master.calls if c["type"] == "ACKNOWLEDGE"]
        assert len(acks) == 2 and all(c["status"] == 202 for c in acks)
    finally:
        driver.stop()
        driver.join()
    master.wait_for(lambda: any(c["type"] == "TEARDOWN" for c in master.calls))


def test_pymesos_failover_with_the_same_framework_id(mesos_master: MesosMasterDouble) -> None:
    require_module("pymesos", PYMESOS)
    first = RecordingScheduler([])
    driver1 = start_driver(mesos_master.address, first)
    mesos_master.wait_for(lambda: first.registered_ids and first.offers_seen)
    fw_id = first.registered_ids[0]

    second = RecordingScheduler(["f1"])
    driver2 = start_driver(mesos_master.address, second, framework_id=fw_id)
    try:
        assert second.states("f1", "TASK_FINISHED")[-1] == "TASK_FINISHED"
        assert second.reregistrations == 1 and not second.registered_ids
        assert first.errors == ["Framework failed over"]
        assert mesos_master.frameworks[fw_id].connected
    finally:
        driver1.join()
        driver2.stop()
        driver2.join()


def test_pymesos_resubscribes_after_a_master_restart(mesos_master: MesosMasterDouble) -> None:
    require_module("pymesos", PYMESOS)
    sched = RecordingScheduler([])
    sched.spec = {"hang": True}
    sched.wanted = ["long"]
    driver = start_driver(mesos_master.address, sched)
    try:
        assert sched.states("long", "TASK_RUNNING") == ["TASK_RUNNING"]
        fw_id = sched.registered_ids[0]
        # restart only once the update is acknowledged: pymesos's driver dies on the 403 an
        # acknowledgement in flight across the restart would get (as from a real master)
        mesos_master.wait_for(
            lambda: not any(t.pending for t in list(mesos_master.tasks.values())), timeout=10
        )
        mesos_master.restart(downtime=0.5)
        # pymesos reconnects on its own (after a 2 s backoff when the port refused it).
        mesos_master.wait_for(lambda: sched.reregistrations == 1, timeout=20)
        # connected again (on a loaded machine a missed heartbeat may cost one more
        # reconnect before the stream holds)
        mesos_master.wait_for(lambda: mesos_master.frameworks[fw_id].connected, timeout=20)
        driver.reconcileTasks([{"task_id": {"value": "long"}}])
        status = sched.updates.get(timeout=5)
        assert (status["state"], status["reason"]) == ("TASK_RUNNING", "REASON_RECONCILIATION")
    finally:
        driver.stop()
        driver.join()
    # Without failover, stop() tears the framework down: its executor is shut down.
    mesos_master.wait_for(lambda: not mesos_master.executor_processes(), timeout=10)


def zookeeper_support() -> Any:
    if not (REPO / "scripts" / "zookeeper.sh").exists():
        pytest.fail("scripts/zookeeper.sh is not in this tree")
    from tests.support import zookeeper as zk_support

    return zk_support


@pytest.mark.zookeeper
def test_published_in_zookeeper_for_zk_master_uris(
    mesos_master_factory: Any, tmp_path: Path
) -> None:
    require_module("pymesos", PYMESOS)
    zk_support = zookeeper_support()
    connect = zk_support.start_zookeeper()
    path = f"/titus-test/mesos-{time.monotonic_ns()}"
    master = mesos_master_factory(zk=connect, zk_path=path)
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=connect, timeout=5)
    zk.start(timeout=10)
    try:
        children = zk.get_children(path)
        assert len(children) == 1 and children[0].startswith("json.info_")
        info = json.loads(zk.get(f"{path}/{children[0]}")[0])
        assert info["address"] == {
            "hostname": "127.0.0.1",
            "ip": "127.0.0.1",
            "port": int(master.address.split(":")[1]),
        }
        assert info["ip"] == 16777343 and info["id"] == master.master_id

        sched = RecordingScheduler(["z1"])
        driver = start_driver(master.zk_uri, sched)
        try:
            assert sched.states("z1", "TASK_FINISHED")[-1] == "TASK_FINISHED"
        finally:
            driver.stop()
            driver.join()
    finally:
        master.stop()
        with_children = zk.exists(path) and zk.get_children(path)
        zk.delete(path, recursive=True)
        zk.stop()
        zk.close()
    assert not with_children  # the node was ephemeral and removed on stop
