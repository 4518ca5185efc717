"""A raw HTTP client of the scheduler API, for tests that must see the wire: status codes,
headers and every event, without a framework library deciding what to do with them."""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import socket
import threading
import time
from typing import Any

from tests.support.mesos import recordio

PATH = "/api/v1/scheduler"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def post(
    address: str, body: Any, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, str, dict[str, str]]:
    """One request on a fresh connection: (status, body text, headers)."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request(method, PATH, body=data, headers=JSON_HEADERS if headers is None else headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), dict(resp.getheaders())
    finally:
        conn.close()


def framework_info(name: str = "test", **extra: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"user": "root", "name": name, "failover_timeout": 60.0}
    info.update(extra)
    return info


class Subscription:
    """A SUBSCRIBE stream: events are read by a thread and queued for `next`."""

    def __init__(
        self,
        address: str,
        info: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        self.address = address
        host, port = address.rsplit(":", 1)
        self._conn = http.client.HTTPConnection(host, int(port), timeout=30)
        call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if "id" in info:
            call["framework_id"] = info["id"]
        self._conn.request(
            "POST", PATH, body=json.dumps(call).encode(), headers=headers or JSON_HEADERS
        )
        self.response = self._conn.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.stream_id = self.headers.get("mesos-stream-id")
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.ended = threading.Event()
        self.framework_id: str | None = None
        self.refusal: dict[str, Any] | None = None
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
            first = self.next(timeout=10)
            if first["type"] == "SUBSCRIBED":
                self.framework_id = first["subscribed"]["framework_id"]["value"]
            else:  # e.g. ERROR "Framework has been removed", then the stream ends
                self.refusal = first
        else:
            self.error = self.response.read().decode()

    def _read(self) -> None:
        decoder = recordio.Decoder()
        try:
            while True:
                data = self.response.read1(65536)
                if not data:
                    break
                for event in decoder.feed(data):
                    self.events.put(event)
        except Exception:  # closed under us, or a broken stream: either way it ended
            pass
        finally:
            self.ended.set()
            self.events.put(None)

    def next(
        self,
        type_: str | None = None,
        timeout: float = 5.0,
        skip_others: bool = True,
    ) -> dict[str, Any]:
        """The next event (of `type_`, skipping others when `skip_others`); HEARTBEATs are
        skipped unless asked for. Raises TimeoutError, or EOFError when the stream ended."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {type_ or 'event'} within {timeout}s") from None
            if event is None:
                self.events.put(None)
                raise EOFError("event stream ended")
            self.seen.append(event)
            if type_ is None or event["type"] == type_:
                if event["type"] == "HEARTBEAT" and type_ is None:
                    continue
                return event
            if not skip_others and event["type"] != "HEARTBEAT":
                raise AssertionError(f"expected {type_}, got {event}")

    def call(
        self, type_: str, body: dict[str, Any] | None = None, **headers: str
    ) -> tuple[int, str]:
        """A call for this framework on a separate connection, as the API requires."""
        call: dict[str, Any] = {"type": type_, "framework_id": {"value": self.framework_id}}
        if body is not None:
            call[type_.lower()] = body
        hdrs = {"Content-Type": "application/json"}
        if self.stream_id is not None:
            hdrs["Mesos-Stream-Id"] = self.stream_id
        hdrs.update(headers)
        status, text, _ = post(self.address, call, hdrs)
        return status, text

    def close(self) -> None:
        """Drop the connection, as a crashed scheduler would."""
        raw = getattr(getattr(self.response, "fp", None), "raw", None)
        sock = getattr(raw, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._conn.close()
