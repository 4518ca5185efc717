"""Load balancer registration decided without AWS: the pure diff of desired and actual
targets, and the association as the job carries it."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_leader import job
from titus.master.loadbalancers import plan
from titus.model.loadbalancer import (
    is_target_group_arn,
    load_balancers_of,
    with_load_balancers,
)
from titus.store.sqlite import SqliteJobStore

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"


def test_plan_registers_what_is_wanted_and_missing() -> None:
    assert plan({"a", "b"}, actual=set(), ours=set()) == ({"a", "b"}, set())


def test_plan_leaves_targets_others_registered() -> None:
    assert plan(set(), actual={"stray"}, ours=set()) == (set(), set())


def test_plan_removes_its_own_targets_no_longer_wanted() -> None:
    assert plan({"a"}, actual={"a", "b"}, ours={"a", "b"}) == (set(), {"b"})


def test_plan_does_not_deregister_what_is_already_gone() -> None:
    assert plan(set(), actual=set(), ours={"gone"}) == (set(), set())


def test_plan_of_a_group_in_line_is_nothing() -> None:
    assert plan({"a"}, actual={"a", "x"}, ours={"a"}) == (set(), set())


def test_target_group_arns_are_recognised_by_shape() -> None:
    assert is_target_group_arn(ARN)
    assert not is_target_group_arn("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/x")
    assert not is_target_group_arn(ARN + "0")


def test_an_association_is_kept_once_and_goes_when_none_is_left(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")
    j = store.get_job(job(store, service=1))
    assert j is not None
    twice = with_load_balancers(j, [ARN, ARN])
    assert load_balancers_of(twice) == [ARN]
    assert load_balancers_of(with_load_balancers(twice, [])) == []
    assert not any(k.startswith("titus.loadBalancers") for k in j.jobDescriptor.attributes)
