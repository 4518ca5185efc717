"""A parser for the subset of CQL 3 the platform (and cqlsh's first steps) use.

It produces plain statement objects; checking them against the schema (unknown tables and
columns, which restrictions Cassandra allows) is the engine's job, as in Cassandra where
parsing and preparation are separate steps with separate errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.support.cql.errors import SyntaxException

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|--[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*')
  | (?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)
  | (?P<blob>0[xX][0-9a-fA-F]*)
  | (?P<float>-?\d+\.\d+(?:[eE][+-]?\d+)?|-?\d+[eE][+-]?\d+)
  | (?P<int>-?\d+)
  | (?P<qident>"(?:[^"]|"")+")
  | (?P<named>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|[(),;.=<>?{}\[\]*:+-])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class Tok:
    kind: str
    value: str
    pos: int

    @property
    def upper(self) -> str:
        return self.value.upper() if self.kind == "ident" else self.value


def tokenize(text: str) -> list[Tok]:
    out: list[Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SyntaxException(f"line 1:{pos} token recognition error at: '{text[pos]}'")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(Tok(kind, m.group(), pos))
        pos = m.end()
    return out


# ---- terms ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Literal:
    kind: str  # string, int, float, bool, uuid, blob, null
    value: Any


@dataclass(frozen=True)
class Bind:
    index: int
    name: str | None = None


@dataclass(frozen=True)
class Collection:
    kind: str  # list, set, map
    items: tuple[Any, ...]  # terms, or (key, value) term pairs for a map


@dataclass(frozen=True)
class FunctionCall:
    name: str
    args: tuple[Any, ...]


# ---- statements -------------------------------------------------------------------------
@dataclass
class TableRef:
    keyspace: str | None
    name: str


@dataclass
class Relation:
    column: str
    op: str  # = < > <= >= IN !=
    term: Any  # a term, or a tuple of terms for IN (...)


@dataclass
class Use:
    keyspace: str


@dataclass
class CreateKeyspace:
    name: str
    if_not_exists: bool
    options: dict[str, Any]


@dataclass
class CreateTable:
    table: TableRef
    if_not_exists: bool
    columns: list[tuple[str, str, bool]]  # name, type text, static
    partition_key: list[str]
    clustering: list[str]
    options: dict[str, Any]
    clustering_order: dict[str, str]


@dataclass
class Drop:
    what: str  # KEYSPACE or TABLE
    keyspace: str | None
    name: str
    if_exists: bool


@dataclass
class Truncate:
    table: TableRef


@dataclass
class AlterAdd:
    """`ALTER TABLE t ADD c type` or `ADD (c1 type, c2 type)`: new regular columns."""

    table: TableRef
    columns: list[tuple[str, str]]


@dataclass
class Insert:
    table: TableRef
    columns: list[str]
    values: list[Any]
    if_not_exists: bool = False
    ttl: Any = None
    timestamp: Any = None


@dataclass
class Update:
    table: TableRef
    assignments: list[tuple[str, Any]]
    where: list[Relation]
    conditions: list[Relation] = field(default_factory=list)
    if_exists: bool = False
    ttl: Any = None
    timestamp: Any = None


@dataclass
class Delete:
    table: TableRef
    columns: list[str]
    where: list[Relation]
    conditions: list[Relation] = field(default_factory=list)
    if_exists: bool = False
    timestamp: Any = None


@dataclass
class Select:
    table: TableRef
    selectors: list[str] | None  # None means *
    count: bool
    where: list[Relation]
    order_by: list[tuple[str, str]]
    limit: Any
    allow_filtering: bool
    aliases: dict[str, str] = field(default_factory=dict)


@dataclass
class Empty:
    pass


@dataclass
class TextBatch:
    logged: bool
    statements: list[Any]


Statement = (
    Use
    | CreateKeyspace
    | CreateTable
    | Drop
    | Truncate
    | AlterAdd
    | Insert
    | Update
    | Delete
    | Select
)


class Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.binds: list[Bind] = []

    # ---- helpers ------------------------------------------------------------------------
    def peek(self, offset: int = 0) -> Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def at(self, *words: str) -> bool:
        for k, w in enumerate(words):
            t = self.peek(k)
            if t is None or t.upper != w:
                return False
        return True

    def accept(self, *words: str) -> bool:
        if self.at(*words):
            self.i += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            self.fail(f"expecting {' '.join(words)!r}")

    def fail(self, why: str) -> Any:
        t = self.peek()
        where = f"'{t.value}'" if t else "EOF"
        pos = t.pos if t else len(self.text)
        raise SyntaxException(f"line 1:{pos} {why} at input {where}")

    def ident(self) -> str:
        t = self.peek()
        if t is None:
            return self.fail("expecting an identifier")  # type: ignore[no-any-return]
        self.i += 1
        if t.kind == "qident":
            return t.value[1:-1].replace('""', '"')
        if t.kind == "ident":
            return t.value.lower()
        return self.fail("expecting an identifier")  # type: ignore[no-any-return]

    def table_ref(self) -> TableRef:
        first = self.ident()
        if self.accept("."):
            return TableRef(first, self.ident())
        return TableRef(None, first)

    # ---- entry ----------------------------------------------------------------------------
    def statement(self) -> Any:
        stmt = self._statement()
        self.accept(";")
        if self.peek() is not None:
            self.fail("extraneous input")
        return stmt

    def _statement(self) -> Any:
        if self.at(";") or self.peek() is None:
            # cqlsh sends a lone ";" after the last statement of an `-e` script.
            return Empty()
        if self.accept("USE"):
            return Use(self.ident())
        if self.accept("CREATE", "KEYSPACE"):
            return self.create_keyspace()
        if self.accept("CREATE", "TABLE") or self.accept("CREATE", "COLUMNFAMILY"):
            return self.create_table()
        if self.accept("DROP"):
            what = self.ident().upper()
            if what not in ("KEYSPACE", "TABLE"):
                self.fail("expecting KEYSPACE or TABLE")
            if_exists = self.accept("IF", "EXISTS")
            ref = self.table_ref()
            if what == "KEYSPACE":
                return Drop(what, None, ref.name, if_exists)
            return Drop(what, ref.keyspace, ref.name, if_exists)
        if self.accept("ALTER", "TABLE"):
            ref = self.table_ref()
            self.expect("ADD")
            grouped = self.accept("(")
            added = [(self.ident(), self.type_text())]
            while grouped and self.accept(","):
                added.append((self.ident(), self.type_text()))
            if grouped:
                self.expect(")")
            return AlterAdd(ref, added)
        if self.accept("TRUNCATE"):
            self.accept("TABLE")
            return Truncate(self.table_ref())
        if self.accept("INSERT", "INTO"):
            return self.insert()
        if self.accept("UPDATE"):
            return self.update()
        if self.accept("DELETE"):
            return self.delete()
        if self.accept("SELECT"):
            return self.select()
        if self.accept("BEGIN"):
            logged = not self.accept("UNLOGGED")
            self.accept("LOGGED")
            self.expect("BATCH")
            stmts = []
            while not self.at("APPLY"):
                stmts.append(self._statement())
                self.accept(";")
            self.expect("APPLY", "BATCH")
            return TextBatch(logged, stmts)
        return self.fail("no viable alternative")

    # ---- DDL ------------------------------------------------------------------------------
    def create_keyspace(self) -> CreateKeyspace:
        if_not_exists = self.accept("IF", "NOT", "EXISTS")
        name = self.ident()
        self.expect("WITH")
        return CreateKeyspace(name, if_not_exists, self.properties())

    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        while True:
            key = self.ident()
            self.expect("=")
            props[key] = self.constant()
            if not self.accept("AND"):
                return props

    def constant(self) -> Any:
        """An option value: a literal or a map literal with literal entries."""
        term = self.term()
        return _plain(term)

    def create_table(self) -> CreateTable:
        if_not_exists = self.accept("IF", "NOT", "EXISTS")
        ref = self.table_ref()
        self.expect("(")
        columns: list[tuple[str, str, bool]] = []
        pk: list[str] = []
        clustering: list[str] = []
        while True:
            if self.accept("PRIMARY", "KEY"):
                self.expect("(")
                if self.accept("("):
                    pk = [self.ident()]
                    while self.accept(","):
                        pk.append(self.ident())
                    self.expect(")")
                else:
                    pk = [self.ident()]
                while self.accept(","):
                    clustering.append(self.ident())
                self.expect(")")
            else:
                name = self.ident()
                ctype = self.type_text()
                static = self.accept("STATIC")
                columns.append((name, ctype, static))
                if self.accept("PRIMARY", "KEY"):
                    if pk:
                        self.fail("multiple PRIMARY KEYs")
                    pk = [name]
            if not self.accept(","):
                break
            if self.at(")"):
                break
        self.expect(")")
        options: dict[str, Any] = {}
        order: dict[str, str] = {}
        if self.accept("WITH"):
            while True:
                if self.accept("CLUSTERING", "ORDER", "BY"):
                    self.expect("(")
                    while True:
                        col = self.ident()
                        direction = "DESC" if self.accept("DESC") else "ASC"
                        self.accept("ASC")
                        order[col] = direction
                        if not self.accept(","):
                            break
                    self.expect(")")
                elif self.accept("COMPACT", "STORAGE"):
                    options["compact_storage"] = True
                else:
                    key = self.ident()
                    self.expect("=")
                    options[key] = self.constant()
                if not self.accept("AND"):
                    break
        return CreateTable(ref, if_not_exists, columns, pk, clustering, options, order)

    def type_text(self) -> str:
        name = self.ident()
        if self.accept("<"):
            parts = [self.type_text()]
            while self.accept(","):
                parts.append(self.type_text())
            self.expect(">")
            return f"{name}<{', '.join(parts)}>"
        return name

    # ---- terms ----------------------------------------------------------------------------
    def term(self) -> Any:
        t = self.peek()
        if t is None:
            return self.fail("expecting a value")
        self.i += 1
        if t.kind == "op" and t.value == "?":
            b = Bind(len(self.binds))
            self.binds.append(b)
            return b
        if t.kind == "named":
            b = Bind(len(self.binds), t.value[1:].lower())
            self.binds.append(b)
            return b
        if t.kind == "string":
            return Literal("string", t.value[1:-1].replace("''", "'"))
        if t.kind == "int":
            return Literal("int", int(t.value))
        if t.kind == "float":
            return Literal("float", float(t.value))
        if t.kind == "uuid":
            return Literal("uuid", t.value)
        if t.kind == "blob":
            return Literal("blob", t.value)
        if t.kind == "ident":
            up = t.value.upper()
            if up in ("TRUE", "FALSE"):
                return Literal("bool", up == "TRUE")
            if up == "NULL":
                return Literal("null", None)
            if up in ("NAN", "INFINITY"):
                return Literal("float", float(up.lower()))
            if self.accept("("):
                args = []
                if not self.accept(")"):
                    args.append(self.term())
                    while self.accept(","):
                        args.append(self.term())
                    self.expect(")")
                return FunctionCall(t.value.lower(), tuple(args))
        if t.kind == "op" and t.value == "[":
            items = []
            if not self.accept("]"):
                items.append(self.term())
                while self.accept(","):
                    items.append(self.term())
                self.expect("]")
            return Collection("list", tuple(items))
        if t.kind == "op" and t.value == "{":
            if self.accept("}"):
                return Collection("map", ())
            first = self.term()
            if self.accept(":"):
                pairs = [(first, self.term())]
                while self.accept(","):
                    k = self.term()
                    self.expect(":")
                    pairs.append((k, self.term()))
                self.expect("}")
                return Collection("map", tuple(pairs))
            items = [first]
            while self.accept(","):
                items.append(self.term())
            self.expect("}")
            return Collection("set", tuple(items))
        self.i -= 1
        return self.fail("no viable alternative")

    # ---- DML ------------------------------------------------------------------------------
    def using(self) -> tuple[Any, Any]:
        ttl = ts = None
        if self.accept("USING"):
            while True:
                if self.accept("TTL"):
                    ttl = self.term()
                elif self.accept("TIMESTAMP"):
                    ts = self.term()
                else:
                    self.fail("expecting TTL or TIMESTAMP")
                if not self.accept("AND"):
                    break
        return ttl, ts

    def insert(self) -> Insert:
        ref = self.table_ref()
        self.expect("(")
        cols = [self.ident()]
        while self.accept(","):
            cols.append(self.ident())
        self.expect(")")
        self.expect("VALUES")
        self.expect("(")
        values = [self.term()]
        while self.accept(","):
            values.append(self.term())
        self.expect(")")
        if len(cols) != len(values):
            raise SyntaxException("Unmatched column names/values")
        if_not_exists = self.accept("IF", "NOT", "EXISTS")
        ttl, ts = self.using()
        return Insert(ref, cols, values, if_not_exists, ttl, ts)

    def where(self) -> list[Relation]:
        rels = [self.relation()]
        while self.accept("AND"):
            rels.append(self.relation())
        return rels

    def relation(self) -> Relation:
        if self.at("TOKEN", "("):
            self.fail("token() restrictions are not supported by this server")
        col = self.ident()
        t = self.peek()
        if self.accept("IN"):
            if self.accept("("):
                items: list[Any] = []
                if not self.accept(")"):
                    items.append(self.term())
                    while self.accept(","):
                        items.append(self.term())
                    self.expect(")")
                return Relation(col, "IN", tuple(items))
            return Relation(col, "IN", self.term())
        if t is not None and t.kind == "op" and t.value in ("=", "<", ">", "<=", ">=", "!="):
            self.i += 1
            return Relation(col, t.value, self.term())
        return self.fail("expecting a relation")

    def conditions(self) -> tuple[list[Relation], bool]:
        if self.accept("IF", "EXISTS"):
            return [], True
        if self.accept("IF"):
            return self.where(), False
        return [], False

    def update(self) -> Update:
        ref = self.table_ref()
        ttl, ts = self.using()
        self.expect("SET")
        assignments = []
        while True:
            col = self.ident()
            self.expect("=")
            assignments.append((col, self.term()))
            if not self.accept(","):
                break
        self.expect("WHERE")
        where = self.where()
        conds, if_exists = self.conditions()
        return Update(ref, assignments, where, conds, if_exists, ttl, ts)

    def delete(self) -> Delete:
        cols = []
        if not self.at("FROM"):
            cols.append(self.ident())
            while self.accept(","):
                cols.append(self.ident())
        self.expect("FROM")
        ref = self.table_ref()
        _, ts = self.using()
        self.expect("WHERE")
        where = self.where()
        conds, if_exists = self.conditions()
        return Delete(ref, cols, where, conds, if_exists, ts)

    def select(self) -> Select:
        self.accept("JSON") and self.fail("SELECT JSON is not supported by this server")
        if self.accept("DISTINCT"):
            self.fail("SELECT DISTINCT is not supported by this server")
        selectors: list[str] | None = []
        aliases: dict[str, str] = {}
        count = False
        if self.accept("*"):
            selectors = None
        elif self.at("COUNT", "("):
            self.i += 2
            if not (self.accept("*") or self.accept("1")):
                self.fail("expecting * in count()")
            self.expect(")")
            count = True
            if self.accept("AS"):
                aliases["count"] = self.ident()
        else:
            assert selectors is not None
            while True:
                if self.at("WRITETIME", "("):
                    self.i += 2
                    col = f"writetime({self.ident()})"
                    self.expect(")")
                else:
                    col = self.ident()
                selectors.append(col)
                if self.accept("AS"):
                    aliases[col] = self.ident()
                if not self.accept(","):
                    break
        self.expect("FROM")
        ref = self.table_ref()
        where = self.where() if self.accept("WHERE") else []
        order: list[tuple[str, str]] = []
        if self.accept("ORDER", "BY"):
            while True:
                col = self.ident()
                direction = "DESC" if self.accept("DESC") else "ASC"
                self.accept("ASC")
                order.append((col, direction))
                if not self.accept(","):
                    break
        limit = self.term() if self.accept("LIMIT") else None
        allow = self.accept("ALLOW", "FILTERING")
        return Select(ref, selectors, count, where, order, limit, allow, aliases)


def _plain(term: Any) -> Any:
    if isinstance(term, Literal):
        return term.value
    if isinstance(term, Collection):
        if term.kind == "map":
            return {_plain(k): _plain(v) for k, v in term.items}
        return [_plain(i) for i in term.items]
    raise SyntaxException("a constant is expected in options")


def parse(text: str) -> tuple[Any, list[Bind]]:
    p = Parser(text)
    stmt = p.statement()
    return stmt, p.binds
