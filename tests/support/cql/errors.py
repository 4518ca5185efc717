"""The server's errors, each carrying the native protocol error code it is answered with."""

from __future__ import annotations

import struct


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


class CqlError(Exception):
    code = 0x0000

    def body(self) -> bytes:
        return struct.pack(">i", self.code) + _string(str(self)) + self.extra()

    def extra(self) -> bytes:
        return b""


class ServerError(CqlError):
    code = 0x0000


class ProtocolError(CqlError):
    code = 0x000A


class SyntaxException(CqlError):
    code = 0x2000


class InvalidRequest(CqlError):
    code = 0x2200


class AlreadyExists(CqlError):
    code = 0x2400

    def __init__(self, keyspace: str, table: str = ""):
        what = f"table {keyspace}.{table}" if table else f"keyspace {keyspace}"
        super().__init__(f"Cannot add already existing {what}")
        self.keyspace, self.table = keyspace, table

    def extra(self) -> bytes:
        return _string(self.keyspace) + _string(self.table)


class Unprepared(CqlError):
    code = 0x2500

    def __init__(self, statement_id: bytes):
        super().__init__(f"Prepared query with ID {statement_id.hex()} not found")
        self.statement_id = statement_id

    def extra(self) -> bytes:
        return struct.pack(">H", len(self.statement_id)) + self.statement_id


class Unavailable(CqlError):
    code = 0x1000

    def __init__(self, consistency: int):
        super().__init__("Cannot achieve consistency level")
        self.consistency = consistency

    def extra(self) -> bytes:
        return struct.pack(">Hii", self.consistency, 2, 1)


class WriteTimeout(CqlError):
    code = 0x1100

    def __init__(self, consistency: int, write_type: str = "BATCH"):
        super().__init__("Operation timed out - received only 1 responses.")
        self.consistency, self.write_type = consistency, write_type

    def extra(self) -> bytes:
        return struct.pack(">Hii", self.consistency, 1, 2) + _string(self.write_type)


class ReadTimeout(CqlError):
    code = 0x1200

    def __init__(self, consistency: int):
        super().__init__("Operation timed out - received only 1 responses.")
        self.consistency = consistency

    def extra(self) -> bytes:
        return struct.pack(">HiiB", self.consistency, 1, 2, 0)
