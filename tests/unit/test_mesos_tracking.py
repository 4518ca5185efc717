"""The Mesos driver's book-keeping without a connection: which offers it holds and when it
wants offers (offers.py), what it knows of its tasks: the first sync after subscribing,
acknowledgements after persisting, kills sent again (tasks.py), and how pymesos's callbacks
reach it (scheduler.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from titus.master.mesos import MesosConfig, MesosDriver
from titus.master.mesos.offers import OfferBook
from titus.master.mesos.scheduler import SchedulerAdapter
from titus.master.mesos.tasks import TaskTracker
from titus.master.mesos.translate import Offer, Usage
from titus.model.job import Job, JobStatus
from titus.model.states import JobState, TaskState
from titus.model.validation import parse_job_descriptor
from titus.store import open_store
from titus.store.base import ActiveIndex, TaskRow


def offer(offer_id: str, agent: str = "a1", received: float = 0.0) -> Offer:
    return Offer(offer_id, agent, f"{agent}.example", {"cpus": 1.0}, {}, received)


def update(task: str, state: str, agent: str = "a1", **kw: Any) -> dict[str, Any]:
    return {"task_id": {"value": task}, "agent_id": {"value": agent}, "state": state, **kw}


def active(*tasks: tuple[str, str, str | None]) -> ActiveIndex:
    """Jobs 'j1' (2 cpus per task) and tasks (id, state, agent)."""
    descriptor = parse_job_descriptor(
        {
            "owner": {"teamEmail": "team@example.com"},
            "applicationName": "app",
            "container": {"image": {"name": "busybox", "tag": "1"}, "resources": {"cpu": 2}},
            "batch": {"size": 1},
        }
    )
    job = Job(id="j1", jobDescriptor=descriptor, status=JobStatus(state=JobState.ACCEPTED))
    rows = [TaskRow(t, "j1", 1, state, agent, 0, "{}") for t, state, agent in tasks]
    return ActiveIndex([job], rows)


# ---- offers -------------------------------------------------------------------------------
def test_offers_are_held_only_while_work_is_pending() -> None:
    book = OfferBook()
    assert book.receive([offer("o1")], now=0) == ["o1"]
    book.want(pending=True, connected=True)
    assert book.receive([offer("o2"), offer("o3", "a2")], now=1) == []
    assert sorted(book.by_agent()) == ["a1", "a2"]
    wish = book.want(pending=False, connected=True)
    assert sorted(wish.decline) == ["o2", "o3"] and wish.suppress and not wish.revive
    assert book.by_agent() == {}


def test_offers_are_revived_when_work_arrives_and_suppressed_once_when_none_is_left() -> None:
    book = OfferBook()
    assert book.want(pending=True, connected=False).revive is False  # nothing reaches Mesos
    book.want(pending=False, connected=True)
    assert book.want(pending=True, connected=True).revive
    assert not book.want(pending=True, connected=True).revive
    assert book.want(pending=False, connected=True).suppress
    assert not book.want(pending=False, connected=True).suppress
    book.subscribed()  # a new subscription is not suppressed on Mesos's side
    assert book.want(pending=False, connected=True).suppress


def test_rescinded_stale_and_lost_agents_offers_are_not_held() -> None:
    book = OfferBook()
    book.want(pending=True, connected=True)
    book.receive([offer("o1", received=0), offer("o2", received=4), offer("o3", "a2", 4)], now=4)
    book.rescind("o2")
    assert book.take_stale(now=5, hold_seconds=5) == ["o1"]
    assert list(book.by_agent()) == ["a2"]
    book.agent_lost("a2")
    assert book.by_agent() == {}
    assert book.receive([offer("o4", "a2")], now=6) == ["o4"]  # declined: the agent is gone
    assert book.take_lost_agents() == {"a2"} and book.take_lost_agents() == set()


def test_accepting_takes_every_offer_of_the_agent() -> None:
    book = OfferBook()
    book.want(pending=True, connected=True)
    book.receive([offer("o1"), offer("o2"), offer("o3", "a2")], now=0)
    assert sorted(o.id for o in book.take_agent("a1")) == ["o1", "o2"]
    assert book.take_agent("a1") == []
    assert list(book.by_agent()) == ["a2"]


def test_an_offer_cycle_is_answered_when_each_of_its_offers_is() -> None:
    book = OfferBook()
    book.want(pending=True, connected=True)
    book.receive([offer("o1"), offer("o2"), offer("o3")], now=0)
    book.answered(accepted=2)
    assert book.cycles[-1].answered is None
    book.answered(declined=1)
    cycle = book.cycles[-1]
    assert (cycle.offers, cycle.accepted, cycle.declined) == (3, 2, 1)
    assert cycle.answered is not None


# ---- tasks --------------------------------------------------------------------------------
def test_what_the_store_places_on_agents_counts_as_used_and_is_reconciled() -> None:
    tracker = TaskTracker(
        active(
            ("t1", TaskState.STARTED, "a1"),
            ("t2", TaskState.LAUNCHED, "a1"),
            ("t3", TaskState.ACCEPTED, None),
        )
    )
    assert tracker.used_by_agent() == {"a1": Usage(cpus=4.0, mem=1024.0, disk=20_000.0)}
    assert tracker.actual() is None
    tracker.subscribed()
    due = tracker.reconcile_due(now=10, retry=5, force=True)
    assert due is not None and sorted(due.explicit) == [("t1", "a1"), ("t2", "a1")]
    assert tracker.reconcile_due(now=11, retry=5) is None  # asked a moment ago
    again = tracker.reconcile_due(now=15, retry=5)
    assert again is not None and len(again.explicit) == 2  # unanswered: asked again


def test_what_an_agent_uses_follows_its_tasks_as_they_launch_move_and_end() -> None:
    """The per-agent sums are kept as tasks come and go (not added up on each look): a task
    launched again elsewhere leaves its first agent, an ended one frees what it used, and
    an agent whose last task ended is no longer listed."""
    tracker = TaskTracker(active(("t1", TaskState.STARTED, "a1")))
    tracker.launched("t2", "j1", "a1", Usage(cpus=0.5, mem=512.0))
    tracker.launched("t3", "j1", "a2", Usage(cpus=1.0))
    assert tracker.used_by_agent() == {
        "a1": Usage(cpus=2.5, mem=1024.0, disk=10_000.0),
        "a2": Usage(cpus=1.0),
    }
    tracker.launched("t3", "j1", "a1", Usage(cpus=1.0))  # placed again, on a1
    tracker.update(update("t1", "TASK_FINISHED", uuid="u"), now=1)
    assert tracker.used_by_agent() == {"a1": Usage(cpus=1.5, mem=512.0)}
    tracker.update(update("t2", "TASK_KILLED", "a1", uuid="u"), now=2)
    tracker.update(update("t3", "TASK_LOST", "a1"), now=3)
    assert tracker.used_by_agent() == {}


def test_the_first_sync_ends_when_every_placed_task_is_answered() -> None:
    tracker = TaskTracker(active(("t1", TaskState.STARTED, "a1"), ("t2", TaskState.STARTED, "a2")))
    tracker.subscribed()
    first = tracker.update(update("t1", "TASK_RUNNING", reason="REASON_RECONCILIATION"), now=1)
    assert not first.forward and not first.synced and tracker.actual() is None
    last = tracker.update(
        update("t2", "TASK_LOST", "a2", reason="REASON_RECONCILIATION", uuid="u"), now=2
    )
    assert last.synced and last.ack_now and not last.forward
    actual = tracker.actual()
    assert actual is not None
    assert {a: [r.taskId for r in rs] for a, rs in actual.items()} == {"a1": ["t1"], "a2": ["t2"]}
    assert actual["a2"][0].reasonCode == "lost"
    # every later update, reconciliation answers too, goes to the leader
    later = tracker.update(update("t1", "TASK_RUNNING", reason="REASON_RECONCILIATION"), now=3)
    assert later.forward


def test_with_nothing_placed_the_first_sync_is_done_at_once() -> None:
    tracker = TaskTracker(active())
    tracker.subscribed()
    due = tracker.reconcile_due(now=0, retry=5, force=True)
    assert due is not None and due.explicit == [] and due.implicit
    assert tracker.actual() == {}
    assert not tracker.implicit_due(now=100, interval=300)
    assert tracker.implicit_due(now=300, interval=300)


def test_terminal_updates_are_acknowledged_only_once_persisted() -> None:
    tracker = TaskTracker(active(("t1", TaskState.STARTED, "a1")))
    running = tracker.update(update("t1", "TASK_RUNNING", uuid="u1"), now=0)
    assert running.ack_now and running.forward and running.report.jobId == "j1"
    done = tracker.update(update("t1", "TASK_FINISHED", uuid="u2"), now=1)
    assert not done.ack_now and done.forward
    assert tracker.used_by_agent() == {}
    acked = tracker.take_unacked(done.report)
    assert acked is not None and acked["uuid"] == "u2"
    assert tracker.take_unacked(done.report) is None  # once
    # without a uuid (a reconciliation answer) there is nothing to acknowledge
    plain = tracker.update(update("t9", "TASK_LOST"), now=2)
    assert not plain.ack_now and tracker.take_unacked(plain.report) is None


def test_unacknowledged_terminal_updates_are_forgotten_after_a_while() -> None:
    tracker = TaskTracker(active(("t1", TaskState.STARTED, "a1")))
    done = tracker.update(update("t1", "TASK_FAILED", uuid="u"), now=0)
    tracker.expire_unacked(now=601)
    assert tracker.take_unacked(done.report) is None


def test_kills_are_kept_until_the_task_ends() -> None:
    tracker = TaskTracker(active(("t1", TaskState.STARTED, "a1")))
    tracker.kill_requested("t1", "a1")
    tracker.update(update("t1", "TASK_KILLING"), now=0)
    assert tracker.kills() == ["t1"]
    tracker.update(update("t1", "TASK_KILLED"), now=1)
    assert tracker.kills() == []


def test_a_launch_that_did_not_reach_mesos_is_reconciled_at_once() -> None:
    tracker = TaskTracker(active())
    tracker.launched("t5", "j1", "a3", Usage(cpus=1.0))
    assert tracker.used_by_agent() == {"a3": Usage(cpus=1.0)}
    assert tracker.reconcile_due(now=0, retry=5, force=True) is not None  # the first sync
    tracker.launch_failed(["t5", "unknown"])
    due = tracker.reconcile_due(now=1, retry=5)
    assert due is not None and due.explicit == [("t5", "a3")]


# ---- pymesos's callbacks ------------------------------------------------------------------
def test_callbacks_reach_the_driver_as_typed_calls_and_a_failing_one_is_contained(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'titus.db'}")
    try:
        driver = MesosDriver(store, MesosConfig(url="mesos://127.0.0.1:5050"))
        current = SchedulerAdapter(0, driver.connection, driver)  # not started: generation 0
        current.statusUpdate(None, update("t1", "TASK_LOST", message="gone"))
        [report] = driver.take_reports(timeout=0)
        assert (report.host_id, report.report.taskId) == ("a1", "t1")
        assert report.report.reasonCode == "lost"
        # a broken update raises inside the driver: pymesos's thread never sees it
        current.statusUpdate(None, 42)
        # callbacks of a replaced pymesos driver are dropped
        SchedulerAdapter(-1, driver.connection, driver).statusUpdate(
            None, update("t2", "TASK_LOST")
        )
        assert driver.take_reports(timeout=0) == []
    finally:
        store.close()
