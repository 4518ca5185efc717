"""The metadata service's answers, over HTTP on a loopback socket: IMDSv2 token rules,
the task's own identity, the allow-list of paths, and bounds on what a caller sends.

The server is the real one; only the socket is on loopback instead of inside a
container's namespace (tests/integration/test_agent_metadata.py does that)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from titus.agent.metadata.server import MAX_CONNECTIONS_PER_TASK, MetadataServer
from titus.agent.metadata.service import MetadataService, TaskIdentity
from titus.agent.metadata.tokens import TokenSigner
from titus.model.names import TaskContextKey

TTL = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "x-aws-ec2-metadata-token"


def listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


@pytest.fixture
def serve() -> Iterator[object]:
    server = MetadataServer(MetadataService(TokenSigner(b"k" * 32), None))
    clients: list[httpx.Client] = []

    def start(task_id: str, require_token: bool = False) -> httpx.Client:
        sock = listening()
        port = sock.getsockname()[1]
        context = {TaskContextKey.CONTAINER_IP: "100.64.0.9"}
        identity = TaskIdentity(task_id, context, "zone-b", "us-east-1", 0.0, require_token)
        server.serve(identity, sock)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for task_id in server.serving():
        server.stop_serving(task_id)


def token(client: httpx.Client, ttl: str = "60") -> str:
    answer = client.put("/latest/api/token", headers={TTL: ttl})
    assert answer.status_code == 200, answer.text
    assert answer.headers[TTL] == ttl
    return answer.text


def test_a_task_sees_its_own_identity(serve) -> None:
    client = serve("task-one")
    assert client.get("/latest/meta-data/instance-id").text == "task-one"
    assert client.get("/latest/meta-data/local-ipv4").text == "100.64.0.9"
    assert client.get("/latest/meta-data/placement/availability-zone").text == "zone-b"
    doc = client.get("/latest/dynamic/instance-identity/document").json()
    assert doc["instanceId"] == "task-one"
    assert doc["privateIp"] == "100.64.0.9"
    assert doc["availabilityZone"] == "zone-b" and doc["region"] == "us-east-1"
    assert "instance-id" in client.get("/latest/meta-data/").text.splitlines()


def test_without_a_role_the_service_says_so_plainly(serve) -> None:
    client = serve("task-one")
    listing = client.get("/latest/meta-data/iam/security-credentials/")
    assert listing.status_code == 404
    assert "no IAM role is available" in listing.text
    assert client.get("/latest/meta-data/iam/info").status_code == 404


def test_imdsv2_tokens_work_and_bad_ones_are_refused(serve) -> None:
    client = serve("task-one")
    good = token(client)
    assert client.get("/latest/meta-data/instance-id", headers={TOKEN: good}).status_code == 200
    for ttl in ("0", "21601", "-5", "ten", ""):
        assert client.put("/latest/api/token", headers={TTL: ttl}).status_code == 400, ttl
    assert client.put("/latest/api/token").status_code == 400
    forwarded = client.put("/latest/api/token", headers={TTL: "60", "X-Forwarded-For": "1.2.3.4"})
    assert forwarded.status_code == 403
    assert client.get("/latest/api/token").status_code == 405
    for bad in ("nonsense", good[:-2] + "xx", good + "." + good, "a" * 5000):
        answer = client.get("/latest/meta-data/instance-id", headers={TOKEN: bad})
        assert answer.status_code == 401, bad[:20]


def test_a_token_of_one_task_is_worthless_to_another(serve) -> None:
    first, second = serve("task-one"), serve("task-two")
    theirs = token(first)
    answer = second.get("/latest/meta-data/instance-id", headers={TOKEN: theirs})
    assert answer.status_code == 401


def test_a_task_that_requires_tokens_refuses_requests_without_one(serve) -> None:
    client = serve("task-one", require_token=True)
    assert client.get("/latest/meta-data/instance-id").status_code == 401
    good = token(client)
    assert client.get("/latest/meta-data/instance-id", headers={TOKEN: good}).text == "task-one"


def test_only_the_allow_listed_paths_are_served(serve) -> None:
    client = serve("task-one")
    assert client.get("/latest/meta-data/ami-id").status_code == 404
    assert client.get("/latest/meta-data/instance-type").status_code == 404
    for path in (
        "/latest/user-data",
        "/latest/meta-data/public-keys/0/openssh-key",
        "/latest/meta-data/network/interfaces/macs/",
        "/2021-01-03/meta-data/iam/security-credentials/",
        "/",
    ):
        assert client.get(path).status_code == 403, path
    assert client.post("/latest/meta-data/instance-id").status_code == 405


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_oversized_and_malformed_requests_get_clear_errors(serve) -> None:
    client = serve("task-one")
    port = int(str(client.base_url).rsplit(":", 1)[1].strip("/"))
    assert raw(port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 431")
    many = b"".join(b"X-%d: y\r\n" % i for i in range(100))
    assert raw(port, b"GET / HTTP/1.1\r\n" + many + b"\r\n").startswith(b"HTTP/1.1 431")
    assert raw(port, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400")
    climb = b"GET /latest/meta-data/iam/security-credentials/../../instance-id HTTP/1.1\r\n"
    climb += b"Connection: close\r\n\r\n"
    assert raw(port, climb).startswith(b"HTTP/1.1 403")
    body = b"PUT /latest/api/token HTTP/1.1\r\nContent-Length: 999999\r\n\r\n"
    assert raw(port, body).startswith(b"HTTP/1.1 413")
    chunked = b"PUT /latest/api/token HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert raw(port, chunked).startswith(b"HTTP/1.1 411")
    # the service still answers after all of that
    assert client.get("/latest/meta-data/instance-id").text == "task-one"


def test_one_task_cannot_hold_more_than_its_share_of_connections(serve) -> None:
    client = serve("task-one")
    port = int(str(client.base_url).rsplit(":", 1)[1].strip("/"))
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS_PER_TASK)]
    try:
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        extra.sendall(b"GET /latest/meta-data/instance-id HTTP/1.1\r\n\r\n")
        try:
            answer = extra.recv(100)
        except ConnectionResetError:
            answer = b""
        assert answer == b""  # closed at once, unanswered
        extra.close()
    finally:
        for conn in held:
            conn.close()
    # once they are gone, new connections are served again
    for _ in range(50):
        try:
            if client.get("/latest/meta-data/instance-id").text == "task-one":
                break
        except httpx.HTTPError:
            continue
    assert client.get("/latest/meta-data/instance-id").text == "task-one"
