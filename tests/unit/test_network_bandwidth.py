"""A task's networkMbps as an HTB class: its rate, and a ceiling no lower than it."""

from __future__ import annotations

from titus.agent.network.bandwidth import htb_commands


def test_the_class_rate_is_the_tasks_share_and_the_ceiling_the_burst_when_higher() -> None:
    qdisc, klass = htb_commands("tv1", 100, 0)
    assert qdisc[-3:] == ["htb", "default", "10"]
    assert klass[-4:] == ["rate", "100mbit", "ceil", "100mbit"]
    assert htb_commands("tv1", 100, 400)[1][-1] == "400mbit"
    assert htb_commands("tv1", 500, 400)[1][-1] == "500mbit"
