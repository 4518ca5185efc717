"""HTTP plumbing shared by the master and agent doubles: a threaded HTTP/1.1 server that can
answer plain requests and hold chunked RecordIO event streams open.

The standard library is enough and keeps the double free of the event loops the code under
test may use. Each connection has its own thread; an event stream is written by the thread of
its connection from a queue that any thread may fill, so events keep the order they were
produced in under the double's lock.
"""

from __future__ import annotations

import contextlib
import json
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.mesos import recordio

_END = object()
_ABORT = object()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any) -> Response:
        return cls(status, json.dumps(payload), {"Content-Type": "application/json"})


class EventStream:
    """One open chunked RecordIO response.

    `send` may be called from any thread; the connection's own thread writes the records in
    `serve`, adds a HEARTBEAT every `heartbeat_interval` seconds, and notices the peer going
    away (EOF on the socket) within a few tens of milliseconds, so that the double marks a
    framework or executor disconnected about as fast as a real master does.
    """

    def __init__(
        self,
        heartbeat_interval: float | None,
        on_close: Callable[[EventStream], None] | None = None,
        fragment: bool = False,
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.on_close = on_close
        self.fragment = fragment
        self.closed = threading.Event()
        self._queue: queue.Queue[object] = queue.Queue()
        self._sock: socket.socket | None = None

    def send(self, event: dict[str, Any]) -> None:
        if not self.closed.is_set():
            self._queue.put(recordio.encode(event))

    def end(self) -> None:
        """Finish the response cleanly (terminating chunk), as the master does on teardown."""
        self._queue.put(_END)

    def abort(self) -> None:
        """Drop the connection without a terminating chunk, as a crashing master would."""
        self._queue.put(_ABORT)
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _write_record(self, wfile: Any, record: bytes) -> None:
        if self.fragment and len(record) > 2:
            # A record split over two chunks: clients must reassemble across chunk borders.
            half = len(record) // 2
            pieces = [record[:half], record[half:]]
        else:
            pieces = [record]
        wfile.write(b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces))

    def _peer_closed(self, sock: socket.socket) -> bool:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def serve(self, sock: socket.socket, wfile: Any) -> None:
        self._sock = sock
        interval = self.heartbeat_interval
        next_beat = time.monotonic() + interval if interval else None
        try:
            while True:
                timeout = 0.05
                if next_beat is not None:
                    timeout = max(0.0, min(timeout, next_beat - time.monotonic()))
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    item = None
                if item is _ABORT:
                    break
                if item is _END:
                    wfile.write(b"0\r\n\r\n")
                    break
                if isinstance(item, bytes):
                    self._write_record(wfile, item)
                if next_beat is not None and interval and time.monotonic() >= next_beat:
                    self._write_record(wfile, recordio.encode({"type": "HEARTBEAT"}))
                    next_beat += interval
                if item is None and self._peer_closed(sock):
                    break
        except OSError:
            pass
        finally:
            self.closed.set()
            if self.on_close is not None:
                self.on_close(self)


@dataclass
class StreamResponse:
    """Answer 200 with a chunked body fed by `stream`."""

    stream: EventStream
    headers: dict[str, str] = field(default_factory=dict)


App = Callable[[Request], "Response | StreamResponse"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            result = self.server.app(Request(self.command, path, headers, body))
        except Exception as exc:  # the double's own bug: answer like a crashed handler would
            result = Response(500, f"{type(exc).__name__}: {exc}")
            self.server.errors.append(exc)
        if isinstance(result, StreamResponse):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            for name, value in result.headers.items():
                self.send_header(name, value)
            self.end_headers()
            result.stream.serve(self.connection, self.wfile)
            self.close_connection = True
            return
        data = result.body.encode() if isinstance(result.body, str) else result.body
        self.send_response(result.status)
        headers = {"Content-Type": "text/plain; charset=utf-8", **result.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


class Server(ThreadingHTTPServer):
    """Threaded server on a loopback port that can cut every open connection at once.

    Its accepting thread sleeps until a connection comes (no polling): a double with a
    thousand agents has a thousand of these, and threads waking to poll would take the
    interpreter from the threads doing the work. `close` wakes it with a connection of
    its own."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(
        self, host: str, port: int, app: App, errors: list[BaseException] | None = None
    ) -> None:
        self.app = app
        # Exceptions the app raised (answered 500): a bug in the double, shown by the fixture.
        self.errors: list[BaseException] = [] if errors is None else errors
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__((host, port), _Handler)
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": None}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def _wake(self) -> None:
        """Connect to the server, so its accepting thread looks at the shutdown request."""
        with (
            contextlib.suppress(OSError),
            socket.create_connection((str(self.server_address[0]), self.port), timeout=1),
        ):
            pass

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._conns_lock:
            if alive:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def close(self) -> None:
        """Stop listening and reset every open connection (streams and keep-alive ones)."""
        stopping = threading.Thread(target=self.shutdown, daemon=True)
        stopping.start()
        while stopping.is_alive():
            self._wake()
            stopping.join(0.05)
        self.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
