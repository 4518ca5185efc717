"""Masters on a real ZooKeeper sharing one SQLite store: one leads and acts, the other
waits and takes over; a leader cut off from ZooKeeper stops acting, a leader whose session
is lost steps down and campaigns again, and a deposed leader's writes are refused."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.poll import wait_until
from tests.support.zookeeper import WAIT_SEC, ZkProxy, expire_session
from titus.coord.base import Leadership
from titus.coord.zookeeper import ZooKeeperCoordinator
from titus.master.direct import DirectDriver
from titus.master.leader import Master, MasterConfig, Paused
from titus.model.job import Job, JobStatus
from titus.model.states import JobState
from titus.model.validation import parse_job_descriptor
from titus.store.base import LEADER_RECORD_META, StaleEpoch
from titus.store.sqlite import SqliteJobStore

pytestmark = [pytest.mark.zookeeper, pytest.mark.timeout(90)]

Factory = Callable[..., ZooKeeperCoordinator]


class Running:
    """A Master running its campaign/lead loop in a thread, as `titus master` does."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.stop = threading.Event()
        self.thread = threading.Thread(target=master.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def leads(self) -> bool:
        """Elected, its epoch claimed and the hosts reconciled: acting."""
        leadership = self.master.leadership
        return leadership is not None and leadership.can_act() and self.master.ready_at is not None

    def end(self) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteJobStore]:
    s = SqliteJobStore(tmp_path / "titus.db")
    yield s
    s.close()


@pytest.fixture
def masters(store: SqliteJobStore) -> Iterator[Callable[[ZooKeeperCoordinator, str], Running]]:
    made: list[Running] = []

    def start(coord: ZooKeeperCoordinator, name: str) -> Running:
        m = Master(
            store,
            coord,
            DirectDriver(coord),
            master_id=name,
            config=MasterConfig(loop_interval=0.1),
        )
        r = Running(m)
        made.append(r)
        return r

    yield start
    for r in made:
        r.end()


def submit(store: SqliteJobStore, size: int = 2) -> str:
    d = parse_job_descriptor(
        {
            "owner": {"teamEmail": "a@b.co"},
            "applicationName": "app",
            "container": {"image": {"name": "img", "tag": "1"}},
            "batch": {"size": size},
        }
    )
    job = Job(id=str(uuid.uuid4()), jobDescriptor=d, status=JobStatus(state=JobState.ACCEPTED))
    store.create_job(job)
    store.mark_dirty(job.id)
    return job.id


def test_one_master_leads_and_acts_and_the_other_takes_over_when_it_stops(
    zk_coordinator: Factory, store: SqliteJobStore, masters: Callable[..., Running]
) -> None:
    a = masters(zk_coordinator(), "a")
    wait_until("a to lead", a.leads, WAIT_SEC)
    b = masters(zk_coordinator(), "b")
    first = submit(store)
    # the leader acts on new work (creates the job's tasks); the standby does not lead
    wait_until("a to create the tasks", lambda: len(store.list_tasks(first)) == 2, WAIT_SEC)
    assert not b.leads()
    epoch_a = store.current_epoch()

    a.end()
    wait_until("b to take over", b.leads, WAIT_SEC)
    assert store.current_epoch() > epoch_a
    second = submit(store)
    wait_until("b to create the tasks", lambda: len(store.list_tasks(second)) == 2, WAIT_SEC)
    # the job a started is b's now, untouched: its tasks were not made twice
    assert len(store.list_tasks(first)) == 2
    record = store.get_meta(LEADER_RECORD_META)
    assert record is not None and '"masterId": "b"' in record


def test_a_leader_whose_session_is_lost_steps_down_and_campaigns_again(
    zookeeper: str,
    zk_coordinator: Factory,
    store: SqliteJobStore,
    masters: Callable[..., Running],
) -> None:
    coord_a = zk_coordinator()
    a = masters(coord_a, "a")
    wait_until("a to lead", a.leads, WAIT_SEC)
    b = masters(zk_coordinator(), "b")
    job_id = submit(store)
    wait_until("a to act", lambda: len(store.list_tasks(job_id)) == 2, WAIT_SEC)

    expire_session(zookeeper, coord_a.client)
    wait_until("b to lead after a's session expired", b.leads, WAIT_SEC)
    # a dropped what it held and queued up again behind b
    wait_until(
        "a to drop", lambda: a.master.leadership is None and len(a.master.view) == 0, WAIT_SEC
    )
    b.end()
    wait_until("a to lead again once b is gone", a.leads, WAIT_SEC)
    assert len(store.list_tasks(job_id)) == 2


def test_a_suspended_leader_does_not_act_until_its_session_is_back(
    zk_coordinator: Factory,
    zk_proxy: ZkProxy,
    store: SqliteJobStore,
    masters: Callable[..., Running],
) -> None:
    a = masters(zk_coordinator(zk_proxy.hosts, session_timeout=6.0), "a")
    wait_until("a to lead", a.leads, WAIT_SEC)
    zk_proxy.cut()
    leadership = a.master.leadership
    assert leadership is not None
    wait_until("the session to be suspended", lambda: not leadership.active.is_set(), WAIT_SEC)
    job_id = submit(store)
    with pytest.raises(Paused):
        a.master.iterate()
    assert store.list_tasks(job_id) == []
    zk_proxy.restore()
    wait_until("a to act again", lambda: len(store.list_tasks(job_id)) == 2, 20)


def test_a_deposed_leader_that_has_not_noticed_cannot_write(
    zk_coordinator: Factory, store: SqliteJobStore, masters: Callable[..., Running]
) -> None:
    job_id = submit(store, size=1)
    a = masters(zk_coordinator(), "a")
    wait_until("a to act", lambda: len(store.list_tasks(job_id)) == 1, WAIT_SEC)
    [task] = store.list_tasks(job_id)
    old_epoch = store.current_epoch()

    # a stale leader: it still believes it leads with the old epoch (its loop is paused,
    # as a process stopped by a long GC pause or a frozen VM would be)
    stale = Master(store, zk_coordinator(), DirectDriver(zk_coordinator()), master_id="old")
    stale.leadership = Leadership(old_epoch)
    a.end()
    b = masters(zk_coordinator(), "b")
    wait_until("b to lead", b.leads, WAIT_SEC)
    assert store.current_epoch() > old_epoch

    with pytest.raises(StaleEpoch):
        stale.save_task(task.model_copy(update={"taskContext": {**task.taskContext, "x": "y"}}))
    assert "x" not in (store.get_task(task.id) or task).taskContext
