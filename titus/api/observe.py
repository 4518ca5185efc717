"""`GET /api/v3/jobs/observe`: job and task changes as Server-Sent Events.

One producer (the view's refresh, fed by the store's change feed) fans each event out to
every watcher's bounded queue; no watcher ever reads the store. A watcher that falls more
than `observe_queue_size` events behind is dropped with a `dropped` event rather than
buffered without bound, so many or slow watchers cannot slow the API down.

The stream: every matching active job and task (`event: job` / `event: task`), then
`event: SnapshotEnd` (its id is where the snapshot stands), then each change with its
change-feed sequence number as `id`, and `: keep-alive` comments while idle. Changes reach a
watcher at most `LINGER_SEC` after the view has them, gathered into one write. A client that
reconnects with `Last-Event-ID` gets the events it missed while the server still holds
them (the last `observe_history`), otherwise a fresh snapshot.

A snapshot is taken as references to the view's documents (the view replaces a document
when it changes, never edits it) and written out `SNAPSHOT_CHUNK` at a time as the client
reads, so a watcher costs no copy of the active set; each document's text is made once and
shared by every watcher that sends it.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from titus.api.auth import OPEN, Principal, caller_key
from titus.api.deps import authenticated, principal_of, view_of
from titus.api.policy import job_doc
from titus.api.query import JOB_FILTERS, TASK_FILTERS, Criteria, decimal
from titus.api.schemas import ERROR_RESPONSES, query_parameters
from titus.api.slots import CallerSlots
from titus.api.view import ActiveView, Event
from titus.model.job import Job

router = APIRouter(
    prefix="/api/v3",
    tags=["jobs"],
    responses=ERROR_RESPONSES,
    dependencies=[Depends(authenticated)],
)

OBSERVE_FILTERS = (TASK_FILTERS - {"taskIds"}) | JOB_FILTERS

#: How long a watcher woken by a change waits for more before it writes them all at once.
LINGER_SEC = 0.05
#: Snapshot entries written per chunk.
SNAPSHOT_CHUNK = 200


@dataclass(eq=False)
class Watcher:
    """One observe client: the events waiting to be sent (at most `size`) and a flag the
    producer sets when there are some."""

    criteria: Criteria
    size: int
    #: Who watches: a job it does not own is sent with its env values hidden.
    who: Principal = OPEN
    pending: deque[Event | None] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False
    #: Jobs this watcher's job criteria admitted (in the snapshot or since): their tasks'
    #: events follow them, even once the job itself has left the view.
    jobs: set[str] = field(default_factory=set)
    #: The caller this watcher is counted against (Hub.max_per_caller); "" for none.
    key: str = ""

    def wants(self, event: Event, job: Job | None) -> bool:
        """Whether the event matches: a job event by the job criteria, a task event by the
        task criteria and its job's (`job` as the view has it, or None once it left)."""
        criteria = self.criteria
        if event.kind == "job":
            ok = event.job is not None and criteria.job_matches(event.job)
            if ok and event.op != "archive":
                self.jobs.add(event.job_id)
            else:
                self.jobs.discard(event.job_id)
            return ok
        if event.task is None or not criteria.task_matches(event.task):
            return False
        if not criteria.job_checks:
            return True
        if job is not None:
            return criteria.job_matches(job)
        return event.job_id in self.jobs

    def offer(self, event: Event, job: Job | None = None) -> None:
        if self.dropped or not (self.criteria.empty or self.wants(event, job)):
            return
        if len(self.pending) >= self.size:
            self.dropped = True
            self.pending.clear()
            self.pending.append(None)
        else:
            self.pending.append(event)
        self.ready.set()

    def text(self, event: Event) -> str:
        """The event as this watcher may read it: the shared text, unless it is a job
        whose env values the watcher may not see."""
        if event.kind != "job" or self.who.is_admin:
            return event_text(event)
        shown = job_doc(self.who, event.body)
        if shown is event.body:
            return event_text(event)
        return sse(event.kind, {"op": event.op, "job": shown}, event.seq)

    def take(self) -> list[Event | None]:
        """Everything waiting (a None last when the watcher was dropped)."""
        out = list(self.pending)
        self.pending.clear()
        self.ready.clear()
        return out


@dataclass
class Hub:
    """Fan-out of the view's events to watchers, with a bounded history for resumes."""

    view: ActiveView
    queue_size: int
    history_size: int
    watchers: set[Watcher] = field(default_factory=set)
    history: deque[Event] = field(default_factory=deque)
    floor: int = -1  # events after this seq are all in history (or none happened)
    linger_sec: float = LINGER_SEC
    #: A snapshot entry's text by document identity (the document is kept with it, so its
    #: id is not reused while the entry lives).
    _put_texts: dict[int, tuple[dict[str, Any], str]] = field(default_factory=dict)
    #: Watchers one caller may hold at once (0: no bound); beyond, a 429.
    max_per_caller: int = 0
    slots: CallerSlots = field(init=False)

    def __post_init__(self) -> None:
        self.view.listeners.append(self.publish)
        self.slots = CallerSlots(
            "observe streams",
            per_caller=self.max_per_caller,
            per_caller_rule="observe_max_per_caller",
        )

    def publish(self, event: Event) -> None:
        if self.floor < 0:
            self.floor = max(0, event.seq - 1)
        self.history.append(event)
        while len(self.history) > self.history_size:
            self.floor = self.history.popleft().seq
        job = self.view.jobs.get(event.job_id) if event.kind == "task" else None
        for watcher in list(self.watchers):
            watcher.offer(event, job)

    def subscribe(
        self,
        criteria: Criteria,
        last_id: int | None,
        who: Principal = OPEN,
        key: str = "",
    ) -> tuple[Watcher, Iterable[str]]:
        """Register a watcher and return what to send first: missed events when resuming,
        else the snapshot and SnapshotEnd. No await in here: nothing can slip between the
        first part and the live events."""
        watcher = self.watch(criteria, who, key)
        floor = self.floor if self.floor >= 0 else self.view.seq
        if last_id is not None and floor <= last_id <= self.view.seq:
            missed = [
                e
                for e in self.history
                if e.seq > last_id
                and (criteria.empty or watcher.wants(e, self.view.jobs.get(e.job_id)))
            ]
            return watcher, [watcher.text(e) for e in missed]
        view = self.view
        end = sse("SnapshotEnd", {"seq": view.seq}, view.seq)
        return watcher, self._written(self.snapshot(watcher), end, who)

    def _written(
        self, entries: list[tuple[str, dict[str, Any]]], end: str, who: Principal
    ) -> Iterator[str]:
        """The snapshot's text, a chunk at a time, then `end`; job documents as `who` may
        read them (env values hidden from non-owners)."""
        for i in range(0, len(entries), SNAPSHOT_CHUNK):
            chunk = entries[i : i + SNAPSHOT_CHUNK]
            yield "".join(self._put_text(kind, body, who) for kind, body in chunk)
        yield end

    def _put_text(self, kind: str, body: dict[str, Any], who: Principal) -> str:
        """A snapshot entry's text, made once per view document and shared by every
        watcher that may read it whole; a redacted copy's text is this watcher's only."""
        shown = job_doc(who, body) if kind == "job" else body
        if shown is not body:
            return sse(kind, {"op": "put", kind: shown})
        cached = self._put_texts.get(id(body))
        if cached is not None and cached[0] is body:
            return cached[1]
        if len(self._put_texts) > 2 * (len(self.view.jobs) + len(self.view.tasks)) + 1000:
            self._put_texts.clear()  # documents replaced since: let them go
        text = sse(kind, {"op": "put", kind: body})
        self._put_texts[id(body)] = (body, text)
        return text

    def watch(self, criteria: Criteria, who: Principal = OPEN, key: str = "") -> Watcher:
        """A new watcher for `who`; `key` (auth.caller_key) counts the caller's watchers
        against `max_per_caller`, refused with a 429 beyond it."""
        self.slots.take(key, who.name)
        watcher = Watcher(criteria, self.queue_size, who, key=key)
        self.watchers.add(watcher)
        return watcher

    def snapshot(self, watcher: Watcher) -> list[tuple[str, dict[str, Any]]]:
        """Every active job and task the watcher's criteria match, as (kind, the view's
        document), each job followed by its tasks; the watcher learns which jobs it was
        given. No await in here: the snapshot and the live events meet exactly."""
        criteria, view = watcher.criteria, self.view
        out: list[tuple[str, dict[str, Any]]] = []
        for job_id, job in view.jobs.items():
            if not criteria.job_matches(job):
                continue
            watcher.jobs.add(job_id)
            out.append(("job", view.job_json[job_id]))
            for task_id in view.tasks_of.get(job_id, ()):
                if criteria.task_matches(view.tasks[task_id]):
                    out.append(("task", view.task_json[task_id]))
        return out

    def unsubscribe(self, watcher: Watcher) -> None:
        if watcher not in self.watchers:
            return
        self.watchers.discard(watcher)
        self.slots.give(watcher.key)


def payload(event: Event) -> dict[str, Any]:
    return {"op": event.op, event.kind: event.body}


def event_text(event: Event) -> str:
    """The event as SSE text, made once however many watchers send it."""
    if event.text is None:
        event.text = sse(event.kind, payload(event), event.seq)
    return event.text


def sse(event: str, data: dict[str, Any], ident: int | None = None) -> str:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


DROPPED = sse("dropped", {"reason": "too slow: over the queue bound; reconnect to resume"})

OBSERVE_DOC = {
    "parameters": query_parameters(OBSERVE_FILTERS),
    "responses": {
        "200": {
            "description": "Server-Sent Events: snapshot, SnapshotEnd, then changes.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
}


@router.get("/jobs/observe", response_class=StreamingResponse, openapi_extra=OBSERVE_DOC)
async def observe(request: Request) -> StreamingResponse:
    """Watch active jobs and tasks: a snapshot, `SnapshotEnd`, then live changes."""
    criteria = Criteria.parse(dict(request.query_params), OBSERVE_FILTERS)
    raw_last = request.headers.get("last-event-id", "").strip()
    last_id = decimal(raw_last)
    await view_of(request).refresh()
    hub: Hub = request.app.state.hub
    keepalive = request.app.state.settings.observe_keepalive_sec
    watcher, first = hub.subscribe(criteria, last_id, principal_of(request), caller_key(request))

    async def stream() -> AsyncIterator[str]:
        try:
            for item in first:
                yield item
            loop = asyncio.get_running_loop()
            while True:
                if not watcher.pending:
                    timer = loop.call_later(keepalive, watcher.ready.set)
                    await watcher.ready.wait()
                    timer.cancel()
                    if not watcher.pending:
                        watcher.ready.clear()
                        yield ": keep-alive\n\n"
                        continue
                    # Let a burst gather: each watcher then writes a few times a second
                    # however fast jobs change, instead of once per change (with many
                    # watchers, those writes would crowd out the API's requests).
                    await asyncio.sleep(hub.linger_sec)
                events = watcher.take()
                texts = [DROPPED if e is None else watcher.text(e) for e in events]
                yield "".join(texts)
                if events and events[-1] is None:
                    return
        finally:
            hub.unsubscribe(watcher)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
