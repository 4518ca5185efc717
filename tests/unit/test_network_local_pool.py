"""The local address pool: one address per task, kept across restarts, given back."""

from __future__ import annotations

from pathlib import Path

import pytest

from titus.agent.network import NetworkError
from titus.agent.network.local import LocalPoolProvider


def test_each_task_gets_its_own_address_and_the_same_one_when_asked_again(
    tmp_path: Path,
) -> None:
    pool = LocalPoolProvider("100.64.0.0/24", "", tmp_path / "pool.json")
    a = pool.allocate("t1", ["sg-a"])
    b = pool.allocate("t2", [])
    assert a.ip != b.ip
    assert a.ip != "100.64.0.1"  # the gateway's
    assert pool.allocate("t1", ["sg-a"]) == a
    assert a.prefix_len == 24 and a.security_groups == ("sg-a",)


def test_a_restarted_agent_finds_what_was_given_and_release_gives_it_back(
    tmp_path: Path,
) -> None:
    state = tmp_path / "pool.json"
    first = LocalPoolProvider("100.64.0.0/24", "100.64.0.16/29", state)
    a = first.allocate("t1", [])
    again = LocalPoolProvider("100.64.0.0/24", "100.64.0.16/29", state)
    assert again.allocations() == {"t1": a}
    again.release("t1")
    again.release("t1")
    assert first.allocations() == {}


def test_an_exhausted_pool_refuses_instead_of_reusing(tmp_path: Path) -> None:
    pool = LocalPoolProvider("100.64.0.0/24", "100.64.0.16/30", tmp_path / "pool.json")
    got = {pool.allocate(f"t{i}", []).ip for i in range(2)}
    assert got == {"100.64.0.17", "100.64.0.18"}
    with pytest.raises(NetworkError):
        pool.allocate("t3", [])


def test_a_pool_outside_its_subnet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalPoolProvider("100.64.0.0/24", "10.0.0.0/28", tmp_path / "pool.json")


def test_addresses_of_tasks_no_longer_running_go_back_but_not_another_agents(
    tmp_path: Path,
) -> None:
    state = tmp_path / "pool.json"  # one file shared by two agents
    mine = LocalPoolProvider("100.64.0.0/24", "100.64.0.16/29", state, owner="a")
    theirs = LocalPoolProvider("100.64.0.0/24", "100.64.0.16/29", state, owner="b")
    kept, lost = mine.allocate("t1", []), mine.allocate("t2", [])
    other = theirs.allocate("t3", [])
    assert mine.release_absent(["t1"]) == ["t2"]  # t2 ended while no agent watched
    assert mine.allocations() == {"t1": kept, "t3": other}
    # a running task whose record was lost is taken back by the address it has
    mine.release("t1")
    assert mine.adopt("t1", kept.ip, ["sg-a"]) == mine.allocations()["t1"]
    assert mine.adopt("t9", other.ip, []) is None  # held by someone else
    assert mine.adopt("t8", "10.9.9.9", []) is None  # not in the pool
    assert lost.ip not in {a.ip for a in mine.allocations().values()}
