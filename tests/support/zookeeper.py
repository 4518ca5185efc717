"""Fixtures for tests against the real ZooKeeper server that scripts/zookeeper.sh starts.

The root conftest.py registers this module as a pytest plugin: tests name the fixtures as
arguments and import nothing.

- `zookeeper` (session): starts the server once (or uses `TITUS_TEST_ZOOKEEPER=host:port`)
  and yields the connect string.
- `zk_root` (function): a root path of its own for each test, deleted afterwards, so tests
  never see each other's leaders, agents or wakes on the shared server.
- `zk_coordinator` (function): a factory of ZooKeeperCoordinators on that root with a short
  session timeout; every one it made is closed at the end of the test.

Plus the tools to break a session the way the network and the server do: `ZkProxy` cuts
and restores the TCP connection (SUSPENDED, and LOST once the server expires the session),
`expire_session` ends a live session from a second client (what the server does to a
session it has not heard from). `WAIT_SEC` bounds how long a test waits (with
tests.support.poll.wait_until) for what a watch makes true.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from tests.support.setup_script import run_setup_script
from titus.coord.zookeeper import ZooKeeperCoordinator

# Short enough that session loss takes seconds in tests, long enough for a loaded machine.
TEST_SESSION_TIMEOUT = 2.0
# How long a test waits for a watch or a session change: several session timeouts.
WAIT_SEC = 10.0


def start_zookeeper() -> str:
    """Run scripts/zookeeper.sh (idempotent) and return the connect string it prints."""
    override = os.environ.get("TITUS_TEST_ZOOKEEPER")
    if override:
        return override
    address = run_setup_script("zookeeper.sh", "ZOOKEEPER", timeout=300)
    if address is None:
        raise RuntimeError("scripts/zookeeper.sh printed no address")
    return address


@pytest.fixture(scope="session")
def zookeeper() -> str:
    try:
        return start_zookeeper()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"cannot start ZooKeeper: {exc}")


@pytest.fixture
def zk_root(zookeeper: str, request: pytest.FixtureRequest) -> Iterator[str]:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:60]
    root = f"/titus-test/{name}-{uuid.uuid4().hex[:8]}"
    yield root
    client = KazooClient(hosts=zookeeper, timeout=5.0)
    client.start(timeout=10)
    try:
        client.delete(root, recursive=True)
    except Exception:  # ephemeral nodes of a client still closing: they go on their own
        pass
    finally:
        client.stop()
        client.close()


@pytest.fixture
def zk_coordinator(zookeeper: str, zk_root: str) -> Iterator[Callable[..., ZooKeeperCoordinator]]:
    made: list[ZooKeeperCoordinator] = []

    def make(hosts: str | None = None, **kwargs: Any) -> ZooKeeperCoordinator:
        kwargs.setdefault("session_timeout", TEST_SESSION_TIMEOUT)
        coordinator = ZooKeeperCoordinator(hosts or zookeeper, zk_root, **kwargs)
        made.append(coordinator)
        return coordinator

    yield make
    for coordinator in made:
        coordinator.close()


def expire_session(
    zookeeper: str, client: KazooClient, session: tuple[int, bytes] | None = None
) -> None:
    """End `client`'s session on the server, as the server does when it times out.

    A second client joins the same session (id and password) and closes it; the first
    client's connection is dropped and, when it reconnects, it is told the session expired.
    `session`: the client's (id, password), read earlier, when it has no connection now.
    """
    session_id, password = session or client.client_id
    intruder = KazooClient(hosts=zookeeper, client_id=(session_id, password), timeout=5.0)
    intruder.start(timeout=10)
    intruder.stop()
    intruder.close()


class PrivateZooKeeper:
    """A second ZooKeeper server of a test's own (port, data and logs under `home`), started
    by the same script, that the test may kill -9 and start again without touching the
    server every other test shares. Its data survives a restart, as a real server's does."""

    def __init__(self, home: Path, port: int, heap: str = "128m") -> None:
        self.home = home
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self._env = {
            "TITUS_ZK_PORT": str(port),
            "TITUS_ZK_HOME": str(home),
            "TITUS_ZK_LOG_DIR": str(home / "logs"),
            "TITUS_ZK_HEAP": heap,
        }

    @property
    def _pid_file(self) -> Path:
        return Path(f"/run/titus/zookeeper-{self.port}.pid")  # where the script puts it

    def start(self) -> None:
        run_setup_script("zookeeper.sh", "ZOOKEEPER", timeout=120, env=self._env)

    def kill(self) -> None:
        """kill -9 the server, and wait until it is gone."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self._pid_file.unlink(missing_ok=True)


class ZkProxy:
    """A TCP relay between clients and ZooKeeper that a test can cut and restore.

    Cutting closes every relayed connection and refuses new ones (accepted, then closed at
    once) as a network partition between client and server would; the server keeps the
    sessions until their timeout runs out.
    """

    def __init__(self, upstream: str):
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.hosts = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._cut = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="zk-proxy").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = self._cut or self._closed
            if refuse:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._pairs.append((conn, upstream))
            threading.Thread(target=self._relay, args=(conn, upstream), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            self._drop(a, b)

    def _drop(self, a: socket.socket, b: socket.socket) -> None:
        for sock in (a, b):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            if (a, b) in self._pairs:
                self._pairs.remove((a, b))

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            pairs = list(self._pairs)
        for a, b in pairs:
            self._drop(a, b)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()


@pytest.fixture
def zk_proxy(zookeeper: str) -> Iterator[ZkProxy]:
    proxy = ZkProxy(zookeeper)
    yield proxy
    proxy.close()
