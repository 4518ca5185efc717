"""The CQL native protocol v4 server: frames in, frames out, one thread per connection.

It performs the handshake cassandra-driver and cqlsh perform (version negotiation down to
v4, OPTIONS/SUPPORTED, STARTUP/READY, REGISTER), answers QUERY, PREPARE, EXECUTE and BATCH
through the engine, and lets a test inject the failures a real cluster produces: timeouts,
unavailable replicas, dropped connections, a restarted node that forgot its prepared
statements.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.cql.engine import UNSET, ColumnSpec, Engine, Prepared, Result
from tests.support.cql.errors import (
    CqlError,
    InvalidRequest,
    ProtocolError,
    ReadTimeout,
    ServerError,
    Unavailable,
    Unprepared,
    WriteTimeout,
)
from tests.support.cql.types import CqlType

ERROR, STARTUP, READY, AUTHENTICATE, OPTIONS, SUPPORTED = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06
QUERY, RESULT, PREPARE, EXECUTE, REGISTER, EVENT, BATCH = 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D
AUTH_RESPONSE, AUTH_SUCCESS = 0x0F, 0x10
ANY, SERIAL, LOCAL_SERIAL = 0x0000, 0x0008, 0x0009
CONSISTENCY_NAMES = {
    0x0000: "ANY",
    0x0001: "ONE",
    0x0002: "TWO",
    0x0003: "THREE",
    0x0004: "QUORUM",
    0x0005: "ALL",
    0x0006: "LOCAL_QUORUM",
    0x0007: "EACH_QUORUM",
    0x0008: "SERIAL",
    0x0009: "LOCAL_SERIAL",
    0x000A: "LOCAL_ONE",
}


# ---- fault injection ---------------------------------------------------------------------
@dataclass
class Fault:
    """Answer the next matching request(s) with a failure instead of (or after) running it.

    kind: "write_timeout", "read_timeout", "unavailable", "drop" (close the connection
    without an answer) or "server_error". `match` is a case-insensitive substring of the
    statement text (any statement of a batch); `applied=True` runs the statement first, as
    when a coordinator timed out waiting for replicas that did write.
    """

    kind: str
    match: str = ""
    times: int = 1
    applied: bool = False
    hits: int = 0


@dataclass
class Hold:
    """Requests whose statement contains `match` wait at the server, before they run,
    until `release()`: a client paused between two of its statements (a garbage
    collection, a slow network) while others go on. `arrived` is set by the first one."""

    match: str
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class Request:
    """What a client asked, recorded for tests: opcode name, statements, consistency."""

    opcode: str
    statements: list[str]
    consistency: str
    batch_type: str | None = None
    serial: str | None = None


# ---- reading -----------------------------------------------------------------------------
class Reader:
    def __init__(self, body: bytes):
        self.b = body
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.b):
            raise ProtocolError("Not enough bytes to read the message body")
        out = self.b[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def short(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def int(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def long(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def string(self) -> str:
        return self.take(self.short()).decode()

    def long_string(self) -> str:
        return self.take(self.int()).decode()

    def short_bytes(self) -> bytes:
        return self.take(self.short())

    def value(self) -> bytes | None | object:
        n = self.int()
        if n == -1:
            return None
        if n == -2:
            return UNSET
        return self.take(n)

    def string_map(self) -> dict[str, str]:
        return {self.string(): self.string() for _ in range(self.short())}

    def string_list(self) -> list[str]:
        return [self.string() for _ in range(self.short())]


@dataclass
class Params:
    consistency: int
    values: list[Any] = field(default_factory=list)
    names: list[str] | None = None
    page_size: int = -1
    paging_state: bytes | None = None
    #: The serial consistency of a conditional write (SERIAL when the flag is absent).
    serial: int = SERIAL
    #: The client's default timestamp of a write, in microseconds (None: the server's).
    timestamp: int | None = None


def read_params(r: Reader) -> Params:
    params = Params(r.short())
    flags = r.byte()
    if flags & 0x01:
        n = r.short()
        if flags & 0x40:
            params.names = []
        for _ in range(n):
            if params.names is not None:
                params.names.append(r.string())
            params.values.append(r.value())
    if flags & 0x04:
        params.page_size = r.int()
    if flags & 0x08:
        params.paging_state = r.take(r.int())
    if flags & 0x10:
        params.serial = r.short()
    if flags & 0x20:
        params.timestamp = r.long()
    return params


def check_consistency(consistency: int, serial: int, is_write: bool, is_lwt: bool) -> None:
    """Refuse the consistency levels Cassandra refuses for this kind of statement
    (ConsistencyLevel.validateForRead / validateForWrite / validateForCas and
    validateForCasCommit)."""
    name = CONSISTENCY_NAMES.get(consistency, "?")
    if not is_write:
        if consistency == ANY:
            raise InvalidRequest("ANY ConsistencyLevel is only supported for writes")
        return
    if is_lwt:
        if serial not in (SERIAL, LOCAL_SERIAL):
            raise InvalidRequest(
                "Invalid consistency for conditional update. Must be one of SERIAL or LOCAL_SERIAL"
            )
        if consistency in (SERIAL, LOCAL_SERIAL):
            raise InvalidRequest(
                f"{name} is not supported as conditional update commit consistency. Use ANY "
                "if you mean \"make sure it is accepted but I don't care how many replicas "
                'commit it for non-SERIAL reads"'
            )
        return
    if consistency in (SERIAL, LOCAL_SERIAL):
        raise InvalidRequest("You must use conditional updates for serializable writes")


# ---- writing -----------------------------------------------------------------------------
def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _value(b: bytes | None) -> bytes:
    if b is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(b)) + b


def _metadata(columns: list[ColumnSpec], paging_state: bytes | None = None) -> bytes:
    flags = 0x0002 if paging_state is not None else 0
    if not columns:
        return struct.pack(">ii", flags | 0x0004, 0) + (
            _value(paging_state) if paging_state is not None else b""
        )
    same = len({(c.keyspace, c.table) for c in columns}) == 1
    if same:
        flags |= 0x0001
    out = struct.pack(">ii", flags, len(columns))
    if paging_state is not None:
        out += _value(paging_state)
    if same:
        out += _string(columns[0].keyspace) + _string(columns[0].table)
    for c in columns:
        if not same:
            out += _string(c.keyspace) + _string(c.table)
        out += _string(c.name) + c.type.option()
    return out


def encode_result(result: Result) -> bytes:
    if result.kind == "void":
        return struct.pack(">i", 1)
    if result.kind == "set_keyspace":
        return struct.pack(">i", 3) + _string(result.keyspace)
    if result.kind == "schema_change":
        assert result.change is not None
        change, target, ks, table = result.change
        out = struct.pack(">i", 5) + _string(change) + _string(target) + _string(ks)
        return out + (_string(table) if target == "TABLE" else b"")
    encoders = [_cell_encoder(c.type) for c in result.columns]
    parts = [
        struct.pack(">i", 2),
        _metadata(result.columns, result.paging_state),
        struct.pack(">i", len(result.rows)),
    ]
    for row in result.rows:
        parts.extend([enc(v) for enc, v in zip(encoders, row, strict=True)])
    return b"".join(parts)


_NULL = struct.pack(">i", -1)
_LEN8 = struct.pack(">i", 8)
_INT64 = struct.Struct(">q")


def _cell_encoder(ctype: CqlType) -> Callable[[Any], bytes]:
    """A function from a cell's value to its [bytes] on the wire; text and bigint (what
    the big scans return) without the general serializer's dispatch."""
    if ctype.name in ("text", "ascii"):

        def text(v: Any) -> bytes:
            if v is None:
                return _NULL
            b = v.encode() if isinstance(v, str) else str(v).encode()
            return len(b).to_bytes(4, "big") + b

        return text
    if ctype.name in ("bigint", "counter", "timestamp"):
        return lambda v: _NULL if v is None else _LEN8 + _INT64.pack(v)

    def general(v: Any) -> bytes:
        return _value(None if v is None else ctype.serialize(v))

    return general


def encode_prepared(pr: Prepared) -> bytes:
    out = struct.pack(">i", 4) + struct.pack(">H", 16) + pr.statement_id
    binds = pr.binds
    flags = 0x0001 if binds and len({(c.keyspace, c.table) for c in binds}) == 1 else 0
    out += struct.pack(">iii", flags, len(binds), len(pr.pk_indexes))
    for i in pr.pk_indexes:
        out += struct.pack(">H", i)
    if flags:
        out += _string(binds[0].keyspace) + _string(binds[0].table)
    for c in binds:
        if not flags:
            out += _string(c.keyspace) + _string(c.table)
        out += _string(c.name) + c.type.option()
    return out + _metadata(pr.result_columns)


# ---- the server ----------------------------------------------------------------------------
class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        owner = self.server.owner
        owner._track(sock, True)
        conn = _Connection(owner, sock)
        try:
            conn.serve()
        except (OSError, ConnectionError):
            pass
        finally:
            owner._track(sock, False)
            with contextlib.suppress(OSError):
                sock.close()


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: CqlServer


class _Connection:
    def __init__(self, owner: CqlServer, sock: socket.socket):
        self.owner = owner
        self.sock = sock
        self.keyspace: str | None = None
        self.started = False
        self.send_lock = threading.Lock()

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return bytes(buf)

    def send(self, stream: int, opcode: int, body: bytes) -> None:
        header = struct.pack(">BBhBi", 0x84, 0, stream, opcode, len(body))
        with self.send_lock:
            self.sock.sendall(header + body)

    def serve(self) -> None:
        while True:
            header = self.recv_exact(9)
            version, flags, stream, opcode, length = struct.unpack(">BBhBi", header)
            body = self.recv_exact(length) if length else b""
            if version != 0x04:
                # v5 and the DSE versions: the driver steps down when it reads this message.
                err = ProtocolError(
                    f"Invalid or unsupported protocol version ({version}); the lowest "
                    "supported version is 4 and the greatest is 4"
                )
                self.send(stream, ERROR, err.body())
                continue
            if flags & 0x01:
                self.send(stream, ERROR, ProtocolError("Compression is not supported").body())
                continue
            if self.owner.holds:
                # a request may be held: answer it aside, so the connection's other
                # requests go on (a client multiplexes them over one connection)
                threading.Thread(
                    target=self.answer, args=(stream, opcode, body), daemon=True
                ).start()
            elif not self.answer(stream, opcode, body):
                return

    def answer(self, stream: int, opcode: int, body: bytes) -> bool:
        """Answer one request; False when the connection is to be dropped."""
        try:
            answer = self.dispatch(opcode, Reader(body))
        except _Drop:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            return False
        except CqlError as e:
            self.send(stream, ERROR, e.body())
            return True
        except Exception as e:  # noqa: BLE001 - a server answers, whatever broke
            self.send(stream, ERROR, ServerError(f"{type(e).__name__}: {e}").body())
            return True
        self.send(stream, *answer)
        return True

    def dispatch(self, opcode: int, r: Reader) -> tuple[int, bytes]:
        owner = self.owner
        engine = owner.engine
        if opcode == OPTIONS:
            supported = {
                "CQL_VERSION": ["3.4.5"],
                "COMPRESSION": [],
                "PROTOCOL_VERSIONS": ["3/v3", "4/v4"],
            }
            body = struct.pack(">H", len(supported))
            for k, vs in supported.items():
                body += _string(k) + struct.pack(">H", len(vs)) + b"".join(_string(v) for v in vs)
            return SUPPORTED, body
        if opcode == STARTUP:
            options = r.string_map()
            if "COMPRESSION" in options:
                raise ProtocolError(f"Unknown compression algorithm: {options['COMPRESSION']}")
            self.started = True
            if owner.credentials is not None:
                return AUTHENTICATE, _string("org.apache.cassandra.auth.PasswordAuthenticator")
            return READY, b""
        if opcode == AUTH_RESPONSE:
            token = r.take(r.int())
            _, user, password = token.split(b"\x00")
            if owner.credentials != (user.decode(), password.decode()):
                raise _AuthError("Provided username and/or password are incorrect")
            return AUTH_SUCCESS, struct.pack(">i", -1)
        if not self.started:
            raise ProtocolError("Unexpected message, expecting STARTUP or OPTIONS")
        if opcode == REGISTER:
            r.string_list()
            return READY, b""
        if opcode == QUERY:
            query = r.long_string()
            params = read_params(r)
            self.record("QUERY", [query], params.consistency, serial=params.serial)
            pr = engine.prepare(query, self.keyspace)
            return self.run(pr, params)
        if opcode == PREPARE:
            query = r.long_string()
            self.record("PREPARE", [query], 0)
            pr = engine.prepare(query, self.keyspace)
            owner.prepared[pr.statement_id] = pr
            return RESULT, encode_prepared(pr)
        if opcode == EXECUTE:
            statement_id = r.short_bytes()
            params = read_params(r)
            pr = owner.prepared.get(statement_id)  # type: ignore[assignment]
            if pr is None:
                raise Unprepared(statement_id)
            self.record("EXECUTE", [pr.query], params.consistency, serial=params.serial)
            return self.run(pr, params)
        if opcode == BATCH:
            return self.batch(r)
        raise ProtocolError(f"Unknown opcode {opcode}")

    def record(
        self,
        opcode: str,
        statements: list[str],
        consistency: int,
        kind: str | None = None,
        serial: int | None = None,
    ) -> None:
        names = CONSISTENCY_NAMES
        self.owner.requests.append(
            Request(
                opcode,
                statements,
                names.get(consistency, "?"),
                kind,
                None if serial is None else names.get(serial, "?"),
            )
        )

    def bind(self, pr: Prepared, params: Params) -> list[Any]:
        raw = params.values
        if params.names is not None:
            by_name = dict(zip(params.names, raw, strict=True))
            raw = [by_name.get(s.name, UNSET) for s in pr.binds]
        if len(raw) != len(pr.binds):
            raise InvalidRequest(
                f"There were {len(pr.binds)} markers(?) in CQL but {len(raw)} bound variables"
            )
        return [
            v if v is None or v is UNSET else s.type.deserialize(v)  # type: ignore[arg-type]
            for s, v in zip(pr.binds, raw, strict=True)
        ]

    def run(self, pr: Prepared, params: Params) -> tuple[int, bytes]:
        self.owner._hold(pr.query)
        fault = self.owner._fault_for([pr.query])
        values = self.bind(pr, params)
        if pr.table is not None or pr.is_write:
            check_consistency(params.consistency, params.serial, pr.is_write, pr.is_lwt)
        if fault is not None and not fault.applied:
            raise self.owner._fault_error(fault, params.consistency, pr.is_write, pr.is_lwt)
        result = self.owner.engine.execute(
            pr, values, params.page_size, params.paging_state, params.timestamp
        )
        if fault is not None:
            raise self.owner._fault_error(fault, params.consistency, pr.is_write, pr.is_lwt)
        if result.kind == "set_keyspace":
            self.keyspace = result.keyspace
        return RESULT, encode_result(result)

    def batch(self, r: Reader) -> tuple[int, bytes]:
        owner = self.owner
        kind = r.byte()
        items: list[tuple[Prepared, list[Any]]] = []
        raw: list[tuple[Prepared, list[Any]]] = []
        for _ in range(r.short()):
            if r.byte() == 0:
                pr = owner.engine.prepare(r.long_string(), self.keyspace)
            else:
                statement_id = r.short_bytes()
                found = owner.prepared.get(statement_id)
                if found is None:
                    raise Unprepared(statement_id)
                pr = found
            values = [r.value() for _ in range(r.short())]
            raw.append((pr, values))
        consistency = r.short()
        flags = r.byte()
        serial = SERIAL
        timestamp = None
        if flags & 0x10:
            serial = r.short()
        if flags & 0x20:
            timestamp = r.long()
        if flags & 0x40:
            raise ProtocolError("Named values in batches are not supported")
        queries = [pr.query for pr, _ in raw]
        batch_type = {0: "LOGGED", 1: "UNLOGGED", 2: "COUNTER"}.get(kind, "?")
        self.record("BATCH", queries, consistency, batch_type, serial)
        if kind == 2:
            raise InvalidRequest("Only counter mutations are allowed in COUNTER batches")
        size = sum(len(v) for _, values in raw for v in values if isinstance(v, bytes))
        if len(raw) > 1 and size > owner.batch_size_fail_kb * 1024:
            raise InvalidRequest("Batch too large")
        for pr, values in raw:
            items.append((pr, self.bind(pr, Params(consistency, values))))
        for q in queries:
            owner._hold(q)
        fault = owner._fault_for(queries)
        is_lwt = any(pr.is_lwt for pr, _ in items)
        check_consistency(consistency, serial, True, is_lwt)
        if fault is not None and not fault.applied:
            raise owner._fault_error(fault, consistency, True, is_lwt, batch_type)
        result = owner.engine.batch(items, kind == 0, timestamp)
        if fault is not None:
            raise owner._fault_error(fault, consistency, True, is_lwt, batch_type)
        return RESULT, encode_result(result)


class _Drop(Exception):
    pass


class _AuthError(CqlError):
    code = 0x0100


class CqlServer:
    """A CQL server on a loopback port. `start()`, `stop()`, and the test handles below."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: tuple[str, str] | None = None,
        batch_size_fail_kb: int = 50,
    ):
        self.engine = Engine()
        self.prepared: dict[bytes, Prepared] = {}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []
        self.credentials = credentials
        #: Cassandra's batch_size_fail_threshold_in_kb (default 50): a batch over more than
        #: one partition whose values add up to more is refused ("Batch too large").
        self.batch_size_fail_kb = batch_size_fail_kb
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._server = _TCPServer((host, port), _Handler)
        self._server.owner = self
        self.host, self.port = self._server.server_address[:2]
        self._thread: threading.Thread | None = None

    # ---- life ---------------------------------------------------------------------------
    def start(self) -> CqlServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.drop_connections()

    @property
    def contact_point(self) -> str:
        return f"{self.host}:{self.port}"

    # ---- handles for tests ------------------------------------------------------------------
    def inject(self, kind: str, match: str = "", *, times: int = 1, applied: bool = False) -> Fault:
        """Fail the next `times` requests whose statement contains `match` (see Fault)."""
        if kind not in ("write_timeout", "read_timeout", "unavailable", "drop", "server_error"):
            raise ValueError(f"unknown fault {kind}")
        fault = Fault(kind, match.lower(), times, applied)
        with self._lock:
            self.faults.append(fault)
        return fault

    def hold(self, match: str) -> Hold:
        """Hold requests whose statement contains `match` until the handle is released."""
        held = Hold(match.lower())
        with self._lock:
            self.holds.append(held)
        return held

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def drop_connections(self) -> None:
        """Close every client connection, as a node that restarts does."""
        with self._lock:
            socks = list(self._sockets)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def forget_prepared(self) -> None:
        """Forget prepared statements: the next EXECUTE gets `unprepared`, as after a restart."""
        self.prepared.clear()

    def advance_time(self, seconds: float) -> None:
        """Move the server's clock forward, so TTLs expire without waiting."""
        with self.engine.lock:
            self.engine.clock_offset += seconds

    def rows(self, keyspace: str, table: str) -> list[dict[str, Any]]:
        return self.engine.rows(keyspace, table)

    # ---- internals ----------------------------------------------------------------------------
    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._sockets.add(sock)
            else:
                self._sockets.discard(sock)

    def _hold(self, query: str) -> None:
        with self._lock:
            held = next((h for h in self.holds if h.match in query.lower()), None)
            if held is not None:
                self.holds.remove(held)
        if held is not None:
            held.arrived.set()
            held.released.wait(30)

    def _fault_for(self, queries: list[str]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if any(fault.match in q.lower() for q in queries):
                    fault.hits += 1
                    if fault.hits >= fault.times:
                        self.faults.remove(fault)
                    return fault
        return None

    @staticmethod
    def _fault_error(
        fault: Fault, consistency: int, is_write: bool, is_lwt: bool, batch_type: str = ""
    ) -> Exception:
        if fault.kind == "drop":
            return _Drop()
        if fault.kind == "unavailable":
            return Unavailable(consistency)
        if fault.kind == "server_error":
            return ServerError("injected server error")
        if fault.kind == "read_timeout" or not is_write:
            return ReadTimeout(consistency)
        write_type = "CAS" if is_lwt else (f"{batch_type}" if batch_type else "SIMPLE")
        if write_type == "LOGGED":
            write_type = "BATCH"
        if write_type == "UNLOGGED":
            write_type = "UNLOGGED_BATCH"
        return WriteTimeout(consistency, write_type)
