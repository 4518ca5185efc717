"""CQL types: parsing type names, the protocol's type options, and value (de)serialisation."""

from __future__ import annotations

import datetime as dt
import ipaddress
import struct
import uuid
from dataclasses import dataclass
from typing import Any

from tests.support.cql.errors import InvalidRequest

_OPTION_IDS = {
    "ascii": 0x0001,
    "bigint": 0x0002,
    "blob": 0x0003,
    "boolean": 0x0004,
    "counter": 0x0005,
    "decimal": 0x0006,
    "double": 0x0007,
    "float": 0x0008,
    "int": 0x0009,
    "timestamp": 0x000B,
    "uuid": 0x000C,
    "text": 0x000D,
    "varint": 0x000E,
    "timeuuid": 0x000F,
    "inet": 0x0010,
    "date": 0x0011,
    "time": 0x0012,
    "smallint": 0x0013,
    "tinyint": 0x0014,
    "list": 0x0020,
    "map": 0x0021,
    "set": 0x0022,
}
_ALIASES = {"varchar": "text"}
SIMPLE = {k for k in _OPTION_IDS if k not in ("list", "map", "set")}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class CqlType:
    name: str
    params: tuple[CqlType, ...] = ()
    frozen: bool = False

    @property
    def is_collection(self) -> bool:
        return self.name in ("list", "set", "map")

    def __str__(self) -> str:
        if not self.params:
            return self.name
        inner = f"{self.name}<{', '.join(str(p) for p in self.params)}>"
        return f"frozen<{inner}>" if self.frozen else inner

    # ---- wire: type option ------------------------------------------------------------
    def option(self) -> bytes:
        out = struct.pack(">H", _OPTION_IDS[self.name])
        for p in self.params:
            out += p.option()
        return out

    # ---- wire: values -------------------------------------------------------------------
    def serialize(self, v: Any) -> bytes:
        n = self.name
        if n in ("text", "ascii"):
            return str(v).encode()
        if n == "int":
            return struct.pack(">i", v)
        if n in ("bigint", "counter", "time"):
            return struct.pack(">q", v)
        if n == "smallint":
            return struct.pack(">h", v)
        if n == "tinyint":
            return struct.pack(">b", v)
        if n == "timestamp":
            return struct.pack(">q", v)
        if n == "boolean":
            return b"\x01" if v else b"\x00"
        if n in ("uuid", "timeuuid"):
            return v.bytes  # type: ignore[no-any-return]
        if n == "blob":
            return bytes(v)
        if n == "double":
            return struct.pack(">d", v)
        if n == "float":
            return struct.pack(">f", v)
        if n == "varint":
            length = (v.bit_length() + 8) // 8
            return int(v).to_bytes(length, "big", signed=True)
        if n == "inet":
            return ipaddress.ip_address(v).packed
        if n == "date":
            return struct.pack(">I", v + 2**31)
        if n in ("list", "set"):
            items = sorted(v) if n == "set" else list(v)
            out = struct.pack(">i", len(items))
            for item in items:
                b = self.params[0].serialize(item)
                out += struct.pack(">i", len(b)) + b
            return out
        if n == "map":
            out = struct.pack(">i", len(v))
            for key in sorted(v):
                kb = self.params[0].serialize(key)
                vb = self.params[1].serialize(v[key])
                out += struct.pack(">i", len(kb)) + kb + struct.pack(">i", len(vb)) + vb
            return out
        raise InvalidRequest(f"type {self} is not supported by this server")

    def deserialize(self, b: bytes) -> Any:
        n = self.name
        try:
            if n in ("text", "ascii"):
                return b.decode()
            if n == "int":
                return struct.unpack(">i", b)[0]
            if n in ("bigint", "counter", "time", "timestamp"):
                return struct.unpack(">q", b)[0]
            if n == "smallint":
                return struct.unpack(">h", b)[0]
            if n == "tinyint":
                return struct.unpack(">b", b)[0]
            if n == "boolean":
                return b != b"\x00"
            if n in ("uuid", "timeuuid"):
                return uuid.UUID(bytes=bytes(b))
            if n == "blob":
                return bytes(b)
            if n == "double":
                return struct.unpack(">d", b)[0]
            if n == "float":
                return struct.unpack(">f", b)[0]
            if n == "varint":
                return int.from_bytes(b, "big", signed=True)
            if n == "inet":
                return str(ipaddress.ip_address(bytes(b)))
            if n == "date":
                return struct.unpack(">I", b)[0] - 2**31
            if n in ("list", "set", "map"):
                return self._deserialize_collection(b)
        except (struct.error, ValueError, UnicodeDecodeError) as e:
            raise InvalidRequest(f"Invalid value for type {self}: {e}") from None
        raise InvalidRequest(f"type {self} is not supported by this server")

    def _deserialize_collection(self, b: bytes) -> Any:
        (count,) = struct.unpack_from(">i", b, 0)
        pos = 4
        items: list[Any] = []
        for _ in range(count * (2 if self.name == "map" else 1)):
            (length,) = struct.unpack_from(">i", b, pos)
            pos += 4
            items.append(b[pos : pos + length] if length >= 0 else None)
            pos += max(length, 0)
        if self.name == "map":
            kt, vt = self.params
            return {
                kt.deserialize(items[i]): vt.deserialize(items[i + 1])
                for i in range(0, len(items), 2)
            }
        et = self.params[0]
        values = [et.deserialize(i) for i in items]
        return frozenset(values) if self.name == "set" else values

    # ---- CQL literals -------------------------------------------------------------------
    def from_literal(self, kind: str, raw: Any) -> Any:
        """A literal from CQL text (kind: string, int, float, bool, uuid, blob, null)."""
        n = self.name
        if kind == "null":
            return None
        if n in ("text", "ascii") and kind == "string":
            return raw
        if n in ("int", "bigint", "smallint", "tinyint", "varint", "counter") and kind == "int":
            return int(raw)
        if n in ("double", "float") and kind in ("int", "float"):
            return float(raw)
        if n == "boolean" and kind == "bool":
            return raw
        if n in ("uuid", "timeuuid") and kind == "uuid":
            return uuid.UUID(raw)
        if n == "blob" and kind == "blob":
            return bytes.fromhex(raw[2:])
        if n == "timestamp" and kind == "int":
            return int(raw)
        if n == "timestamp" and kind == "string":
            try:
                t = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidRequest(f"Unable to coerce '{raw}' to a formatted date") from None
            if t.tzinfo is None:
                t = t.replace(tzinfo=dt.UTC)
            return int((t - _EPOCH).total_seconds() * 1000)
        if n == "inet" and kind == "string":
            return str(ipaddress.ip_address(raw))
        raise InvalidRequest(f"Invalid {kind.upper()} constant ({raw}) for type {self}")


def parse_type(text: str) -> CqlType:
    t, rest = _parse_type(text.replace(" ", "").lower())
    if rest:
        raise InvalidRequest(f"Unknown type {text}")
    return t


def _parse_type(s: str) -> tuple[CqlType, str]:
    i = 0
    while i < len(s) and (s[i].isalnum() or s[i] == "_"):
        i += 1
    name, rest = s[:i], s[i:]
    name = _ALIASES.get(name, name)
    if name == "frozen":
        inner, rest = _parse_type(rest[1:])
        return CqlType(inner.name, inner.params, True), rest[1:]
    if name in ("list", "set", "map"):
        if not rest.startswith("<"):
            raise InvalidRequest(f"Unknown type {name}")
        params = []
        rest = rest[1:]
        while True:
            p, rest = _parse_type(rest)
            params.append(p)
            if rest.startswith(","):
                rest = rest[1:]
                continue
            break
        if not rest.startswith(">") or len(params) != (2 if name == "map" else 1):
            raise InvalidRequest(f"Unknown type {s}")
        return CqlType(name, tuple(params)), rest[1:]
    if name not in SIMPLE:
        raise InvalidRequest(f"Unknown type {name}")
    return CqlType(name), rest


INT = CqlType("int")
BIGINT = CqlType("bigint")
TEXT = CqlType("text")
BOOLEAN = CqlType("boolean")
