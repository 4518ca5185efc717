"""Sockets and addresses inside a container's network namespace.

The agent makes the metadata address local to the container's namespace (on its
loopback) and listens there itself. A socket belongs to the namespace it was made in for
its whole life, so the agent's thread enters the namespace only to make it: `setns` in a
short-lived thread of its own, which changes that thread alone. The container cannot take
the address away (it holds no network admin capability in a namespace the engine made)
nor listen on it while the agent does.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
from pathlib import Path

from titus.agent.network.plumbing import in_container

CLONE_NEWNET = 0x40000000
METADATA_IP = "169.254.169.254"
METADATA_PORT = 80

_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceError(OSError):
    """The container's namespace could not be entered or its address not be set."""


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise NamespaceError(code, f"setns: {os.strerror(code)}")


def _listen_in(pid: int, address: str, port: int, backlog: int) -> socket.socket:
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    except OSError as e:
        os.close(own)
        raise NamespaceError(e.errno or errno.ESRCH, f"process {pid}: {e.strerror}") from e
    try:
        _setns(target)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
                sock.listen(backlog)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            return sock
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def listen_in_namespace_of(
    pid: int, address: str = METADATA_IP, port: int = METADATA_PORT, backlog: int = 64
) -> socket.socket:
    """A listening socket on address:port inside the network namespace of process `pid`."""
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            made.append(_listen_in(pid, address, port, backlog))
        except BaseException as e:  # handed to the caller's thread
            failed.append(e)

    thread = threading.Thread(target=work, name=f"netns-{pid}", daemon=True)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs (not gone, not exiting, not a zombie waiting to be
    reaped): a container that ended while it was being set up is not a setup failure."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # an exiting process gives up its namespaces before it turns zombie: without its
        # network namespace there is nothing left to set up, whatever its state says
        os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[:1]
    return bool(state) and state[0] not in ("Z", "X")


def add_local_address(pid: int, address: str = METADATA_IP) -> None:
    """Make `address` local to the namespace of `pid` (on its loopback); already there is
    fine (an adopted task)."""
    out = in_container(pid, ["ip", "-o", "addr", "show", "dev", "lo"])
    if f" {address}/32 " not in out:
        in_container(pid, ["ip", "addr", "add", f"{address}/32", "dev", "lo"])
