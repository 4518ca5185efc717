"""Signed requests between the platform's processes: what an agent accepts and refuses."""

from __future__ import annotations

import pytest

from titus.model.identity import AgentCredentials
from titus.model.signing import (
    HEADER,
    EpochGate,
    RequestSigner,
    RequestVerifier,
    SignatureError,
)

SECRET = b"0123456789abcdef-shared"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def signed(
    clock: Clock,
    method: str = "POST",
    target: str = "/v1/tasks",
    body: bytes = b"{}",
    epoch: int = 3,
) -> str:
    return RequestSigner(SECRET, clock).header(method, target, body, epoch)[HEADER]


def test_a_signed_request_is_accepted_with_its_epoch() -> None:
    clock = Clock()
    verifier = RequestVerifier(SECRET, clock)
    assert verifier.verify("POST", "/v1/tasks", b"{}", signed(clock)).epoch == 3


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("DELETE", "/v1/tasks", b"{}"),
        ("POST", "/v1/tasks/other", b"{}"),
        ("POST", "/v1/tasks?x=1", b"{}"),
        ("POST", "/v1/tasks", b'{"taskId": "evil"}'),
    ],
)
def test_any_change_to_what_was_signed_is_refused(method: str, target: str, body: bytes) -> None:
    clock = Clock()
    with pytest.raises(SignatureError, match="bad signature"):
        RequestVerifier(SECRET, clock).verify(method, target, body, signed(clock))


def test_a_forged_epoch_or_another_secret_is_refused() -> None:
    clock = Clock()
    header = signed(clock, epoch=3).replace("e=3", "e=9")
    with pytest.raises(SignatureError, match="bad signature"):
        RequestVerifier(SECRET, clock).verify("POST", "/v1/tasks", b"{}", header)
    other = RequestSigner(b"another-secret-of-16+", clock).header("POST", "/v1/tasks", b"{}")[
        HEADER
    ]
    with pytest.raises(SignatureError, match="bad signature"):
        RequestVerifier(SECRET, clock).verify("POST", "/v1/tasks", b"{}", other)


def test_a_replay_is_refused_until_it_is_too_old_to_pass_anyway() -> None:
    clock = Clock()
    verifier = RequestVerifier(SECRET, clock, max_skew_sec=30)
    header = signed(clock)
    verifier.verify("POST", "/v1/tasks", b"{}", header)
    with pytest.raises(SignatureError, match="replayed"):
        verifier.verify("POST", "/v1/tasks", b"{}", header)
    clock.now += 31
    with pytest.raises(SignatureError, match="away from this host's clock"):
        verifier.verify("POST", "/v1/tasks", b"{}", header)


def test_the_nonce_book_is_bounded_and_forgets_what_expired() -> None:
    clock = Clock()
    verifier = RequestVerifier(SECRET, clock, max_skew_sec=30, max_nonces=3)
    for _ in range(3):
        verifier.verify("POST", "/v1/tasks", b"{}", signed(clock))
    with pytest.raises(SignatureError, match="too many"):
        verifier.verify("POST", "/v1/tasks", b"{}", signed(clock))
    clock.now += 61
    verifier.verify("POST", "/v1/tasks", b"{}", signed(clock))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "v2 t=1,n=a,e=1,s=b",
        "v1 t=1",
        "v1 t=x,n=a,e=1,s=b",
        "v1 t=1,n=a,e=-1,s=b",
        "v1 t=1,t=2,n=a,e=1,s=b",
        "v1 " + "x" * 300,
        "v1 t=1,n=a;b,e=1,s=c",
    ],
)
def test_malformed_headers_are_refused_with_a_reason(header: str | None) -> None:
    with pytest.raises(SignatureError):
        RequestVerifier(SECRET, Clock()).verify("POST", "/v1/tasks", b"{}", header)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        RequestSigner(b"short")


def test_the_epoch_gate_refuses_orders_from_an_older_leader() -> None:
    gate = EpochGate()
    assert gate.admit(4) and gate.admit(4) and gate.admit(5)
    assert not gate.admit(4)
    assert gate.highest == 5


def test_each_agent_has_a_secret_of_its_own_that_the_platform_can_derive() -> None:
    a = AgentCredentials.derive(SECRET, "host-a")
    b = AgentCredentials.derive(SECRET, "host-b")
    assert a.secret != b.secret and a.role_secret == b.role_secret != a.secret
    assert a == AgentCredentials.derive(SECRET, "host-a")  # nothing to store or distribute
    assert AgentCredentials.parse(a.to_text()) == a
    # what one host holds says nothing of another's: a call signed with it fails there
    clock = Clock()
    header = RequestSigner(a.secret, clock).header("POST", "/v1/tasks", b"{}")[HEADER]
    with pytest.raises(SignatureError, match="bad signature"):
        RequestVerifier(b.secret, clock).verify("POST", "/v1/tasks", b"{}", header)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("not json", "not JSON"),
        ("[]", "must be a JSON object"),
        ('{"agentId": "a", "secret": "' + "0" * 64 + '"}', "roleSecret is missing"),
        ('{"agentId": "a", "secret": "x", "roleSecret": "' + "0" * 64 + '"}', "at least 32"),
        ("{" + " " * 5000 + "}", "larger than"),
    ],
)
def test_malformed_credentials_are_refused_naming_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        AgentCredentials.parse(text)
