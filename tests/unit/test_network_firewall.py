"""Security group rules as written: parsed, refused when unknown, loaded as one table."""

from __future__ import annotations

import pytest

from titus.agent.network.firewall import LocalGroups, Rule, UnknownGroupError, ruleset


def test_rules_read_as_written() -> None:
    assert Rule.parse("tcp:8000-8100:10.0.0.0/8") == Rule("tcp", 8000, 8100, "10.0.0.0/8")
    assert Rule.parse("udp:53:0.0.0.0/0") == Rule("udp", 53, 53, "0.0.0.0/0")
    assert Rule.parse("ALL::100.64.0.0/24") == Rule("all", 0, 65535, "100.64.0.0/24")
    assert Rule.parse("tcp:5432:sg-web") == Rule("tcp", 5432, 5432, "", group="sg-web")
    for bad in ("tcp:80", "gre:1:0.0.0.0/0", "tcp:80:"):
        with pytest.raises(ValueError):
            Rule.parse(bad)
    with pytest.raises(ValueError, match="sg-nobody"):
        LocalGroups({"sg-a": ["tcp:80:sg-nobody"]})


def test_a_rule_naming_a_source_group_allows_the_addresses_of_its_members_only() -> None:
    members = {"sg-web": ["100.64.0.5", "100.64.0.9"], "sg-db": ["100.64.0.7"]}
    groups = LocalGroups(
        {"sg-db": ["tcp:5432:sg-web"], "sg-web": ["tcp:80:0.0.0.0/0"]},
        lambda group: members.get(group, []),
    )
    rules = groups.rules(["sg-db"])
    assert rules == [
        Rule("tcp", 5432, 5432, "100.64.0.5/32"),
        Rule("tcp", 5432, 5432, "100.64.0.9/32"),
    ]
    text = ruleset(rules)
    assert "-s 100.64.0.7/32" not in text and text.count("--dport 5432:5432") == 2
    members["sg-web"] = []  # the group's last task ended: nobody is let in any more
    assert groups.rules(["sg-db"]) == []


def test_a_group_nobody_declared_is_refused_and_known_ones_give_their_rules() -> None:
    groups = LocalGroups({"sg-a": ["tcp:80:0.0.0.0/0"], "sg-b": ["icmp::10.0.0.0/8"]})
    assert [r.protocol for r in groups.rules(["sg-a", "sg-b"])] == ["tcp", "icmp"]
    with pytest.raises(UnknownGroupError, match="sg-x"):
        groups.rules(["sg-a", "sg-x"])


def test_the_table_drops_inbound_except_replies_loopback_and_the_rules_once_each() -> None:
    text = ruleset([Rule("tcp", 80, 81, "10.0.0.0/8"), Rule("tcp", 80, 81, "10.0.0.0/8")])
    assert ":INPUT DROP [0:0]" in text and ":OUTPUT ACCEPT [0:0]" in text
    assert text.count("--dport 80:81") == 1
    assert "ESTABLISHED,RELATED" in text and text.endswith("COMMIT\n")
