"""Long requests on an agent are bounded: log followers beyond the cap are refused with a
429 at once (never queued on the worker threads launches and kills need), while plain
reads of a task's output still answer."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from titus.agent.logs import LogFiles
from titus.agent.server import CallGuard, logs_router


def test_followers_beyond_the_cap_get_429_and_reads_still_answer(tmp_path: Path) -> None:
    logs = LogFiles(tmp_path / "logs")
    logs.path("t1", "stdout").parent.mkdir(parents=True, exist_ok=True)
    logs.path("t1", "stdout").write_bytes(b"hello\n")
    app = FastAPI()
    app.include_router(logs_router(logs, lambda task_id: True, CallGuard(None), max_follows=0))
    with TestClient(app) as http:
        refused = http.get("/v1/tasks/t1/logs", params={"follow": "true"})
        assert refused.status_code == 429
        assert "log follows" in refused.json()["detail"]
        assert refused.headers["Retry-After"] == "2"
        assert http.get("/v1/tasks/t1/logs").content == b"hello\n"
