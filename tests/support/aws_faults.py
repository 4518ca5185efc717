"""A fault injector in front of the moto server: AWS's error answers, on demand.

moto answers every AssumeRole (it checks neither that the role exists nor its trust), so
the paths where STS refuses or throttles cannot be reached through it alone. This proxy
passes every request through to moto unchanged, except that a queued fault answers the
next calls of the named action with AWS's own error document and status instead.
Point one service at it with `AWS_ENDPOINT_URL_<SERVICE>`.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

ERROR_XML = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
    "<Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
    "<RequestId>fault</RequestId></ErrorResponse>"
)


def answer(handler: BaseHTTPRequestHandler, status: int, payload: bytes, kind: str) -> None:
    """Send an answer of this proxy's own."""
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def forward(handler: BaseHTTPRequestHandler, upstream: str, body: bytes) -> None:
    """Pass the request on to moto unchanged and its answer back."""
    headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
    reply = httpx.post(upstream + handler.path, content=body, headers=headers)
    answer(handler, reply.status_code, reply.content, reply.headers.get("Content-Type", ""))


class AwsFaults:
    def __init__(self, upstream: str):
        self.upstream = upstream
        self._faults: deque[tuple[str, int, str, str]] = deque()
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                action = urllib.parse.parse_qs(body.decode()).get("Action", [""])[0]
                fault = owner._take(action)
                if fault is not None:
                    status, code, message = fault
                    payload = ERROR_XML.format(code=code, message=message).encode()
                    answer(self, status, payload, "text/xml")
                    return
                forward(self, owner.upstream, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> AwsFaults:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, action: str, status: int, code: str, message: str, times: int = 1) -> None:
        """Answer the next `times` calls of `action` with this error."""
        with self._lock:
            self._faults.extend([(action, status, code, message)] * times)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, action: str) -> tuple[int, str, str] | None:
        with self._lock:
            self.calls[action] = self.calls.get(action, 0) + 1
            for i, (name, status, code, message) in enumerate(self._faults):
                if name == action:
                    del self._faults[i]
                    return status, code, message
        return None
