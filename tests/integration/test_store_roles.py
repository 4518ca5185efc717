"""The role protocols partition the store: every JobStore method belongs to exactly one
role, and both backends implement every one with the parameters the protocol names, so
a caller typed against a role works on SQLite and on Cassandra alike."""

from __future__ import annotations

import inspect

import pytest

from titus.store import roles
from titus.store.base import JobStore
from titus.store.cassandra import CassandraJobStore
from titus.store.sqlite import SqliteJobStore

ROLES = [
    roles.Jobs,
    roles.Requests,
    roles.Leadership,
    roles.ClusterConfig,
    roles.ChangeFeed,
    roles.Idempotency,
    roles.TaskAttributes,
    roles.SchedulerResults,
    roles.ScalingPolicies,
    roles.Repair,
]


def _methods(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}


def test_every_store_method_is_in_exactly_one_role() -> None:
    owners: dict[str, list[str]] = {}
    for role in ROLES:
        for name in _methods(role):
            owners.setdefault(name, []).append(role.__name__)
    assert {n: o for n, o in owners.items() if len(o) > 1} == {}
    everything = {n for n in dir(JobStore) if not n.startswith("_")}
    assert everything - set(owners) == {"close"}


@pytest.mark.parametrize("backend", [SqliteJobStore, CassandraJobStore])
def test_backends_implement_every_role_with_its_parameters(backend: type) -> None:
    for role in ROLES:
        for name in _methods(role):
            wanted = list(inspect.signature(getattr(role, name)).parameters)
            got = list(inspect.signature(getattr(backend, name)).parameters)
            assert got == wanted, f"{backend.__name__}.{name}"
