"""A network namespace of the suite's own, so one agent can be cut off from the master.

The agent runs inside the namespace (`ip netns exec`) behind a veth pair; the master
reaches it over the veth, and it reaches ZooKeeper (listening on loopback only) through a
relay bound to the host end of the pair. A partition drops the master's packets to the
agent's port inside the namespace (iptables), so the agent keeps its ZooKeeper session
and stays registered: to the master it is a host that is listed but does not answer.

Every namespace, link and rule made here is removed by `close()`; traffic stays on the
veth pair and loopback.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import subprocess
import threading
import uuid


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class TcpRelay:
    """Relays TCP connections accepted on (host, port 0) to an upstream address; the
    bound address is `address`. Used to reach a loopback-only server from a namespace."""

    def __init__(self, bind_host: str, upstream: str):
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server((bind_host, 0))
        self.address = f"{bind_host}:{self._listener.getsockname()[1]}"
        self._closed = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="chaos-relay").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                if self._closed:
                    return
                continue
            with self._lock:
                self._conns += [conn, upstream]
            threading.Thread(target=self._pipe, args=(conn, upstream), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._closed:
                readable, _, _ = select.select([a, b], [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._conns:
                with contextlib.suppress(OSError):
                    sock.close()


class NetNamespace:
    """A namespace with a veth pair on a random /30 of 10.250.0.0/16."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"titus-chaos-{tag}"
        self._host_if, self._ns_if = f"tch{tag}", f"tcn{tag}"
        block = random.randrange(0, 16384) * 4
        base = f"10.250.{block // 256}"
        self.host_ip, self.ns_ip = f"{base}.{block % 256 + 1}", f"{base}.{block % 256 + 2}"
        self._rules: list[list[str]] = []
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self._host_if, "type", "veth", "peer", "name", self._ns_if)
            _ip("link", "set", self._ns_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self._host_if)
            _ip("link", "set", self._host_if, "up")
            self.exec_ip("addr", "add", f"{self.ns_ip}/30", "dev", self._ns_if)
            self.exec_ip("link", "set", self._ns_if, "up")
            self.exec_ip("link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def exec_ip(self, *args: str) -> None:
        _ip("netns", "exec", self.name, "ip", *args)

    def command(self, args: list[str]) -> list[str]:
        """`args` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def _iptables(self, action: str, rule: list[str]) -> None:
        subprocess.run(
            self.command(["iptables", action, *rule]),
            check=True,
            capture_output=True,
            timeout=30,
        )

    def partition(self, port: int) -> None:
        """Drop every packet to and from `port` inside the namespace, on new and open
        connections alike (an answer already being sent does not get out either)."""
        for rule in (
            ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"],
            ["OUTPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP"],
        ):
            self._iptables("-A", rule)
            self._rules.append(rule)

    def heal(self) -> None:
        while self._rules:
            self._iptables("-D", self._rules.pop())

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _ip("link", "del", self._host_if)
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _ip("netns", "del", self.name)
