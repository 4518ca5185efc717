"""Rate-limit refusals as a runaway caller meets them: decided before its body is read or
parsed, its reads counted too, and logged without a line per refusal."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from tests.integration.test_api_app import api, service
from tests.integration.test_api_observe import serving

ONE_CREATE = [
    {"name": "create", "endpoint": "POST /api/v3/jobs", "capacity": 1, "refill_per_sec": 0.001},
    {"name": "reads", "endpoint": "GET /api/*", "capacity": 2, "refill_per_sec": 0.001},
]


def test_a_caller_over_its_limit_gets_429_before_sending_its_body(tmp_path: Path) -> None:
    """The refusal comes while the caller still owes the server half a megabyte of body:
    nothing of it is waited for, read or parsed, and nothing is stored."""
    with serving(tmp_path, rate_limit_buckets=ONE_CREATE) as (url, store):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as first:
            body = json.dumps(service()).encode()
            first.sendall(
                b"POST /api/v3/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert first.recv(65536).startswith(b"HTTP/1.1 202")
        with socket.create_connection((host, int(port)), timeout=10) as runaway:
            runaway.sendall(
                b"POST /api/v3/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 500000\r\n\r\n{"  # and then nothing more
            )
            # times out (fails) if the server waits for the body
            head, text = read_response(runaway)
        assert head.startswith(b"HTTP/1.1 429")
        assert b"retry-after:" in head.lower()
        assert "rate limit of bucket 'create'" in json.loads(text)["message"]
        assert store.count_active_jobs() == 1


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(status line and headers, body) of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection without an answer"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-answer"
        body += chunk
    return head, body


def test_a_refused_body_is_never_parsed_and_reads_count_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Over its limit, even a malformed body gets the 429 (it is not looked at), reads
    spend their own bucket, and fifty refusals make one log line, not fifty."""
    with api(tmp_path, rate_limit_buckets=ONE_CREATE) as (http, store):
        assert http.post("/api/v3/jobs", json=service()).status_code == 202
        caplog.set_level(logging.INFO, logger="titus.api.gate")
        for _ in range(50):
            r = http.post(
                "/api/v3/jobs", content=b'{"owner": ', headers={"content-type": "application/json"}
            )
            assert r.status_code == 429 and "create" in r.json()["message"]
        assert [http.get("/api/v3/jobs").status_code for _ in range(3)] == [200, 200, 429]
        assert store.count_active_jobs() == 1
    refusals = [r for r in caplog.records if "rate limited" in r.getMessage()]
    assert 1 <= len(refusals) <= 3  # the first per caller and bucket, then a summary
