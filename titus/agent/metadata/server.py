"""One event loop serving the metadata sockets of every task on the host.

Each task's socket was made in its own network namespace, so the connection's socket
says who calls. HTTP/1.1 with keep-alive, as the SDKs speak it; everything a caller
sends is bounded (request line and headers, a small body, connections per task, idle
time, requests per connection) and parsed in one pass, so a misbehaving container costs
its own connections and nothing more. The loop runs while some task is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from http import HTTPStatus

from titus.agent.metadata.service import MetadataService, Response, TaskIdentity

log = logging.getLogger(__name__)

MAX_LINE = 8192
MAX_HEADERS = 64
MAX_BODY = 4096
MAX_CONNECTIONS_PER_TASK = 16
MAX_REQUESTS_PER_CONNECTION = 1000
IDLE_TIMEOUT_SEC = 10.0


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _Served:
    def __init__(self, identity: TaskIdentity):
        self.identity = identity
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[asyncio.Task[None]] = set()


class MetadataServer:
    def __init__(self, service: MetadataService):
        self.service = service
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._served: dict[str, _Served] = {}
        self._pending = 0  # serve() calls on their way to the loop: it must not stop

    # ---- from the hooks' threads --------------------------------------------------------
    def serve(self, identity: TaskIdentity, sock: socket.socket) -> None:
        """Answer the task's requests on `sock` (a listening socket) until `stop_serving`."""
        loop = self._running_loop()
        try:
            future = asyncio.run_coroutine_threadsafe(self._start(identity, sock), loop)
            future.result(timeout=10)
        finally:
            with self._lock:
                self._pending -= 1

    def stop_serving(self, task_id: str) -> None:
        with self._lock:
            loop = self._loop
        if loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._stop(task_id), loop)
        with contextlib.suppress(Exception):
            future.result(timeout=10)

    def serving(self) -> list[str]:
        return list(self._served)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()
                    loop.close()

                self._thread = threading.Thread(target=run, name="metadata", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            self._pending += 1
            return self._loop

    # ---- on the loop ----------------------------------------------------------------------
    async def _start(self, identity: TaskIdentity, sock: socket.socket) -> None:
        await self._stop(identity.task_id, keep_loop=True)
        served = _Served(identity)

        def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if len(served.connections) >= MAX_CONNECTIONS_PER_TASK:
                writer.close()
                return
            task = asyncio.ensure_future(self._connection(served, reader, writer))
            served.connections.add(task)
            task.add_done_callback(served.connections.discard)

        served.server = await asyncio.start_server(connected, sock=sock, limit=MAX_LINE)
        self._served[identity.task_id] = served

    async def _stop(self, task_id: str, keep_loop: bool = False) -> None:
        served = self._served.pop(task_id, None)
        if served is not None and served.server is not None:
            served.server.close()
            for task in list(served.connections):
                task.cancel()
            with contextlib.suppress(Exception):
                await served.server.wait_closed()
        if not self._served and not keep_loop:
            self._shut_down()

    def _shut_down(self) -> None:
        with self._lock:
            if self._pending or self._served:
                return
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon(loop.stop)

    async def _connection(
        self, served: _Served, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                try:
                    request = await asyncio.wait_for(_read_request(reader), IDLE_TIMEOUT_SEC)
                except _BadRequest as e:
                    await _write(writer, "GET", Response(e.status, str(e)), close=True)
                    return
                if request is None:
                    return
                method, path, headers, close = request
                answer = self.service.handle(served.identity, method, path, headers)
                await _write(writer, method, answer, close)
                if close:
                    return
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            return
        except Exception:
            log.exception("task %s: metadata request failed", served.identity.task_id)
        finally:
            writer.close()


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as e:
        raise _BadRequest(431, "request line or header too long") from e
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise _BadRequest(400, "incomplete request") from e
        return b""


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bool] | None:
    """(method, path, headers, close after) of the next request; None at the end."""
    line = await _read_line(reader)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "malformed request line")
    method, path, version = parts
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        raw = await _read_line(reader)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep or not name.strip():
            raise _BadRequest(400, "malformed header")
        headers[name.strip().lower()] = value.strip()
    else:
        raise _BadRequest(431, "too many headers")
    if "transfer-encoding" in headers:
        raise _BadRequest(411, "a length is required")
    length = headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY:
        raise _BadRequest(413, "body too large")
    if int(length):
        await reader.readexactly(int(length))
    connection = headers.get("connection", "").lower()
    close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
    return method, path, headers, close


async def _write(writer: asyncio.StreamWriter, method: str, answer: Response, close: bool) -> None:
    body = answer.body.encode()
    reason = _reason(answer.status)
    head = [
        f"HTTP/1.1 {answer.status} {reason}",
        f"Content-Type: {answer.content_type}",
        f"Content-Length: {len(body)}",
        "Server: EC2ws",
        f"Connection: {'close' if close else 'keep-alive'}",
        *(f"{k}: {v}" for k, v in answer.headers.items()),
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    if method != "HEAD":
        writer.write(body)
    await writer.drain()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
