"""Task output streams through the API are bounded: one caller holds a few at most and all
callers together a bounded number, each refusal a 429 that names its rule, and a place is
free again the moment its stream closes. Against `titus local` with a real task printing."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_local_platform import batch
from tests.support.platform import running_platform

pytestmark = pytest.mark.docker

OWNER, ADMIN = "tok-owner", "tok-admin"


def test_log_streams_are_bounded_per_caller_and_in_all(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps({OWNER: {"callerId": "owner"}, ADMIN: {"callerId": "ops", "roles": ["admin"]}})
    )
    env = {
        "TITUS_AUTH_TOKENS_FILE": str(tokens),
        "TITUS_API_MAX_LOG_STREAMS_PER_CALLER": "2",
        "TITUS_API_MAX_LOG_STREAMS": "3",
    }
    owner = {"Authorization": f"Bearer {OWNER}"}
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with running_platform(tmp_path, env) as p:
        job_id = p.submit(batch("while true; do echo tick; sleep 1; done"), **owner)
        p.http.headers.update(owner)
        task = p.wait_for("the task running", lambda: p.running(job_id) and p.running(job_id)[0])
        path = f"/api/v3/tasks/{task['id']}/logs"
        follow = {"follow": "true"}

        def opened(stack: ExitStack, headers: dict[str, str]) -> httpx.Response:
            return stack.enter_context(
                p.http.stream("GET", path, params=follow, headers=headers, timeout=30)
            )

        with ExitStack() as held:
            assert [opened(held, owner).status_code for _ in range(2)] == [200, 200]
            refused = p.http.get(path, params=follow, headers=owner)
            assert refused.status_code == 429, refused.text
            assert "api_max_log_streams_per_caller" in refused.json()["message"]
            assert refused.headers["Retry-After"]
            assert opened(held, admin).status_code == 200  # another caller: its own places
            full = p.http.get(path, params=follow, headers=admin)
            assert (
                full.status_code == 429 and "rule: api_max_log_streams)" in full.json()["message"]
            )

        # every stream closed: their places are free again
        def follows() -> bool:
            with p.http.stream("GET", path, params=follow, headers=owner, timeout=30) as again:
                return again.status_code == 200 and next(again.iter_lines()) == "tick"

        p.wait_for("a follow for the owner again", follows, timeout=20)
        assert p.http.get(path, headers=admin).status_code == 200
