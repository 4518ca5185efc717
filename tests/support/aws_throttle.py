"""A proxy in front of the moto server that throttles, as AWS does under load: every
`every`-th call gets the service's throttling error, the rest are forwarded. The error is
in the caller's protocol (EC2's XML, or the JSON of Application Auto Scaling and the
like), so botocore reads it as the throttle it is and its retries are what is tested."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

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
                if proxy._throttle():
                    json_protocol = "json" in self.headers.get("Content-Type", "")
                    error = JSON_THROTTLE if json_protocol else EC2_THROTTLE
                    self.send_response(400 if json_protocol else 503)
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = httpx.post(proxy.upstream + self.path, content=body, headers=headers)
                self.send_response(answer.status_code)
                for name in ("Content-Type", "x-amzn-RequestId"):
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

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
