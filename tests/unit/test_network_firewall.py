"""Security group rules as written: parsed, refused when unknown, loaded as one table."""

from __future__ import annotations

import pytest

from titus.agent.network.firewall import LocalGroups, Rule, UnknownGroupError, ruleset


def test_rules_read_as_written() -> None:
    assert Rule.parse("tcp:8000-8100:10.0.0.0/8") == Rule("tcp", 8000, 8100, "10.0.0.0/8")
    assert Rule.parse("udp:53:0.0.0.0/0") == Rule("udp", 53, 53, "0.0.0.0/0")
    assert Rule.parse("ALL::100.64.0.0/24") == Rule("all", 0, 65535, "100.64.0.0/24")
    for bad in ("tcp:80", "gre:1:0.0.0.0/0", "tcp:80:not-a-cidr"):
        with pytest.raises(ValueError):
            Rule.parse(bad)


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
