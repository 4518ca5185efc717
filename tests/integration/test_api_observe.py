"""The observe stream over a real HTTP server: snapshot, SnapshotEnd, live changes,
Last-Event-ID resume, and a slow watcher dropped instead of buffered."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.integration.test_api_app import BATCH, service
from tests.integration.test_api_spinnaker import add_task
from tests.support.platform import free_port
from tests.support.poll import wait_until
from titus.api.app import create_app
from titus.api.observe import SNAPSHOT_CHUNK, Hub
from titus.api.query import Criteria
from titus.api.view import ActiveView, Event
from titus.coord.local import LocalCoordinator
from titus.model.states import JobState
from titus.settings import Settings
from titus.store.sqlite import SqliteJobStore


@pytest.fixture
def server(served: tuple[str, SqliteJobStore]) -> str:
    return served[0]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, SqliteJobStore]]:
    """The API over HTTP, and the store behind it (to write what a leader would)."""
    with serving(tmp_path) as both:
        yield both


@contextmanager
def serving(tmp_path: Path, **settings: Any) -> Iterator[tuple[str, SqliteJobStore]]:
    store = SqliteJobStore(tmp_path / "titus.db", synchronous="OFF")
    app = create_app(
        Settings(
            data_dir=str(tmp_path), change_poll_sec=0.05, observe_keepalive_sec=0.5, **settings
        ),
        store,
        LocalCoordinator(),
    )
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_until("the API server started", lambda: srv.started, 10, interval=0.02)
    try:
        yield f"http://127.0.0.1:{port}", store
    finally:
        srv.should_exit = True
        thread.join(5)
        store.close()


def events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse SSE lines into {id, event, data} dicts (comments as {"comment": ...})."""
    current: dict[str, Any] = {}
    for line in lines:
        if line.startswith(":"):
            yield {"comment": line}
        elif not line:
            if current:
                yield current
            current = {}
        else:
            field, _, value = line.partition(": ")
            current[field] = json.loads(value) if field == "data" else value


def test_snapshot_then_live_changes_then_resume(server: str) -> None:
    http = httpx.Client(base_url=server, timeout=10)
    old = http.post("/api/v3/jobs", json=service()).json()["id"]
    http.post("/api/v3/jobs", json=service(applicationName="other"))
    params = {"applicationName": "web"}
    with http.stream("GET", "/api/v3/jobs/observe", params=params) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        stream = events(r.iter_lines())
        snapshot = []
        for e in stream:
            if e.get("event") == "SnapshotEnd":
                end_id = int(e["id"])
                break
            snapshot.append(e)
        assert [e["data"]["job"]["id"] for e in snapshot] == [old]
        new = http.post("/api/v3/jobs", json=service()).json()["id"]
        live = next(e for e in stream if e.get("event") == "job")
        assert live["data"]["job"]["id"] == new and int(live["id"]) > end_id
        keepalive = next(e for e in stream if "comment" in e)
        assert "keep-alive" in keepalive["comment"]
    missed = http.post("/api/v3/jobs", json=service()).json()["id"]
    http.post("/api/v3/jobs", json=BATCH)  # not matching the filter
    with http.stream(
        "GET", "/api/v3/jobs/observe", params=params, headers={"Last-Event-ID": str(end_id)}
    ) as r:
        stream = events(r.iter_lines())
        got = [next(stream), next(stream)]
    assert [e["data"]["job"]["id"] for e in got] == [new, missed]
    assert all(e["event"] == "job" for e in got)


def test_a_slow_watcher_is_dropped_with_a_clear_event(tmp_path: Path) -> None:
    async def run_matching() -> tuple[bool, list[Event | None]]:
        from titus.model.job import Job, JobDescriptor, JobStatus
        from titus.model.states import JobState

        job = Job(
            id="j",
            jobDescriptor=JobDescriptor.model_validate(BATCH),
            status=JobStatus(state=JobState.ACCEPTED),
        )
        view = ActiveView(SqliteJobStore(tmp_path / "t.db"))
        hub = Hub(view, queue_size=2, history_size=10)
        watcher, _ = hub.subscribe(Criteria.parse({}, set()), None)
        for seq in range(1, 6):
            hub.publish(Event(seq, "job", "put", "j", {}, job=job))
        queued = watcher.take()
        return watcher.dropped, queued

    dropped, queued = asyncio.run(run_matching())
    assert dropped and queued == [None]


def test_job_criteria_select_task_events_and_an_archive_shows_the_final_state(
    served: tuple[str, SqliteJobStore],
) -> None:
    """Watching one application, a task of another application's job never shows; when a
    watched job finishes and is archived at once (as the leader does), its archive event
    carries the Finished state, not the state before it."""
    url, store = served
    http = httpx.Client(base_url=url, timeout=10)
    watched = http.post("/api/v3/jobs", json=BATCH).json()["id"]
    other = http.post("/api/v3/jobs", json={**BATCH, "applicationName": "other"}).json()["id"]
    params = {"applicationName": BATCH["applicationName"]}
    with http.stream("GET", "/api/v3/jobs/observe", params=params) as r:
        stream = events(r.iter_lines())
        next(e for e in stream if e.get("event") == "SnapshotEnd")
        add_task(store, other, 0)
        add_task(store, watched, 0)
        task_event = next(e for e in stream if e.get("event") == "task")
        assert task_event["data"]["task"]["jobId"] == watched
        job = store.get_job(watched)
        assert job is not None
        finished = store.update_job(job.with_status(JobState.FINISHED, "normal", "done"))
        store.archive_job(finished)
        archived = next(
            e for e in stream if e.get("event") == "job" and e["data"]["op"] == "archive"
        )
    assert archived["data"]["job"]["id"] == watched
    assert archived["data"]["job"]["status"]["state"] == "Finished"


def test_a_large_snapshot_is_written_a_chunk_at_a_time_as_it_stood(tmp_path: Path) -> None:
    """A snapshot is written as the client reads it, not built whole first, and holds the
    jobs as they stood when the watcher subscribed; what changes meanwhile comes after
    SnapshotEnd, as a live event."""
    from tests.store.conformance import make_job

    store = SqliteJobStore(tmp_path / "t.db", synchronous="OFF")
    jobs = [store.create_job(make_job()) for _ in range(450)]

    async def run() -> tuple[list[str], list[str], list[Event | None]]:
        view = ActiveView(store)
        await view.refresh()
        hub = Hub(view, queue_size=1000, history_size=10)
        watcher, chunks = hub.subscribe(Criteria.parse({}, set()), None)
        _, other = hub.subscribe(Criteria.parse({}, set()), None)
        stream = iter(chunks)
        first = next(stream)
        store.update_job(jobs[-1].with_status(JobState.KILL_INITIATED))
        await view.refresh()
        return [first, *stream], list(other), watcher.take()

    chunks, other, live = asyncio.run(run())
    assert len(chunks) == -(-450 // SNAPSHOT_CHUNK) + 1  # chunks, then SnapshotEnd
    text = "".join(chunks)
    assert text == "".join(other)  # both watchers were sent the same snapshot
    snapshot = list(events(iter(text.splitlines())))
    assert [e["event"] for e in snapshot] == ["job"] * 450 + ["SnapshotEnd"]
    states = {e["data"]["job"]["id"]: e["data"]["job"]["status"]["state"] for e in snapshot[:-1]}
    assert states[jobs[-1].id] == "Accepted"  # as it stood at subscribe
    assert [e.job_id for e in live if e is not None] == [jobs[-1].id]


class _ReadsCounted(SqliteJobStore):
    """The real store, counting the jobs read back by id; a feed read can be held."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="OFF")
        self.jobs_read: list[str] = []
        self.feed_open = threading.Event()
        self.feed_open.set()
        self.feed_reached = threading.Event()

    def get_job(self, job_id: str) -> Any:
        self.jobs_read.append(job_id)
        return super().get_job(job_id)

    def changes_since(self, seq: int, limit: int) -> Any:
        self.feed_reached.set()
        self.feed_open.wait(10)
        return super().changes_since(seq, limit)


def test_the_view_takes_its_own_creates_without_reading_them_back_even_behind_the_feed(
    tmp_path: Path,
) -> None:
    """Creates this API made are never read back from the store, whether the view is
    behind the feed (another writer's job came first) or a refresh is reading it; each
    job reaches watchers once, in feed order. (Before, one create that arrived during a
    refresh sent every later create of a busy writer back through the store.)"""
    from tests.store.conformance import make_job

    store = _ReadsCounted(tmp_path / "t.db")

    def create() -> Any:
        return store.submit_create_job(make_job(), mark_dirty=True).result(10)

    async def run() -> tuple[list[str], list[str], list[str]]:
        view = ActiveView(store)
        await view.refresh()
        seen: list[Event] = []
        view.listeners.append(seen.append)
        foreign = store.create_job(make_job())  # another API's, unknown to this view
        mine = [create(), create()]
        for created in mine:
            view.take_created(created)  # behind the feed: they wait for the refresh
        store.feed_open.clear()
        store.feed_reached.clear()
        refresh = asyncio.create_task(view.refresh())
        await asyncio.to_thread(store.feed_reached.wait, 10)
        during = create()
        view.take_created(during)  # a refresh is reading the feed
        store.feed_open.set()
        await refresh
        after = create()
        view.take_created(after)  # caught up: taken at once
        ids = [foreign.id] + [c.job.id for c in [*mine, during, after]]
        return ids, [e.job_id for e in seen], [i for i in ids if i in view.jobs]

    ids, seen, held = asyncio.run(run())
    assert seen == ids
    assert held == ids
    assert store.jobs_read == [ids[0]]


def test_one_caller_holds_a_bounded_number_of_streams_and_others_still_get_theirs(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tok-a": {"callerId": "a"}, "tok-b": {"callerId": "b"}}))
    settings = {"auth_tokens_file": str(tokens), "observe_max_per_caller": 3}
    with serving(tmp_path, **settings) as (url, _), httpx.Client(base_url=url) as http:
        a, b = {"Authorization": "Bearer tok-a"}, {"Authorization": "Bearer tok-b"}
        with ExitStack() as held:
            for _ in range(3):
                stream = held.enter_context(http.stream("GET", "/api/v3/jobs/observe", headers=a))
                assert stream.status_code == 200
            refused = http.get("/api/v3/jobs/observe", headers=a)
            assert refused.status_code == 429
            assert "observe_max_per_caller" in refused.json()["message"]
            assert refused.headers["Retry-After"]
            with http.stream("GET", "/api/v3/jobs/observe", headers=b) as other:
                assert other.status_code == 200
        # the streams closed: the caller may watch again
        wait_until(
            "a stream for the caller again",
            lambda: _opens(http, a),
            timeout=10,
        )


def _opens(http: httpx.Client, headers: dict[str, str]) -> bool:
    with http.stream("GET", "/api/v3/jobs/observe", headers=headers) as stream:
        return stream.status_code == 200
