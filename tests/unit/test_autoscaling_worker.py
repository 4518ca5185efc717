"""The autoscaling worker on a real SQLite store: a user's change written while a pass was
deciding is never overwritten by the pass (it is decided again on the next), a deposed
leader's worker writes nothing, Deleted policies are forgotten once kept long enough,
and the aws executor that cannot reach AWS changes nothing and says so."""

from __future__ import annotations

import socket
from pathlib import Path

import boto3
import pytest

from tests.store.conformance import make_policy
from titus.master.autoscaling.aws import AwsExecutor
from titus.master.autoscaling.executor import JobFacts, LoopFacts, Snapshot
from titus.master.autoscaling.local import LocalExecutor, task_metrics
from titus.master.autoscaling.worker import DELETED_KEPT_SEC, Autoscaler
from titus.model.autoscaling import PolicyRecord, PolicyState
from titus.model.job import Capacity
from titus.store.base import StaleEpoch
from titus.store.sqlite import SqliteJobStore


class EditedDuringPasses(SqliteJobStore):
    """The SQLite store, with a user editing every policy right after a pass read them."""

    def list_scaling_policies(self, job_id: str | None = None) -> list[PolicyRecord]:
        read = super().list_scaling_policies(job_id)
        for record in read:
            self.update_scaling_policy(record.model_copy(update={"reason": "edited"}))
        return read


@pytest.fixture
def store(tmp_path: Path) -> SqliteJobStore:
    return SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")


def facts(job_id: str, now: float = 1000.0) -> LoopFacts:
    capacity = Capacity(min=1, desired=2, max=4)
    return LoopFacts({job_id: JobFacts(job_id, capacity, True, True)}, frozenset({job_id}), {}, now)


def worker(store: SqliteJobStore, epoch: int = 1) -> Autoscaler:
    store.claim_epoch(epoch)
    w = Autoscaler(lambda: LocalExecutor(task_metrics(store)), store, epoch, lambda: 1000.0)
    w.stop()  # passes are run by the test, on its own thread
    return w


def test_a_users_change_during_a_pass_is_not_overwritten(tmp_path: Path) -> None:
    edited = EditedDuringPasses(tmp_path / "titus.db", synchronous="OFF")
    record = edited.create_scaling_policy(make_policy("job-a"))
    worker(edited).run_pass(facts("job-a"))
    after = SqliteJobStore(tmp_path / "titus.db").get_scaling_policy(record.id)
    assert after is not None and after.version == 2 and after.reason == "edited"
    assert after.state == PolicyState.PENDING  # decided again on the next pass
    plain = SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")
    worker(plain).run_pass(facts("job-a"))
    applied = plain.get_scaling_policy(record.id)
    assert applied is not None and applied.state == PolicyState.APPLIED


def test_a_new_policys_job_is_asked_for_before_it_is_decided(store: SqliteJobStore) -> None:
    record = store.create_scaling_policy(make_policy("job-a"))
    w = worker(store)
    w.run_pass(LoopFacts({}, frozenset({"job-a"}), {}, 1000.0))  # its job's facts not in yet
    assert w.job_ids == {"job-a"}
    assert store.get_scaling_policy(record.id).state == PolicyState.PENDING  # type: ignore[union-attr]
    w.run_pass(facts("job-a"))
    assert store.get_scaling_policy(record.id).state == PolicyState.APPLIED  # type: ignore[union-attr]


def test_a_deposed_leaders_worker_writes_nothing(store: SqliteJobStore) -> None:
    record = store.create_scaling_policy(make_policy("job-a"))
    old = worker(store, epoch=1)
    store.claim_epoch(2)
    with pytest.raises(StaleEpoch):
        old.run_pass(facts("job-a"))
    assert store.get_scaling_policy(record.id).state == PolicyState.PENDING  # type: ignore[union-attr]


def test_deleted_policies_are_kept_a_while_then_forgotten(store: SqliteJobStore) -> None:
    record = store.create_scaling_policy(make_policy("job-a"))
    store.update_scaling_policy(record.model_copy(update={"state": PolicyState.DELETING}))
    w = worker(store)
    w.run_pass(facts("job-a"))
    deleted = store.get_scaling_policy(record.id)
    assert deleted is not None and deleted.state == PolicyState.DELETED
    w.run_pass(facts("job-a", 1000.0 + 60))
    assert store.get_scaling_policy(record.id) is not None
    w.run_pass(facts("job-a", 1000.0 + DELETED_KEPT_SEC + 1))
    assert store.get_scaling_policy(record.id) is None


def test_the_aws_executor_changes_nothing_while_aws_is_unreachable(store: SqliteJobStore) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed

    def client(service: str) -> object:
        return boto3.client(
            service,
            endpoint_url=closed,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    executor = AwsExecutor(
        lambda: client("application-autoscaling"),
        lambda: client("cloudwatch"),
        "https://titus.example",
    )
    record = store.create_scaling_policy(make_policy("job-a"))
    outcome = executor.run(Snapshot([record], facts("job-a").jobs, {}, 1000.0))
    assert outcome.states == {} and outcome.scale == []
