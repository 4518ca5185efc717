"""Schema, rows and statement execution with Cassandra's rules.

One lock serialises every statement, which makes each statement and each batch atomic and
makes lightweight transactions trivially linearisable: the server is a single replica that
behaves the way a healthy cluster looks to one client.

Writes resolve by timestamp, as Cassandra's do: every cell, row marker and deletion carries
the write's timestamp (`USING TIMESTAMP`, else the client's default timestamp of the
protocol, else the server's clock; a lightweight transaction takes its ballot's, the
server's clock), and a write older than what it would replace or than a deletion covering
it is dropped. So a write that arrives late (a stalled client's) is shadowed by newer ones
instead of overwriting them. Statements of a batch share its timestamp; at equal
timestamps a deletion wins, and of two values the greater. What Cassandra refuses is refused
here with its error class and a message close to its own, at PREPARE time where Cassandra
refuses at PREPARE time.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import itertools
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.support.cql import parser as p
from tests.support.cql.errors import AlreadyExists, InvalidRequest, SyntaxException
from tests.support.cql.types import BIGINT, BOOLEAN, INT, CqlType, parse_type

UNSET = object()
FILTERING = (
    "Cannot execute this query as it might involve data filtering and thus may have "
    "unpredictable performance. If you want to execute this query despite the performance "
    "unpredictability, use ALLOW FILTERING"
)
DATACENTER = "datacenter1"
_PAGING_MAGIC = b"titus-cql"
#: Multi-page results kept at once (a client that abandons a scan leaves one behind).
_PAGES_KEPT = 32


class _Rev:
    """Sort key wrapper for DESC clustering columns."""

    __slots__ = ("v",)

    def __init__(self, v: Any):
        self.v = v

    def __lt__(self, other: _Rev) -> bool:
        return bool(other.v < self.v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rev) and other.v == self.v


@dataclass
class Row:
    cells: dict[str, tuple[Any, float | None]] = field(default_factory=dict)
    marker: tuple[bool, float | None] = (False, None)
    #: Write timestamps (microseconds) of `cells` and of the marker.
    stamps: dict[str, int] = field(default_factory=dict)
    marker_stamp: int = 0

    def live(self, now: float) -> dict[str, Any] | None:
        values = {c: v for c, (v, exp) in self.cells.items() if exp is None or exp > now}
        has_marker, exp = self.marker
        if values or (has_marker and (exp is None or exp > now)):
            return values
        return None


@dataclass
class Table:
    keyspace: str
    name: str
    columns: dict[str, CqlType]
    partition_key: list[str]
    clustering: list[str]
    order: dict[str, str]
    options: dict[str, Any]
    static: set[str]
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    data: dict[tuple[Any, ...], dict[tuple[Any, ...], Row]] = field(default_factory=dict)
    #: Deletions, by the timestamp of the newest: whole partitions, rows, single cells.
    #: Kept for the server's life (no compaction here), so a late older write stays shadowed.
    partition_deleted: dict[tuple[Any, ...], int] = field(default_factory=dict)
    row_deleted: dict[tuple[tuple[Any, ...], tuple[Any, ...]], int] = field(default_factory=dict)
    cell_deleted: dict[tuple[tuple[Any, ...], tuple[Any, ...], str], int] = field(
        default_factory=dict
    )

    def clear(self) -> None:
        self.data.clear()
        self.partition_deleted.clear()
        self.row_deleted.clear()
        self.cell_deleted.clear()

    def deleted_at(self, pk: tuple[Any, ...], ck: tuple[Any, ...]) -> int:
        """The newest deletion covering the row (-1: none)."""
        return max(self.partition_deleted.get(pk, -1), self.row_deleted.get((pk, ck), -1))

    @property
    def key_columns(self) -> list[str]:
        return self.partition_key + self.clustering

    @property
    def default_ttl(self) -> int:
        return int(self.options.get("default_time_to_live", 0))

    def column(self, name: str) -> CqlType:
        try:
            return self.columns[name]
        except KeyError:
            raise InvalidRequest(f"Undefined column name {name}") from None

    def sort_key(self, ck: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            _Rev(v) if self.order.get(c, "ASC") == "DESC" else v
            for c, v in zip(self.clustering, ck, strict=True)
        )


@dataclass
class Keyspace:
    name: str
    replication: dict[str, str]
    durable_writes: bool = True
    tables: dict[str, Table] = field(default_factory=dict)


@dataclass
class ColumnSpec:
    keyspace: str
    table: str
    name: str
    type: CqlType


@dataclass
class Result:
    kind: str  # void, rows, set_keyspace, schema_change
    columns: list[ColumnSpec] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    paging_state: bytes | None = None
    keyspace: str = ""
    change: tuple[str, str, str, str] | None = None  # change, target, keyspace, table


@dataclass
class Prepared:
    """A statement checked against the schema, with the types of its bind markers."""

    query: str
    keyspace: str | None
    stmt: Any
    binds: list[ColumnSpec]
    table: Table | None
    pk_indexes: list[int]
    result_columns: list[ColumnSpec]
    is_write: bool
    is_lwt: bool

    @functools.cached_property
    def statement_id(self) -> bytes:
        return hashlib.md5(f"{self.keyspace or ''}{self.query}".encode()).digest()


class Engine:
    def __init__(self, cluster_name: str = "titus-test", datacenter: str = DATACENTER):
        self.lock = threading.RLock()
        self.keyspaces: dict[str, Keyspace] = {}
        self.clock_offset = 0.0
        self._last_stamp = 0
        self.datacenter = datacenter
        self.cluster_name = cluster_name
        self.schema_version = uuid.uuid4()
        self.host_id = uuid.uuid4()
        # Results of SELECTs that span several pages, by the token in their paging state: a
        # later page is a slice, not a new scan (a 100,000-row table read 5,000 rows a page
        # would otherwise cost 20 full scans and sorts).
        self._pages: collections.OrderedDict[bytes, list[list[Any]]] = collections.OrderedDict()
        self._bootstrap()

    # ---- time (tests may move it forward to expire TTLs) --------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    def stamp(self) -> int:
        """A write timestamp from the server's clock, in microseconds, never repeated (a
        ballot's); the real clock, not `now`, as a client's timestamps are."""
        self._last_stamp = max(int(time.time() * 1_000_000), self._last_stamp + 1)
        return self._last_stamp

    # ---- system tables ----------------------------------------------------------------------
    def _bootstrap(self) -> None:
        local = {"class": "org.apache.cassandra.locator.LocalStrategy"}
        for ks in ("system", "system_schema", "system_virtual_schema"):
            self.keyspaces[ks] = Keyspace(ks, dict(local))
        for ddl in _SYSTEM_DDL:
            self.run(ddl, None)
        self.run(
            "INSERT INTO system.local (key, bootstrapped, broadcast_address, cluster_name, "
            "cql_version, data_center, host_id, listen_address, native_protocol_version, "
            "partitioner, rack, release_version, rpc_address, schema_version, tokens) VALUES "
            "('local', 'COMPLETED', '127.0.0.1', ?, '3.4.5', ?, ?, '127.0.0.1', '4', "
            "'org.apache.cassandra.dht.Murmur3Partitioner', 'rack1', '4.0.11', '127.0.0.1', "
            "?, {'0'})",
            None,
            [self.cluster_name, self.datacenter, self.host_id, self.schema_version],
        )

    def _schema_changed(self) -> None:
        self.schema_version = uuid.uuid4()
        local = self.keyspaces["system"].tables["local"].data.get(("local",), {}).get(())
        if local is not None:
            local.cells["schema_version"] = (self.schema_version, None)

    def _refresh_schema_tables(self) -> None:
        """system_schema.* describe the schema as it is now (cqlsh and the driver read it)."""
        sks = self.keyspaces["system_schema"].tables
        for t in ("keyspaces", "tables", "columns"):
            sks[t].data.clear()

        def put(table: Table, values: dict[str, Any]) -> None:
            pk = tuple(values[c] for c in table.partition_key)
            ck = tuple(values[c] for c in table.clustering)
            row = Row({c: (v, None) for c, v in values.items() if v is not None}, (True, None))
            table.data.setdefault(pk, {})[ck] = row

        for ks in self.keyspaces.values():
            if ks.name == "system_virtual_schema":
                continue
            put(
                sks["keyspaces"],
                {
                    "keyspace_name": ks.name,
                    "durable_writes": ks.durable_writes,
                    "replication": dict(ks.replication),
                },
            )
            for t in ks.tables.values():
                put(
                    sks["tables"],
                    {
                        "keyspace_name": ks.name,
                        "table_name": t.name,
                        "bloom_filter_fp_chance": 0.01,
                        "caching": {"keys": "ALL", "rows_per_partition": "NONE"},
                        "comment": str(t.options.get("comment", "")),
                        "compaction": {
                            "class": "org.apache.cassandra.db.compaction."
                            "SizeTieredCompactionStrategy"
                        },
                        "compression": {},
                        "crc_check_chance": 1.0,
                        "default_time_to_live": t.default_ttl,
                        "extensions": {},
                        "flags": frozenset({"compound"}),
                        "gc_grace_seconds": int(t.options.get("gc_grace_seconds", 864000)),
                        "id": t.id,
                        "max_index_interval": 2048,
                        "memtable_flush_period_in_ms": 0,
                        "min_index_interval": 128,
                        "speculative_retry": "99p",
                    },
                )
                for name, ctype in t.columns.items():
                    if name in t.partition_key:
                        kind, pos = "partition_key", t.partition_key.index(name)
                    elif name in t.clustering:
                        kind, pos = "clustering", t.clustering.index(name)
                    else:
                        kind, pos = ("static" if name in t.static else "regular"), -1
                    order = "none"
                    if kind == "clustering":
                        order = t.order.get(name, "ASC").lower()
                    put(
                        sks["columns"],
                        {
                            "keyspace_name": ks.name,
                            "table_name": t.name,
                            "column_name": name,
                            "clustering_order": order,
                            "column_name_bytes": name.encode(),
                            "kind": kind,
                            "position": pos,
                            "type": str(ctype),
                        },
                    )

    # ---- entry points -----------------------------------------------------------------------
    def run(self, query: str, keyspace: str | None, values: list[Any] | None = None) -> Result:
        """Parse, prepare and execute in one go (tests and bootstrap)."""
        prepared = self.prepare(query, keyspace)
        return self.execute(prepared, values or [])

    def prepare(self, query: str, keyspace: str | None) -> Prepared:
        stmt, binds = p.parse(query)
        with self.lock:
            return self._prepare(query, keyspace, stmt, binds)

    def execute(
        self,
        prepared: Prepared,
        values: list[Any],
        page_size: int = -1,
        paging_state: bytes | None = None,
        timestamp: int | None = None,
    ) -> Result:
        """`timestamp`: the client's default timestamp of a write (the protocol's)."""
        with self.lock:
            if prepared.table is not None:
                # The table may have been dropped and re-created since preparation.
                prepared = self._revalidate(prepared)
            if len(values) != len(prepared.binds):
                raise InvalidRequest(
                    f"There were {len(prepared.binds)} markers(?) in CQL but "
                    f"{len(values)} bound variables"
                )
            return self._execute(prepared, values, page_size, paging_state, timestamp)

    def batch(
        self, items: list[tuple[Prepared, list[Any]]], logged: bool, timestamp: int | None = None
    ) -> Result:
        with self.lock:
            items = [(self._revalidate(pr), v) for pr, v in items]
            return self._batch(items, logged, timestamp)

    def _revalidate(self, prepared: Prepared) -> Prepared:
        if prepared.table is None:
            return prepared
        ks = self.keyspaces.get(prepared.table.keyspace)
        current = ks.tables.get(prepared.table.name) if ks else None
        if current is None:
            raise InvalidRequest(f"unconfigured table {prepared.table.name}")
        if current is not prepared.table:
            return self.prepare(prepared.query, prepared.keyspace)
        return prepared

    # ---- preparation -----------------------------------------------------------------------
    def _keyspace(self, name: str | None) -> Keyspace:
        """The keyspace a statement names or the session uses, refused as Cassandra does."""
        if name is None:
            raise InvalidRequest(
                "No keyspace has been specified. USE a keyspace, or explicitly specify "
                "keyspace.tablename"
            )
        ks = self.keyspaces.get(name)
        if ks is None:
            raise InvalidRequest(f"Keyspace '{name}' does not exist")
        return ks

    def _table(self, ref: p.TableRef, keyspace: str | None) -> Table:
        table = self._keyspace(ref.keyspace or keyspace).tables.get(ref.name)
        if table is None:
            raise InvalidRequest(f"unconfigured table {ref.name}")
        return table

    def _prepare(self, query: str, keyspace: str | None, stmt: Any, binds: list[p.Bind]) -> Any:
        specs: dict[int, ColumnSpec] = {}
        table: Table | None = None
        result_columns: list[ColumnSpec] = []
        is_write = is_lwt = False

        def spec(term: Any, name: str, ctype: CqlType) -> None:
            assert table is not None
            if isinstance(term, p.Bind):
                specs[term.index] = ColumnSpec(table.keyspace, table.name, name, ctype)
            elif isinstance(term, p.Collection):
                if term.kind == "map" and ctype.name == "map":
                    for k, v in term.items:
                        spec(k, f"key({name})", ctype.params[0])
                        spec(v, f"value({name})", ctype.params[1])
                elif ctype.is_collection and ctype.name != "map":
                    for item in term.items:
                        spec(item, f"value({name})", ctype.params[0])

        def relation_specs(rels: list[p.Relation]) -> None:
            assert table is not None
            for rel in rels:
                ctype = table.column(rel.column)
                if rel.op == "IN":
                    if isinstance(rel.term, tuple):
                        for t in rel.term:
                            spec(t, rel.column, ctype)
                    else:
                        spec(rel.term, f"in({rel.column})", CqlType("list", (ctype,)))
                else:
                    spec(rel.term, rel.column, ctype)

        if isinstance(stmt, p.TextBatch):
            for sub in stmt.statements:
                if not isinstance(sub, p.Insert | p.Update | p.Delete):
                    raise InvalidRequest("Only INSERT, UPDATE and DELETE are allowed in BATCH")
                self._prepare(query, keyspace, sub, [])
            is_write = True
        elif isinstance(stmt, p.Insert):
            table = self._table(stmt.table, keyspace)
            self._check_insert(table, stmt)
            for col, term in zip(stmt.columns, stmt.values, strict=True):
                spec(term, col, table.column(col))
            spec(stmt.ttl, "[ttl]", INT)
            spec(stmt.timestamp, "[timestamp]", BIGINT)
            is_write, is_lwt = True, stmt.if_not_exists
        elif isinstance(stmt, p.Update):
            table = self._table(stmt.table, keyspace)
            self._check_modification(table, stmt.where, stmt.conditions, stmt.if_exists, True)
            for col, term in stmt.assignments:
                if col in table.key_columns:
                    raise InvalidRequest(f"PRIMARY KEY part {col} found in SET part")
                spec(term, col, table.column(col))
            spec(stmt.ttl, "[ttl]", INT)
            spec(stmt.timestamp, "[timestamp]", BIGINT)
            relation_specs(stmt.where)
            relation_specs(stmt.conditions)
            is_write, is_lwt = True, bool(stmt.conditions or stmt.if_exists)
        elif isinstance(stmt, p.Delete):
            table = self._table(stmt.table, keyspace)
            for col in stmt.columns:
                table.column(col)
                if col in table.key_columns:
                    raise InvalidRequest(
                        f"Invalid identifier {col} for deletion (should not be a PRIMARY KEY part)"
                    )
            self._check_modification(table, stmt.where, stmt.conditions, stmt.if_exists, False)
            if stmt.columns and len(_eq_cols(stmt.where, table.clustering)) < len(table.clustering):
                raise InvalidRequest("Range deletions are not supported for specific columns")
            spec(stmt.timestamp, "[timestamp]", BIGINT)
            relation_specs(stmt.where)
            relation_specs(stmt.conditions)
            is_write, is_lwt = True, bool(stmt.conditions or stmt.if_exists)
        elif isinstance(stmt, p.Select):
            table = self._table(stmt.table, keyspace)
            self._check_select(table, stmt)
            relation_specs(stmt.where)
            spec(stmt.limit, "[limit]", INT)
            if stmt.count:
                name = stmt.aliases.get("count", "count")
                result_columns = [ColumnSpec(table.keyspace, table.name, name, BIGINT)]
            else:
                names = stmt.selectors if stmt.selectors is not None else list(table.columns)
                result_columns = [
                    ColumnSpec(
                        table.keyspace, table.name, stmt.aliases.get(n, n), _selected(table, n)
                    )
                    for n in names
                ]
        elif isinstance(stmt, p.Empty):
            pass
        elif isinstance(
            stmt, p.CreateTable | p.CreateKeyspace | p.Drop | p.Use | p.Truncate | p.AlterAdd
        ):
            if binds:
                raise InvalidRequest("Bind variables are not allowed in schema statements")
            if isinstance(stmt, p.Truncate | p.AlterAdd):
                table = self._table(stmt.table, keyspace)
        else:  # pragma: no cover - the parser only makes the kinds above
            raise SyntaxException("unsupported statement")
        if is_lwt and getattr(stmt, "timestamp", None) is not None:
            raise InvalidRequest("Cannot provide custom timestamp for conditional updates")
        if len(specs) != len(binds):
            raise InvalidRequest("Bind variables are not supported in this position")
        bind_specs = [specs[i] for i in range(len(binds))]
        pk_indexes: list[int] = []
        if table is not None:
            by_name = {s.name: i for i, s in enumerate(bind_specs)}
            if all(c in by_name for c in table.partition_key):
                pk_indexes = [by_name[c] for c in table.partition_key]
        return Prepared(
            query,
            keyspace,
            stmt,
            bind_specs,
            table,
            pk_indexes,
            result_columns,
            is_write,
            is_lwt,
        )

    def _check_insert(self, table: Table, stmt: p.Insert) -> None:
        seen = set()
        for col in stmt.columns:
            table.column(col)
            if col in seen:
                raise InvalidRequest(f"Multiple definitions found for column {col}")
            seen.add(col)
        missing = [c for c in table.partition_key if c not in seen]
        if missing:
            raise InvalidRequest(f"Some partition key parts are missing: {', '.join(missing)}")
        missing = [c for c in table.clustering if c not in seen]
        if missing:
            raise InvalidRequest(f"Some clustering keys are missing: {', '.join(missing)}")

    def _check_modification(
        self,
        table: Table,
        where: list[p.Relation],
        conditions: list[p.Relation],
        if_exists: bool,
        is_update: bool,
    ) -> None:
        for rel in where:
            table.column(rel.column)
            if rel.column not in table.key_columns:
                raise InvalidRequest(f"Non PRIMARY KEY columns found in where clause: {rel.column}")
            if rel.op not in ("=", "IN"):
                raise InvalidRequest(
                    f"Slice restrictions are not supported on the clustering columns in "
                    f"{'UPDATE' if is_update else 'DELETE'} statements"
                    if is_update
                    else "Range deletions are not supported by this server"
                )
        restricted = [r.column for r in where]
        for col in restricted:
            if restricted.count(col) > 1:
                raise InvalidRequest(f"{col} cannot be restricted by more than one relation")
        missing = [c for c in table.partition_key if c not in restricted]
        if missing:
            raise InvalidRequest(f"Some partition key parts are missing: {', '.join(missing)}")
        missing = [c for c in table.clustering if c not in restricted]
        if missing and (is_update or len(missing) != len(table.clustering)):
            raise InvalidRequest(f"Some clustering keys are missing: {', '.join(missing)}")
        if conditions or if_exists:
            if missing:
                raise InvalidRequest(
                    "DELETE statements must restrict all PRIMARY KEY columns with equality "
                    "relations in order to use IF conditions"
                )
            if any(r.op == "IN" for r in where):
                raise InvalidRequest(
                    "IN on the partition key is not supported with conditional updates"
                )
            for cond in conditions:
                table.column(cond.column)
                if cond.column in table.key_columns:
                    raise InvalidRequest(
                        f"PRIMARY KEY column '{cond.column}' cannot have IF conditions"
                    )

    def _check_select(self, table: Table, stmt: p.Select) -> None:
        rels: dict[str, list[p.Relation]] = {}
        for rel in stmt.where:
            table.column(rel.column)
            if rel.op == "!=":
                raise InvalidRequest(f'Unsupported "!=" relation: {rel.column} != ...')
            rels.setdefault(rel.column, []).append(rel)
        if stmt.selectors:
            for col in stmt.selectors:
                _selected(table, col)
        allow = stmt.allow_filtering
        needs_filtering = any(c not in table.key_columns for c in rels)
        pk_restricted = [c for c in table.partition_key if c in rels]
        pk_eq = bool(pk_restricted) and all(
            r.op in ("=", "IN") for c in pk_restricted for r in rels[c]
        )
        full_pk = len(pk_restricted) == len(table.partition_key) and pk_eq
        if pk_restricted and len(pk_restricted) != len(table.partition_key) and not allow:
            missing = [c for c in table.partition_key if c not in rels]
            raise InvalidRequest(
                f"Partition key parts: {', '.join(missing)} must be restricted as other parts are"
            )
        if pk_restricted and not pk_eq and not allow:
            raise InvalidRequest(
                "Only EQ and IN relation are supported on the partition key (unless you use "
                "the token() function)"
            )
        previous: str | None = None
        slice_seen = False
        for c in table.clustering:
            if c in rels:
                if (previous is not None or slice_seen) and not allow:
                    if slice_seen:
                        raise InvalidRequest(
                            f'Clustering column "{c}" cannot be restricted (preceding column '
                            "is restricted by a non-EQ relation)"
                        )
                    raise InvalidRequest(
                        f'PRIMARY KEY column "{c}" cannot be restricted as preceding column '
                        f'"{previous}" is not restricted'
                    )
                slice_seen = slice_seen or any(r.op not in ("=", "IN") for r in rels[c])
            elif previous is None:
                previous = c
        if any(c in rels for c in table.clustering) and not full_pk:
            needs_filtering = True
        if needs_filtering and not allow:
            raise InvalidRequest(FILTERING)
        if stmt.order_by:
            for col, _ in stmt.order_by:
                table.column(col)
                if col not in table.clustering:
                    raise InvalidRequest(
                        "Order by is currently only supported on the clustered columns of the "
                        f"PRIMARY KEY, got {col}"
                    )
            if not full_pk:
                raise InvalidRequest(
                    "ORDER BY is only supported when the partition key is restricted by an EQ "
                    "or an IN."
                )
            cols = [c for c, _ in stmt.order_by]
            if cols != table.clustering[: len(cols)]:
                raise InvalidRequest(
                    "Order by currently only supports the ordering of columns following their "
                    "declared order in the PRIMARY KEY"
                )
            reversed_ = {d != table.order.get(c, "ASC") for c, d in stmt.order_by}
            if len(reversed_) > 1:
                raise InvalidRequest("Unsupported order by relation")

    # ---- execution ---------------------------------------------------------------------------
    def _value(self, term: Any, ctype: CqlType, values: list[Any]) -> Any:
        if term is None:
            return None
        if isinstance(term, p.Bind):
            return values[term.index]
        if isinstance(term, p.Literal):
            return ctype.from_literal(term.kind, term.value)
        if isinstance(term, p.Collection):
            if ctype.name == "map" and term.kind == "map":
                kt, vt = ctype.params
                return {
                    self._value(k, kt, values): self._value(v, vt, values) for k, v in term.items
                }
            if ctype.name == "set" and term.kind in ("set", "map") and not term.items:
                return frozenset()
            if ctype.name == "set" and term.kind == "set":
                return frozenset(self._value(i, ctype.params[0], values) for i in term.items)
            if ctype.name == "list" and term.kind == "list":
                return [self._value(i, ctype.params[0], values) for i in term.items]
            raise InvalidRequest(f"Invalid {term.kind} literal for type {ctype}")
        if isinstance(term, p.FunctionCall):
            if term.name == "now" and ctype.name in ("timeuuid", "uuid"):
                return uuid.uuid1()
            if term.name == "uuid" and ctype.name == "uuid":
                return uuid.uuid4()
            if term.name in ("totimestamp", "currenttimestamp") and ctype.name == "timestamp":
                return int(self.now() * 1000)
            raise InvalidRequest(f"Unknown function {term.name} for type {ctype}")
        raise InvalidRequest("Invalid term")

    def _keys(
        self, table: Table, cols: list[str], where: list[p.Relation], values: list[Any]
    ) -> list[tuple[Any, ...]]:
        """Every key tuple the = and IN restrictions on `cols` name."""
        choices: list[list[Any]] = []
        for c in cols:
            rel = next(r for r in where if r.column == c)
            ctype = table.columns[c]
            if rel.op == "IN":
                if isinstance(rel.term, tuple):
                    vals = [self._value(t, ctype, values) for t in rel.term]
                else:
                    vals = list(self._value(rel.term, CqlType("list", (ctype,)), values) or [])
            else:
                vals = [self._value(rel.term, ctype, values)]
            for v in vals:
                if v is None or v is UNSET:
                    raise InvalidRequest(f"Invalid null value in condition for column {c}")
            choices.append(list(dict.fromkeys(vals)))
        return [tuple(k) for k in itertools.product(*choices)]

    def _ttl(self, table: Table, term: Any, values: list[Any]) -> float | None:
        ttl = self._value(term, INT, values) if term is not None else None
        if ttl is UNSET or ttl is None:
            ttl = table.default_ttl
        if ttl < 0:
            raise InvalidRequest(f"A TTL must be greater or equal to 0, but was {ttl}")
        if ttl > 630720000:
            raise InvalidRequest(f"ttl is too large. requested ({ttl}) maximum (630720000)")
        return self.now() + ttl if ttl else None

    def _execute(
        self,
        pr: Prepared,
        values: list[Any],
        page_size: int,
        paging_state: bytes | None,
        timestamp: int | None = None,
    ) -> Result:
        stmt = pr.stmt
        if isinstance(stmt, p.Select):
            assert pr.table is not None
            return self._select(pr, values, page_size, paging_state)
        if isinstance(stmt, p.Insert | p.Update | p.Delete):
            return self._batch([(pr, values)], False, timestamp)
        if isinstance(stmt, p.TextBatch):
            subs = [self._prepare(pr.query, pr.keyspace, s, []) for s in stmt.statements]
            return self._batch([(s, []) for s in subs], stmt.logged, timestamp)
        return self._ddl(stmt, pr.keyspace)

    def _select(
        self, pr: Prepared, values: list[Any], page_size: int, paging_state: bytes | None
    ) -> Result:
        stmt: p.Select = pr.stmt
        table = pr.table
        assert table is not None
        if paging_state and len(paging_state) == 16 + len(_PAGING_MAGIC):
            cached = self._pages.get(paging_state[8:16])
            if cached is not None:
                start = struct.unpack(">Q", paging_state[:8])[0]
                return self._page(pr, cached, start, page_size, paging_state[8:16])
        if table.keyspace == "system_schema":
            self._refresh_schema_tables()
        now = self.now()
        pk_cols = table.partition_key
        names = stmt.selectors if stmt.selectors is not None else list(table.columns)
        written = [(n, n[len("writetime(") : -1]) for n in names if n.startswith("writetime(")]
        plain = not stmt.where and not stmt.order_by and not stmt.count and stmt.limit is None
        if plain and not written:
            out = self._scan(table, names, now)
            start = struct.unpack(">Q", paging_state[:8])[0] if paging_state else 0
            return self._page(pr, out, start, page_size, None)
        if all(any(r.column == c and r.op in ("=", "IN") for r in stmt.where) for c in pk_cols):
            partitions = self._keys(table, pk_cols, stmt.where, values)
        else:
            partitions = list(table.data)
        rows: list[dict[str, Any]] = []
        for pk in partitions:
            part = table.data.get(pk)
            if not part:
                continue
            for ck in sorted(part, key=table.sort_key) if len(part) > 1 else part:
                live = part[ck].live(now)
                if live is None:
                    continue
                full = dict(zip(pk_cols, pk, strict=True))
                full.update(zip(table.clustering, ck, strict=True))
                full.update(live)
                for n, column in written:
                    full[n] = part[ck].stamps.get(column) if column in live else None
                if all(self._matches(table, full.get(r.column), r, values) for r in stmt.where):
                    rows.append(full)
        if stmt.order_by and any(d != table.order.get(c, "ASC") for c, d in stmt.order_by):
            # Reverse within each partition, keep the partitions in the order asked for.
            by_pk: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
            for r in rows:
                by_pk.setdefault(tuple(r[c] for c in pk_cols), []).append(r)
            rows = [r for part_rows in by_pk.values() for r in reversed(part_rows)]
        limit = self._value(stmt.limit, INT, values) if stmt.limit is not None else None
        if limit is not None and limit is not UNSET:
            if limit <= 0:
                raise InvalidRequest(f"LIMIT must be strictly positive (got {limit})")
            rows = rows[:limit]
        if stmt.count:
            return Result("rows", pr.result_columns, [[len(rows)]])
        out = [[r.get(n) for n in names] for r in rows]
        start = 0
        if paging_state:
            start = struct.unpack(">Q", paging_state[:8])[0]
        return self._page(pr, out, start, page_size, None)

    def _scan(self, table: Table, names: list[str], now: float) -> list[list[Any]]:
        """A whole table, as rows of the selected columns: the leader's full-table SELECT,
        without building a dict per row (the general path's cost at 100,000 rows)."""
        pk_pos = {c: i for i, c in enumerate(table.partition_key)}
        ck_pos = {c: i for i, c in enumerate(table.clustering)}
        out: list[list[Any]] = []
        for pk, part in table.data.items():
            for ck in sorted(part, key=table.sort_key) if len(part) > 1 else part:
                row = part[ck]
                cells = row.cells
                has_marker, marker_exp = row.marker
                live = has_marker and (marker_exp is None or marker_exp > now)
                values: list[Any] = []
                for n in names:
                    if n in pk_pos:
                        values.append(pk[pk_pos[n]])
                    elif n in ck_pos:
                        values.append(ck[ck_pos[n]])
                    else:
                        cell = cells.get(n)
                        if cell is None or (cell[1] is not None and cell[1] <= now):
                            values.append(None)
                        else:
                            values.append(cell[0])
                            live = True
                if live or any(exp is None or exp > now for _, exp in cells.values()):
                    out.append(values)
        return out

    def _page(
        self,
        pr: Prepared,
        out: list[list[Any]],
        start: int,
        page_size: int,
        token: bytes | None,
    ) -> Result:
        """One page of a result; a result with more pages is kept for the pages to come.

        Kept results are a snapshot taken at the first page, where Cassandra reads each page
        afresh; no caller here depends on seeing writes made between pages.
        """
        if page_size <= 0 or len(out) <= start + page_size:
            if token is not None:
                self._pages.pop(token, None)
            return Result("rows", pr.result_columns, out[start:])
        if token is None:
            token = os.urandom(8)
            self._pages[token] = out
            while len(self._pages) > _PAGES_KEPT:
                self._pages.popitem(last=False)
        state = struct.pack(">Q", start + page_size) + token + _PAGING_MAGIC
        return Result("rows", pr.result_columns, out[start : start + page_size], paging_state=state)

    def _matches(self, table: Table, actual: Any, rel: p.Relation, values: list[Any]) -> bool:
        ctype = table.columns[rel.column]
        if rel.op == "IN":
            if isinstance(rel.term, tuple):
                wanted = [self._value(t, ctype, values) for t in rel.term]
            else:
                wanted = list(self._value(rel.term, CqlType("list", (ctype,)), values) or [])
            return actual in wanted
        want = self._value(rel.term, ctype, values)
        return _compare(actual, rel.op, want)

    def _condition(self, table: Table, actual: Any, rel: p.Relation, values: list[Any]) -> bool:
        """One `IF` condition against the stored cell (None when absent), with Cassandra's
        rules for null and unset condition values (ColumnCondition.compareWithOperator)."""
        if rel.op in ("=", "!=", "<", ">", "<=", ">="):
            want = self._value(rel.term, table.columns[rel.column], values)
            if want is UNSET:
                raise InvalidRequest("Invalid 'unset' value in condition")
            if want is None:
                if rel.op in ("=", "!="):
                    return (actual is None) == (rel.op == "=")
                raise InvalidRequest(f'Invalid comparison with null for operator "{rel.op}"')
            if actual is None:
                return rel.op == "!="
        return self._matches(table, actual, rel, values)

    def _batch(
        self, items: list[tuple[Prepared, list[Any]]], logged: bool, timestamp: int | None = None
    ) -> Result:
        """Apply all statements or, when a condition fails, none of them. They share one
        timestamp: the ballot's when there is a condition, else `timestamp` (the client's)
        or the server's clock, unless a statement names its own."""
        now = self.now()
        conditional = [(pr, v) for pr, v in items if pr.is_lwt]
        shared = timestamp if timestamp is not None and not conditional else self.stamp()
        targets: list[tuple[Prepared, list[Any], tuple[Any, ...], list[tuple[Any, ...]]]] = []
        for pr, values in items:
            if isinstance(pr.stmt, p.Select):
                raise InvalidRequest("Only INSERT, UPDATE and DELETE are allowed in BATCH")
            table = pr.table
            assert table is not None
            stmt = pr.stmt
            if isinstance(stmt, p.Insert):
                row = {
                    c: self._value(t, table.columns[c], values)
                    for c, t in zip(stmt.columns, stmt.values, strict=True)
                }
                for c in table.key_columns:
                    if row[c] is None or row[c] is UNSET:
                        raise InvalidRequest(f"Invalid null value in condition for column {c}")
                pk = tuple(row[c] for c in table.partition_key)
                cks = [tuple(row[c] for c in table.clustering)]
            else:
                pk_list = self._keys(table, table.partition_key, stmt.where, values)
                restricted = [c for c in table.clustering if any(r.column == c for r in stmt.where)]
                if restricted or not table.clustering:
                    cks = self._keys(table, table.clustering, stmt.where, values)
                else:
                    cks = []  # the whole partition
                for pk in pk_list[:-1]:
                    targets.append((pr, values, pk, cks))
                pk = pk_list[-1]
            targets.append((pr, values, pk, cks))
        if conditional:
            keys = {(id(pr.table), pk) for pr, _, pk, _ in targets}
            tables = {id(pr.table) for pr, _, _, _ in targets}
            if len(tables) > 1:
                raise InvalidRequest("Batch with conditions cannot span multiple tables")
            if len(keys) > 1:
                raise InvalidRequest("Batch with conditions cannot span multiple partitions")
            failed: list[list[Any]] = []
            columns: list[ColumnSpec] = []
            applied = True
            for pr, values, pk, cks in targets:
                if not pr.is_lwt:
                    continue
                ok, cols, row = self._check_conditions(pr, values, pk, cks[0], now)
                applied = applied and ok
                if not ok and row is not None:
                    columns, failed = cols, failed + [row]
            table = targets[0][0].table
            assert table is not None
            applied_col = ColumnSpec(table.keyspace, table.name, "[applied]", BOOLEAN)
            if not applied:
                if not columns:
                    return Result("rows", [applied_col], [[False]])
                return Result("rows", [applied_col, *columns], [[False, *r] for r in failed])
        for pr, values, pk, cks in targets:
            self._apply(pr, values, pk, cks, now, self._stamp_of(pr, values, shared))
        if conditional:
            return Result("rows", [applied_col], [[True]])
        return Result("void")

    def _check_conditions(
        self, pr: Prepared, values: list[Any], pk: tuple[Any, ...], ck: tuple[Any, ...], now: float
    ) -> tuple[bool, list[ColumnSpec], list[Any] | None]:
        table = pr.table
        assert table is not None
        stored = table.data.get(pk, {}).get(ck)
        live = stored.live(now) if stored is not None else None
        stmt = pr.stmt
        full: dict[str, Any] | None = None
        if live is not None:
            full = dict(zip(table.partition_key, pk, strict=True))
            full.update(zip(table.clustering, ck, strict=True))
            full.update(live)
        all_cols = [ColumnSpec(table.keyspace, table.name, c, t) for c, t in table.columns.items()]
        if isinstance(stmt, p.Insert):  # IF NOT EXISTS
            if full is None:
                return True, [], None
            return False, all_cols, [full.get(c) for c in table.columns]
        if stmt.if_exists:
            if full is not None:
                return True, [], None
            return False, [], None
        # A row that does not exist has every cell null: `IF c = null` holds for it, and a
        # comparison with a value does not (only `!=` does), as in Cassandra.
        cells = full or {}
        ok = all(self._condition(table, cells.get(c.column), c, values) for c in stmt.conditions)
        if ok:
            return True, [], None
        if full is None:
            return False, [], None
        names = list(dict.fromkeys(c.column for c in stmt.conditions))
        cols = [ColumnSpec(table.keyspace, table.name, n, table.columns[n]) for n in names]
        return False, cols, [full.get(n) for n in names]

    def _stamp_of(self, pr: Prepared, values: list[Any], shared: int) -> int:
        term = getattr(pr.stmt, "timestamp", None)
        if term is None:
            return shared
        value = self._value(term, BIGINT, values)
        if value is UNSET or value is None:
            return shared
        return int(value)

    def _apply(
        self,
        pr: Prepared,
        values: list[Any],
        pk: tuple[Any, ...],
        cks: list[tuple[Any, ...]],
        now: float,
        ts: int,
    ) -> None:
        table = pr.table
        assert table is not None
        stmt = pr.stmt
        part = table.data.setdefault(pk, {})
        if isinstance(stmt, p.Insert | p.Update):
            expires = self._ttl(table, stmt.ttl, values)
            if isinstance(stmt, p.Insert):
                assignments = [
                    (c, t)
                    for c, t in zip(stmt.columns, stmt.values, strict=True)
                    if c not in table.key_columns
                ]
                targets = cks[:1]
            else:
                assignments, targets = stmt.assignments, cks
            for ck in targets:
                row = part.setdefault(ck, Row())
                floor = table.deleted_at(pk, ck)
                if isinstance(stmt, p.Insert) and ts > floor and ts >= row.marker_stamp:
                    row.marker, row.marker_stamp = (True, expires), ts
                for c, t in assignments:
                    v = self._value(t, table.columns[c], values)
                    if v is UNSET:
                        continue
                    if v is None or (table.columns[c].is_collection and not v):
                        _delete_cell(table, pk, ck, row, c, ts)
                    else:
                        _write_cell(table, pk, ck, row, c, v, expires, ts, floor)
                if row.live(now) is None:
                    part.pop(ck, None)
        else:
            whole = not cks and bool(table.clustering)
            if whole:
                table.partition_deleted[pk] = max(table.partition_deleted.get(pk, -1), ts)
            for ck in cks or list(part):
                row = part.get(ck)
                if whole:
                    if row is not None:
                        _shadow(row, ts)
                elif stmt.columns:
                    for c in stmt.columns:
                        if row is None:
                            row = part.setdefault(ck, Row())
                        _delete_cell(table, pk, ck, row, c, ts)
                else:
                    key = (pk, ck)
                    table.row_deleted[key] = max(table.row_deleted.get(key, -1), ts)
                    if row is not None:
                        _shadow(row, ts)
                if row is not None and row.live(now) is None:
                    part.pop(ck, None)
        if not part:
            table.data.pop(pk, None)

    # ---- schema --------------------------------------------------------------------------------
    def _ddl(self, stmt: Any, keyspace: str | None) -> Result:
        if isinstance(stmt, p.Empty):
            return Result("void")
        if isinstance(stmt, p.Use):
            self._keyspace(stmt.keyspace)
            return Result("set_keyspace", keyspace=stmt.keyspace)
        if isinstance(stmt, p.CreateKeyspace):
            return self._create_keyspace(stmt)
        if isinstance(stmt, p.CreateTable):
            return self._create_table(stmt, keyspace)
        if isinstance(stmt, p.Truncate):
            self._table(stmt.table, keyspace).clear()
            return Result("void")
        if isinstance(stmt, p.Drop):
            return self._drop(stmt, keyspace)
        if isinstance(stmt, p.AlterAdd):
            return self._alter_add(stmt, keyspace)
        raise SyntaxException("unsupported statement")

    def _create_keyspace(self, stmt: p.CreateKeyspace) -> Result:
        if stmt.name in self.keyspaces:
            if stmt.if_not_exists:
                return Result("void")
            raise AlreadyExists(stmt.name)
        unknown = set(stmt.options) - {"replication", "durable_writes"}
        if unknown:
            raise SyntaxException(f"Unknown property '{sorted(unknown)[0]}'")
        repl = stmt.options.get("replication")
        if not isinstance(repl, dict) or "class" not in repl:
            raise SyntaxException("Missing mandatory option 'class' for replication")
        cls = str(repl["class"]).rsplit(".", 1)[-1]
        options = {k: str(v) for k, v in repl.items() if k != "class"}
        if cls == "SimpleStrategy":
            if set(options) != {"replication_factor"}:
                raise InvalidRequest(
                    "SimpleStrategy requires a replication_factor strategy option."
                )
        elif cls == "NetworkTopologyStrategy":
            for dc in options:
                if dc not in (self.datacenter, "replication_factor"):
                    raise InvalidRequest(
                        f"Unrecognized strategy option {{{dc}}} passed to "
                        f"NetworkTopologyStrategy for keyspace {stmt.name}"
                    )
        else:
            raise InvalidRequest(f"Unable to find replication strategy class '{repl['class']}'")
        for k, v in options.items():
            if not str(v).isdigit():
                raise InvalidRequest(f"Replication factor must be non-negative, found {v} for {k}")
        self.keyspaces[stmt.name] = Keyspace(
            stmt.name,
            {"class": f"org.apache.cassandra.locator.{cls}", **options},
            bool(stmt.options.get("durable_writes", True)),
        )
        self._schema_changed()
        return Result("schema_change", change=("CREATED", "KEYSPACE", stmt.name, ""))

    def _create_table(self, stmt: p.CreateTable, keyspace: str | None) -> Result:
        ks = self._keyspace(stmt.table.keyspace or keyspace)
        ks_name = ks.name
        if stmt.table.name in ks.tables:
            if stmt.if_not_exists:
                return Result("void")
            raise AlreadyExists(ks_name, stmt.table.name)
        types: dict[str, CqlType] = {}
        static = set()
        for name, ctype, is_static in stmt.columns:
            if name in types:
                raise InvalidRequest(f"Multiple definition of identifier {name}")
            types[name] = parse_type(ctype)
            if is_static:
                static.add(name)
        if not stmt.partition_key:
            raise InvalidRequest("No PRIMARY KEY specifed (exactly one required)")
        for c in stmt.partition_key + stmt.clustering:
            if c not in types:
                raise InvalidRequest(f"Unknown definition {c} referenced in PRIMARY KEY")
            if types[c].is_collection and not types[c].frozen:
                raise InvalidRequest(
                    f"Invalid non-frozen collection type for PRIMARY KEY component {c}"
                )
        for c in stmt.clustering_order:
            if c not in stmt.clustering:
                raise InvalidRequest(f"Unknown definition {c} referenced in CLUSTERING ORDER BY")
        known = {
            "comment", "default_time_to_live", "gc_grace_seconds", "compaction", "compression",
            "caching", "bloom_filter_fp_chance", "speculative_retry", "crc_check_chance",
            "memtable_flush_period_in_ms", "min_index_interval", "max_index_interval",
            "read_repair", "additional_write_policy", "cdc", "extensions", "compact_storage",
        }  # fmt: skip
        for opt, value in stmt.options.items():
            if opt not in known:
                raise SyntaxException(f"Unknown property '{opt}'")
            if opt == "default_time_to_live" and (not isinstance(value, int) or value < 0):
                raise InvalidRequest("default_time_to_live must be greater than or equal to 0")
        ordered = (
            stmt.partition_key
            + stmt.clustering
            + sorted(c for c in types if c not in stmt.partition_key + stmt.clustering)
        )
        ks.tables[stmt.table.name] = Table(
            ks_name,
            stmt.table.name,
            {c: types[c] for c in ordered},
            list(stmt.partition_key),
            list(stmt.clustering),
            dict(stmt.clustering_order),
            dict(stmt.options),
            static,
        )
        self._schema_changed()
        return Result("schema_change", change=("CREATED", "TABLE", ks_name, stmt.table.name))

    def _alter_add(self, stmt: p.AlterAdd, keyspace: str | None) -> Result:
        table = self._table(stmt.table, keyspace)
        new: dict[str, CqlType] = {}
        for name, ctype in stmt.columns:
            if name in table.columns or name in new:
                raise InvalidRequest(
                    f"Invalid column name {name} because it conflicts with an existing column"
                )
            new[name] = parse_type(ctype)
        table.columns.update(new)
        # Cassandra lists regular columns by name after the key columns (SELECT * order).
        keys = table.key_columns
        regular = sorted(c for c in table.columns if c not in keys)
        table.columns = {c: table.columns[c] for c in keys + regular}
        self._schema_changed()
        return Result("schema_change", change=("UPDATED", "TABLE", table.keyspace, table.name))

    def _drop(self, stmt: p.Drop, keyspace: str | None) -> Result:
        if stmt.what == "KEYSPACE":
            if stmt.name not in self.keyspaces:
                if stmt.if_exists:
                    return Result("void")
                raise InvalidRequest(f"Cannot drop non existing keyspace '{stmt.name}'.")
            del self.keyspaces[stmt.name]
            self._schema_changed()
            return Result("schema_change", change=("DROPPED", "KEYSPACE", stmt.name, ""))
        ks_name = stmt.keyspace or keyspace or ""
        ks = self.keyspaces.get(ks_name)
        if ks is None or stmt.name not in ks.tables:
            if stmt.if_exists:
                return Result("void")
            raise InvalidRequest(f"Table '{ks_name}.{stmt.name}' doesn't exist")
        del ks.tables[stmt.name]
        self._schema_changed()
        return Result("schema_change", change=("DROPPED", "TABLE", ks_name, stmt.name))

    # ---- inspection for tests --------------------------------------------------------------
    def rows(self, keyspace: str, table: str) -> list[dict[str, Any]]:
        """Every live row of a table, as dicts (tests look behind the protocol with this)."""
        with self.lock:
            t = self.keyspaces[keyspace].tables[table]
            now = self.now()
            out = []
            for pk, part in t.data.items():
                for ck, row in part.items():
                    live = row.live(now)
                    if live is None:
                        continue
                    full = dict(zip(t.partition_key, pk, strict=True))
                    full.update(zip(t.clustering, ck, strict=True))
                    full.update(live)
                    out.append(full)
            return out


def _selected(table: Table, name: str) -> CqlType:
    """The type of a selector: a column, or `writetime(column)` (a bigint)."""
    if not name.startswith("writetime("):
        return table.column(name)
    column = name[len("writetime(") : -1]
    table.column(column)
    if column in table.key_columns:
        raise InvalidRequest(
            f"Cannot use selection function writeTime on PRIMARY KEY part {column}"
        )
    return BIGINT


def _eq_cols(where: Iterable[p.Relation], cols: list[str]) -> list[str]:
    return [c for c in cols if any(r.column == c and r.op == "=" for r in where)]


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _compare(actual: Any, op: str, want: Any) -> bool:
    if op in ("=", "!="):
        return _OPS[op](actual, want)
    if actual is None or want is None:
        return False
    try:
        return _OPS[op](actual, want)
    except TypeError:
        return False


_SYSTEM_DDL = [
    """CREATE TABLE system.local (key text PRIMARY KEY, bootstrapped text,
    broadcast_address inet, cluster_name text, cql_version text, data_center text,
    gossip_generation int, host_id uuid, listen_address inet, native_protocol_version text,
    partitioner text, rack text, release_version text, rpc_address inet, schema_version uuid,
    tokens set<text>, truncated_at map<uuid, blob>)""",
    """CREATE TABLE system.peers (peer inet PRIMARY KEY, data_center text, host_id uuid,
    preferred_ip inet, rack text, release_version text, rpc_address inet,
    schema_version uuid, tokens set<text>)""",
    """CREATE TABLE system.peers_v2 (peer inet, peer_port int, data_center text,
    host_id uuid, native_address inet, native_port int, preferred_ip inet,
    preferred_port int, rack text, release_version text, schema_version uuid,
    tokens set<text>, PRIMARY KEY ((peer), peer_port))""",
    """CREATE TABLE system_schema.keyspaces (keyspace_name text PRIMARY KEY,
    durable_writes boolean, replication frozen<map<text, text>>)""",
    """CREATE TABLE system_schema.tables (keyspace_name text, table_name text,
    bloom_filter_fp_chance double, caching frozen<map<text, text>>, cdc boolean,
    comment text, compaction frozen<map<text, text>>, compression frozen<map<text, text>>,
    crc_check_chance double, dclocal_read_repair_chance double, default_time_to_live int,
    extensions frozen<map<text, blob>>, flags frozen<set<text>>, gc_grace_seconds int,
    id uuid, max_index_interval int, memtable_flush_period_in_ms int,
    min_index_interval int, read_repair_chance double, speculative_retry text,
    PRIMARY KEY ((keyspace_name), table_name))""",
    """CREATE TABLE system_schema.columns (keyspace_name text, table_name text,
    column_name text, clustering_order text, column_name_bytes blob, kind text,
    position int, type text, PRIMARY KEY ((keyspace_name), table_name, column_name))""",
    """CREATE TABLE system_schema.types (keyspace_name text, type_name text,
    field_names frozen<list<text>>, field_types frozen<list<text>>,
    PRIMARY KEY ((keyspace_name), type_name))""",
    """CREATE TABLE system_schema.functions (keyspace_name text, function_name text,
    argument_types frozen<list<text>>, argument_names frozen<list<text>>, body text,
    called_on_null_input boolean, language text, return_type text,
    PRIMARY KEY ((keyspace_name), function_name, argument_types))""",
    """CREATE TABLE system_schema.aggregates (keyspace_name text, aggregate_name text,
    argument_types frozen<list<text>>, final_func text, initcond text, return_type text,
    state_func text, state_type text,
    PRIMARY KEY ((keyspace_name), aggregate_name, argument_types))""",
    """CREATE TABLE system_schema.triggers (keyspace_name text, table_name text,
    trigger_name text, options frozen<map<text, text>>,
    PRIMARY KEY ((keyspace_name), table_name, trigger_name))""",
    """CREATE TABLE system_schema.indexes (keyspace_name text, table_name text,
    index_name text, kind text, options frozen<map<text, text>>,
    PRIMARY KEY ((keyspace_name), table_name, index_name))""",
    """CREATE TABLE system_schema.views (keyspace_name text, view_name text,
    base_table_id uuid, base_table_name text, include_all_columns boolean,
    where_clause text, PRIMARY KEY ((keyspace_name), view_name))""",
    """CREATE TABLE system_virtual_schema.keyspaces (keyspace_name text PRIMARY KEY)""",
    """CREATE TABLE system_virtual_schema.tables (keyspace_name text, table_name text,
    comment text, PRIMARY KEY ((keyspace_name), table_name))""",
    """CREATE TABLE system_virtual_schema.columns (keyspace_name text, table_name text,
    column_name text, clustering_order text, column_name_bytes blob, kind text,
    position int, type text, PRIMARY KEY ((keyspace_name), table_name, column_name))""",
]


def _shadow(row: Row, ts: int) -> None:
    """Drop what a deletion at `ts` covers (a deletion wins at an equal timestamp)."""
    for c in [c for c, stamp in row.stamps.items() if stamp <= ts]:
        row.cells.pop(c, None)
        del row.stamps[c]
    if row.marker_stamp <= ts:
        row.marker, row.marker_stamp = (False, None), 0


def _delete_cell(
    table: Table, pk: tuple[Any, ...], ck: tuple[Any, ...], row: Row, column: str, ts: int
) -> None:
    key = (pk, ck, column)
    table.cell_deleted[key] = max(table.cell_deleted.get(key, -1), ts)
    if row.stamps.get(column, -1) <= ts:
        row.cells.pop(column, None)
        row.stamps.pop(column, None)


def _write_cell(
    table: Table,
    pk: tuple[Any, ...],
    ck: tuple[Any, ...],
    row: Row,
    column: str,
    value: Any,
    expires: float | None,
    ts: int,
    floor: int,
) -> None:
    """Write a cell unless a deletion or a newer value shadows it (ties: the deletion,
    or the greater value)."""
    if ts <= max(floor, table.cell_deleted.get((pk, ck, column), -1)):
        return
    stamp = row.stamps.get(column)
    if stamp is not None and stamp > ts:
        return
    if stamp == ts and not _greater(value, row.cells[column][0]):
        return
    row.cells[column] = (value, expires)
    row.stamps[column] = ts


def _greater(a: Any, b: Any) -> bool:
    try:
        return bool(a > b)
    except TypeError:
        return str(a) > str(b)
