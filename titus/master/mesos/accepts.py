"""ACCEPT calls sent several at once, each on its own connection to the Mesos master.

A big offer cycle ends in one ACCEPT per agent used (Mesos accepts offers of one agent per
call): 625 calls for 5,000 tasks on 8-task hosts. Sent one after the other, each waits a
round trip and the master's answer before the next is even encoded, so the calls take
seconds while both sides sit idle in turn. ACCEPTs of different offers do not depend on each
other, so up to `connections` are in flight at once, each encoded on its sender's thread
(not the leader's).

Every other call keeps its order against them: the calls worker waits until every ACCEPT
in flight was answered (`drain`) before it sends anything else, so a KILL or RECONCILE sent
after a launch never overtakes it (Mesos would answer TASK_LOST for a task it does not know
yet, and then launch it).

A connection sets TCP_NODELAY: a call is written as headers and a body, and with Nagle's
algorithm the body's last segment can wait for the master's delayed acknowledgement of the
headers (tens of milliseconds per call). Answers are read as pymesos reads them; a call
that raised or was refused (not 2xx) did not reach Mesos for sure, and `on_failure` runs, as
for the calls pymesos sends.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("titus.master.mesos")

#: ACCEPTs in flight at once, each on its own connection.
ACCEPT_CONNECTIONS = 4
#: Seconds a call may take (pymesos's own timeout for calls).
CALL_TIMEOUT = 10.0
#: The scheduler API's path on the master.
SCHEDULER_PATH = "/api/v1/scheduler"


@dataclass(frozen=True)
class Accept:
    """One ACCEPT with LAUNCH: the offers (of one agent), the task infos and the filters."""

    offer_ids: list[dict[str, str]]
    task_infos: list[dict[str, Any]]
    filters: dict[str, Any]

    def body(self, framework_id: str) -> dict[str, Any]:
        return {
            "type": "ACCEPT",
            "framework_id": {"value": framework_id},
            "accept": {
                "offer_ids": self.offer_ids,
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": self.task_infos}}],
                "filters": self.filters,
            },
        }


@dataclass(frozen=True)
class Session:
    """Where and as whom to send: the master (host:port), the stream id, the framework id."""

    master: str
    stream_id: str
    framework_id: str


@dataclass(frozen=True)
class _Job:
    session: Session
    accept: Accept
    what: str
    on_failure: Callable[[], None] | None


class AcceptSender:
    """Up to `connections` ACCEPTs in flight; `drain` waits until all are answered."""

    def __init__(self, connections: int = ACCEPT_CONNECTIONS, timeout: float = CALL_TIMEOUT):
        self._timeout = timeout
        self._slots = threading.Semaphore(max(connections, 1))
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._in_flight = 0
        self._idle = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"mesos-accept-{i}", daemon=True)
            for i in range(max(connections, 1))
        ]
        for t in self._threads:
            t.start()

    def send(
        self,
        session: Session,
        accept: Accept,
        what: str,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        """Hand the ACCEPT to a free connection; waits while all of them are busy."""
        self._slots.acquire()
        with self._idle:
            self._in_flight += 1
        self._jobs.put(_Job(session, accept, what, on_failure))

    def drain(self) -> None:
        """Wait until every ACCEPT handed over was answered (or failed)."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0)

    def close(self, wait: float = 5.0) -> None:
        """Stop the senders once the ACCEPTs handed over are done (waiting `wait` seconds
        at most: a call still in flight then ends on its own timeout)."""
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + wait
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        conn: http.client.HTTPConnection | None = None
        session: Session | None = None
        while True:
            job = self._jobs.get()
            if job is None:
                break
            try:
                # a connection serves one subscription: one kept from an earlier one may
                # lead to a master that is gone, and a call is never sent twice (a second
                # ACCEPT of the same offers would lose tasks the first one launched)
                if conn is None or session != job.session:
                    if conn is not None:
                        conn.close()
                    session = job.session
                    conn = _connect(session.master, self._timeout)
                _post(conn, job.session, job.accept.body(job.session.framework_id))
            except Exception as exc:
                log.warning("Mesos call %s failed: %s", job.what, exc)
                if conn is not None:
                    conn.close()
                conn = None
                if job.on_failure is not None:
                    try:
                        job.on_failure()
                    except Exception:
                        log.exception("handling the failure of %s failed", job.what)
            finally:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()
                self._slots.release()
        if conn is not None:
            conn.close()


def _connect(master: str, timeout: float) -> http.client.HTTPConnection:
    host, _, port = master.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.connect()
    if conn.sock is not None:
        with contextlib.suppress(OSError):
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _post(conn: http.client.HTTPConnection, session: Session, body: dict[str, Any]) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Mesos-Stream-Id": session.stream_id}
    conn.request("POST", SCHEDULER_PATH, body=data, headers=headers)
    resp = conn.getresponse()
    answer = resp.read()
    if resp.status < 200 or resp.status >= 300:
        raise RuntimeError(f"ACCEPT refused: {resp.status} {answer[:200]!r}")
