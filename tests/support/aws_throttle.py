"""A proxy in front of the moto server that throttles, as AWS does under load: every
`every`-th call gets the service's throttling error, the rest are forwarded. The error is
in the caller's protocol (EC2's XML, or the JSON of Application Auto Scaling and the
like), so botocore reads it as the throttle it is and its retries are what is tested."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.aws_faults import answer, forward

EC2_THROTTLE = (
    b"<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
    b"<Message>Request limit exceeded.</Message></Error></Errors>"
    b"<RequestID>x</RequestID></Response>"
)
JSON_THROTTLE = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'


class ThrottlingProxy:
    def __init__(self, upstream: str, every: int = 4):
        self.upstream = upstream
        self.every = every
        self.throttled = 0
        self.calls = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not proxy._throttle():
                    forward(self, proxy.upstream, body)
                elif "json" in self.headers.get("Content-Type", ""):
                    answer(self, 400, JSON_THROTTLE, "application/x-amz-json-1.1")
                else:
                    answer(self, 503, EC2_THROTTLE, "text/xml")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _throttle(self) -> bool:
        with self._lock:
            self.calls += 1
            throttle = self.calls % self.every == 0
            self.throttled += throttle
            return throttle

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
