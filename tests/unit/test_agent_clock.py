"""An agent whose host clock is stepped: it keeps taking the leader's signed calls (their
time is read on its steady clock) and says, through its health, that the clock is off
until it is right again."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from titus.agent.clock import SteadyClock
from titus.agent.health import HealthChecker
from titus.model.signing import HEADER, RequestSigner, RequestVerifier, SignatureError
from titus.settings import Settings

SECRET = b"s" * 32


class Clocks:
    """A wall clock the test steps and a monotonic clock that only moves forward."""

    def __init__(self) -> None:
        self.real = 1_800_000_000.0
        self.step = 0.0
        self.mono = 1000.0

    def wall(self) -> float:
        return self.real + self.step

    def monotonic(self) -> float:
        return self.mono

    def tick(self, sec: float) -> None:
        self.real += sec
        self.mono += sec


def test_a_stepped_host_clock_does_not_refuse_the_leaders_calls() -> None:
    clocks = Clocks()
    steady = SteadyClock(clocks.wall, clocks.monotonic)
    on_steady = RequestVerifier(SECRET, clock=steady)
    on_wall = RequestVerifier(SECRET, clock=clocks.wall)
    leader = RequestSigner(SECRET, clock=lambda: clocks.real)
    for step in (300.0, -300.0):
        clocks.step = step
        clocks.tick(1)
        header = leader.header("POST", "/tasks", b"{}", epoch=3)[HEADER]
        assert on_steady.verify("POST", "/tasks", b"{}", header).epoch == 3
        try:
            on_wall.verify("POST", "/tasks", b"{}", header)
        except SignatureError as e:
            assert "300 s away from this host's clock" in str(e)
        else:  # pragma: no cover - what the steady clock is for
            raise AssertionError("a verifier on the stepped wall clock took the call")


def test_health_says_the_clock_is_off_while_it_is_and_recovers_when_it_is_right() -> None:
    clocks = Clocks()
    steady = SteadyClock(clocks.wall, clocks.monotonic)
    client: Any = SimpleNamespace(ping=lambda: True)
    settings = Settings(agent_health_image="", agent_allow_no_userns=True)
    checker = HealthChecker(settings, client, "agent-1", clock=steady)
    checker._remaps_user_namespaces = lambda: True  # type: ignore[method-assign]
    assert checker.check().healthy
    clocks.step = 120.0
    clocks.tick(10)
    for _ in range(3):  # not only at the first check after the step: until it is right
        status = checker.check()
        assert not status.healthy
        assert status.reasons == [
            "wall clock is +120.0 s off the clock this agent keeps since it started "
            "(stepped): no new tasks here until it is right again"
        ]
        clocks.tick(10)
    clocks.step = 0.0
    assert checker.check().healthy


def test_an_agent_started_on_a_wrong_clock_takes_the_leaders_calls_once_it_is_corrected() -> None:
    """The time source synced late: the agent started 900 s ahead. While its wall clock is
    wrong, the leader's calls are refused and the host is unhealthy; once the wall clock
    is corrected, the leader's next call sets the agent's clock right, and both recover.
    A signed time that the wall clock does not share moves nothing."""
    clocks = Clocks()
    clocks.step = 900.0
    steady = SteadyClock(clocks.wall, clocks.monotonic)
    verifier = RequestVerifier(SECRET, clock=steady, keeper=steady)
    leader = RequestSigner(SECRET, clock=lambda: clocks.real)
    client: Any = SimpleNamespace(ping=lambda: True)
    settings = Settings(agent_health_image="", agent_allow_no_userns=True)
    checker = HealthChecker(settings, client, "agent-1", clock=steady)
    checker._remaps_user_namespaces = lambda: True  # type: ignore[method-assign]

    def call() -> str:
        header = leader.header("POST", "/tasks", b"{}", epoch=1)[HEADER]
        try:
            verifier.verify("POST", "/tasks", b"{}", header)
        except SignatureError as e:
            return str(e)
        return "taken"

    clocks.tick(5)
    assert "900 s away from this host's clock" in call()  # the wall clock agrees: wrong
    assert checker.check().healthy  # nothing stepped since the start: not seen here
    clocks.step = 0.0  # the time source syncs
    clocks.tick(5)
    assert not checker.check().healthy  # the two clocks disagree now
    assert call() == "taken"
    assert steady.wall_offset() == 0.0
    assert checker.check().healthy

    clocks.step = -600.0  # stepped away again: the leader's time sides with the steady clock
    clocks.tick(5)
    assert call() == "taken"
    assert steady.wall_offset() == -600.0
    forged_time = RequestSigner(SECRET, clock=lambda: clocks.real - 600.0)
    header = forged_time.header("POST", "/tasks", b"{}", epoch=1)[HEADER]
    try:  # a signed time that agrees with the stepped wall clock only: a replay, refused
        verifier.verify("POST", "/tasks", b"{}", header)
    except SignatureError as e:
        assert "600 s away" in str(e)
    else:  # pragma: no cover
        raise AssertionError("a call that only the stepped wall clock agrees with was taken")
    assert steady.wall_offset() == -600.0
