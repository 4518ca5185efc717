"""Turns: a caller on many connections gets at most its share of the API's attention; and
a caller refused again and again waits longer for each refusal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from titus.api.gate import (
    JITTER,
    REFUSAL_HOLD_SEC,
    RUNAWAY_HOLD_SEC,
    RUNAWAY_REFUSALS,
    Gate,
    RefusalHolds,
    Turns,
)


def test_a_caller_waits_its_turn_while_others_pass_and_streams_hold_none() -> None:
    async def scenario() -> None:
        turns = Turns(2)
        busy: dict[str, int] = {}
        most: dict[str, int] = {}
        release = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            who = scope["who"]
            busy[who] = busy.get(who, 0) + 1
            most[who] = max(most.get(who, 0), busy[who])
            if scope.get("stream"):
                await send({"type": "http.response.start", "status": 200})
                busy[who] -= 1  # answering: its turn is over while it streams
                await release.wait()
                return
            await release.wait()
            busy[who] -= 1
            await send({"type": "http.response.start", "status": 200})

        async def sent(message: Any) -> None:
            return None

        def request(who: str, **extra: Any) -> Any:
            return asyncio.create_task(turns.serve(who, app, {"who": who, **extra}, None, sent))

        streams = [request("hog", stream=True) for _ in range(3)]
        hog = [request("hog") for _ in range(10)]
        other = request("other")
        await asyncio.sleep(0.05)
        assert busy["other"] == 1  # not behind the hog's ten
        assert busy["hog"] == 2  # two at work, eight waiting; the streams hold no turn
        release.set()
        await asyncio.gather(*streams, *hog, other)
        assert most["hog"] == 2
        assert turns._callers == {}  # nothing kept for callers with nothing in flight

    asyncio.run(scenario())


def test_a_callers_line_is_bounded_and_the_one_too_many_is_refused_at_once() -> None:
    async def scenario() -> None:
        turns = Turns(1)
        bound = 1 + Turns.WAITING_PER_TURN
        release = asyncio.Event()
        answers: list[int] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await release.wait()
            await send({"type": "http.response.start", "status": 200})

        async def sent(message: Any) -> None:
            if message["type"] == "http.response.start":
                answers.append(message["status"])

        held = [asyncio.create_task(turns.serve("hog", app, {}, None, sent)) for _ in range(bound)]
        await asyncio.sleep(0.05)
        await turns.serve("hog", app, {}, None, sent)  # one too many: answered at once
        assert answers == [429]
        release.set()
        await asyncio.gather(*held)
        assert answers.count(200) == bound

    asyncio.run(scenario())


def test_a_caller_refused_again_and_again_has_its_refusals_held_longer() -> None:
    """A burst past the limit is refused after the short hold; a caller that keeps
    retrying at once (more than RUNAWAY_REFUSALS refusals within a second) waits the long
    hold for each, until it has kept quiet for a second; other callers keep the short one.
    Each hold is drawn around its length, so that refusals made together do not all come
    back in the same instant."""
    holds = RefusalHolds(REFUSAL_HOLD_SEC, RUNAWAY_HOLD_SEC)

    def kind(hold: float) -> str:
        for name, length in (("short", REFUSAL_HOLD_SEC), ("long", RUNAWAY_HOLD_SEC)):
            if length * (1 - JITTER) <= hold <= length * (1 + JITTER):
                return name
        return f"neither: {hold}"

    burst = [holds.hold_sec("polite", 0.001 * i) for i in range(RUNAWAY_REFUSALS)]
    assert {kind(h) for h in burst} == {"short"}
    assert len(set(burst)) > 1  # spread, not one instant
    flood = [kind(holds.hold_sec("runaway", 0.001 * i)) for i in range(RUNAWAY_REFUSALS + 5)]
    assert flood == ["short"] * RUNAWAY_REFUSALS + ["long"] * 5
    assert kind(holds.hold_sec("runaway", 1.5)) == "long"  # the last second counts too
    assert kind(holds.hold_sec("polite", 1.5)) == "short"
    assert kind(holds.hold_sec("runaway", 3.6)) == "short"  # quiet for a second: forgiven


def test_the_grpc_gate_counts_refusals_with_the_rest_gate(tmp_path: Path) -> None:
    """One caller refused over REST and over gRPC is one runaway: both gates share the
    rate limiter and the refusal holds."""
    from titus.api.app import create_app
    from titus.api.grpc.server import rest_gate
    from titus.coord.local import LocalCoordinator
    from titus.settings import Settings
    from titus.store.sqlite import SqliteJobStore

    settings = Settings(data_dir=str(tmp_path))
    app = create_app(settings, SqliteJobStore(tmp_path / "t.db"), LocalCoordinator())
    call_gate = rest_gate(app, settings)
    stack: Any = app.middleware_stack
    while not isinstance(stack, Gate):
        stack = stack.app
    assert call_gate.limiter is stack.limiter
    for _ in range(RUNAWAY_REFUSALS + 1):
        stack.holds.hold_sec("runaway", 0.0)
    assert call_gate.holds.hold_sec("runaway", 0.0) >= RUNAWAY_HOLD_SEC * (1 - JITTER)
