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
