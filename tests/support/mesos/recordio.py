"""RecordIO, the framing of Mesos v1 event streams: `<decimal length>\\n<json>` repeated.

Kept apart from the double so that the tests' raw HTTP client decodes streams with the same
rules a real client must follow: a record may span chunks and a chunk may hold several records.
"""

from __future__ import annotations

import json
from typing import Any


def encode(event: dict[str, Any]) -> bytes:
    """Frame one event as the master writes it."""
    data = json.dumps(event, separators=(",", ":")).encode()
    return b"%d\n%s" % (len(data), data)


class Decoder:
    """Incremental decoder: feed it bytes as they arrive, get back the complete records."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        records: list[dict[str, Any]] = []
        while True:
            newline = self._buf.find(b"\n")
            if newline < 0:
                if len(self._buf) > 20 or not self._buf.isdigit() and self._buf:
                    raise ValueError(f"bad RecordIO length prefix: {self._buf[:40]!r}")
                return records
            prefix = self._buf[:newline]
            if not prefix.isdigit():
                raise ValueError(f"bad RecordIO length prefix: {prefix[:40]!r}")
            length = int(prefix)
            end = newline + 1 + length
            if len(self._buf) < end:
                return records
            records.append(json.loads(self._buf[newline + 1 : end]))
            self._buf = self._buf[end:]
