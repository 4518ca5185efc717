"""The CQL test server, driven by clients nobody here wrote: cassandra-driver (with its full
default handshake) and the `cqlsh` command. It must answer as Cassandra does and refuse
what Cassandra refuses, or the Cassandra backend's tests prove nothing."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra import ConsistencyLevel, InvalidRequest, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import FallthroughRetryPolicy, RoundRobinPolicy
from cassandra.query import BatchStatement, BatchType, SimpleStatement

from tests.support.cql.server import CqlServer


def _cluster(server: CqlServer, **kw: object) -> Cluster:
    profile = ExecutionProfile(
        load_balancing_policy=RoundRobinPolicy(), retry_policy=FallthroughRetryPolicy()
    )
    return Cluster(
        [server.host],
        port=server.port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def session(cql_server: CqlServer) -> Iterator[Session]:
    cluster = _cluster(cql_server, protocol_version=4)
    s = cluster.connect()
    s.execute(
        "CREATE KEYSPACE ks WITH replication = "
        "{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}"
    )
    s.set_keyspace("ks")
    s.execute(
        "CREATE TABLE t (p text, c int, v text, n bigint, b boolean, ts timestamp, u uuid, "
        "bl blob, m map<text, int>, st set<text>, l list<int>, PRIMARY KEY ((p), c))"
    )
    s.execute("CREATE TABLE kv (k text PRIMARY KEY, v text, version int)")
    yield s
    cluster.shutdown()


def test_default_handshake_negotiates_down_to_v4(
    cql_server: CqlServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No protocol_version: the driver tries DSE v2, DSE v1, v5, and settles on v4."""
    caplog.set_level(logging.WARNING, "cassandra")
    cluster = _cluster(cql_server)  # schema metadata and token metadata left on
    try:
        s = cluster.connect()
        assert cluster.protocol_version == 4
        assert "Downgrading core protocol version from 5 to 4" in caplog.text
        local = s.execute("SELECT * FROM system.local WHERE key = 'local'").one()
        assert local.cluster_name and local.data_center == "datacenter1"
        s.execute("CREATE KEYSPACE k2 WITH replication = {'class': 'SimpleStrategy', "
                  "'replication_factor': 1}")  # fmt: skip
        s.execute("CREATE TABLE k2.x (a int PRIMARY KEY, b text)")
        assert cluster.metadata.keyspaces["k2"].tables["x"].primary_key[0].name == "a"
        assert cluster.control_connection.wait_for_schema_agreement()
    finally:
        cluster.shutdown()


def test_types_round_trip(session: Session) -> None:
    u = uuid.uuid4()
    ins = session.prepare(
        "INSERT INTO t (p, c, v, n, b, ts, u, bl, m, st, l) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    session.execute(
        ins,
        (
            "a",
            1,
            "héllo",
            2**40,
            True,
            1_700_000_000_000,
            u,
            b"\x00\x01",
            {"x": 1},
            {"s1", "s2"},
            [3, 2, 1],
        ),  # fmt: skip
    )
    row = session.execute("SELECT * FROM t WHERE p = 'a' AND c = 1").one()
    assert (row.v, row.n, row.b, row.u, row.bl) == ("héllo", 2**40, True, u, b"\x00\x01")
    assert row.ts.year == 2023
    assert dict(row.m) == {"x": 1} and set(row.st) == {"s1", "s2"} and row.l == [3, 2, 1]
    session.execute(
        "INSERT INTO t (p, c, u, bl, m) VALUES ('b', 2, 5a7c9d1e-0000-4000-8000-000000000001, "
        "0xff, {'k': 7})"
    )
    row = session.execute("SELECT u, bl, m FROM t WHERE p = 'b' AND c = 2").one()
    assert str(row.u) == "5a7c9d1e-0000-4000-8000-000000000001" and row.bl == b"\xff"


def test_where_in_order_limit_and_paging(session: Session) -> None:
    ins = session.prepare("INSERT INTO t (p, c, v) VALUES (?, ?, ?)")
    for p in ("a", "b"):
        for c in range(25):
            session.execute(ins, (p, c, f"{p}{c}"))
    rows = list(session.execute("SELECT c FROM t WHERE p = 'a' ORDER BY c DESC LIMIT 3"))
    assert [r.c for r in rows] == [24, 23, 22]
    rows = list(session.execute("SELECT v FROM t WHERE p IN ('a', 'b') AND c = 3"))
    assert sorted(r.v for r in rows) == ["a3", "b3"]
    sel = session.prepare("SELECT v FROM t WHERE p IN ? AND c >= ?")
    assert len(list(session.execute(sel, (["a", "b"], 20)))) == 10
    stmt = SimpleStatement("SELECT c FROM t WHERE p = 'a'", fetch_size=7)
    result = session.execute(stmt)
    assert len(result.current_rows) == 7 and result.has_more_pages
    assert [r.c for r in result] == list(range(25))  # the driver follows the paging state
    assert session.execute("SELECT count(*) FROM t").one().count == 50


def test_full_table_scan_pages_return_every_row_once(
    cql_server: CqlServer, session: Session
) -> None:
    """A SELECT without WHERE over many partitions, paged: every live row exactly once,
    with later pages served from the first page's result rather than a new scan each."""
    session.execute("CREATE TABLE scan (k int PRIMARY KEY, v text)")
    insert = session.prepare("INSERT INTO scan (k, v) VALUES (?, ?)")
    for k in range(2500):
        session.execute(insert, (k, f"v{k}"))
    session.execute("INSERT INTO scan (k, v) VALUES (9999, 'gone') USING TTL 1")
    cql_server.advance_time(2)
    rows = list(session.execute(SimpleStatement("SELECT k, v FROM scan", fetch_size=300)))
    assert sorted(r.k for r in rows) == list(range(2500))
    assert all(r.v == f"v{r.k}" for r in rows)
    assert len(cql_server.engine._pages) == 0, "a finished scan keeps nothing"


def test_alter_table_add_columns(session: Session) -> None:
    session.execute("CREATE TABLE alt (k int PRIMARY KEY, a text)")
    session.execute("INSERT INTO alt (k, a) VALUES (1, 'x')")
    session.execute("ALTER TABLE alt ADD (b bigint, c text)")
    session.execute("INSERT INTO alt (k, a, b, c) VALUES (2, 'y', 7, 'z')")
    rows = {r.k: r for r in session.execute("SELECT * FROM alt")}
    assert (rows[1].a, rows[1].b, rows[1].c) == ("x", None, None)
    assert (rows[2].b, rows[2].c) == (7, "z")
    with pytest.raises(InvalidRequest, match="conflicts with an existing column"):
        session.execute("ALTER TABLE alt ADD b text")


def test_refuses_what_cassandra_refuses(session: Session) -> None:
    refusals = {
        "SELECT * FROM t WHERE v = 'x'": "ALLOW FILTERING",
        "SELECT * FROM t WHERE c = 1": "ALLOW FILTERING",
        "SELECT * FROM t WHERE p = 'a' ORDER BY v": "only supported on the clustered columns",
        "SELECT * FROM nope": "unconfigured table nope",
        "SELECT nope FROM t": "Undefined column name nope",
        "INSERT INTO t (p, v) VALUES ('a', 'x')": "Some clustering keys are missing: c",
        "UPDATE t SET v = 'x' WHERE p = 'a'": "Some clustering keys are missing: c",
        "UPDATE t SET v = 'x' WHERE c = 1": "Some partition key parts are missing: p",
        "DELETE FROM t WHERE c = 1": "Some partition key parts are missing: p",
        "UPDATE t SET c = 2 WHERE p = 'a' AND c = 1": "PRIMARY KEY part c found in SET part",
        "UPDATE t SET v = 'x' WHERE p = 'a' AND c = 1 AND v = 'y'": "Non PRIMARY KEY columns",
        "INSERT INTO t (p, c, nope) VALUES ('a', 1, 'x')": "Undefined column name nope",
        "SELECT * FROM other.t": "Keyspace 'other' does not exist",
    }
    for cql, message in refusals.items():
        with pytest.raises(InvalidRequest, match=message):
            session.execute(cql)
    session.execute("CREATE TABLE two (a text, b text, c int, PRIMARY KEY ((a, b), c))")
    with pytest.raises(InvalidRequest, match="Partition key parts: b must be restricted"):
        session.execute("SELECT * FROM two WHERE a = 'x'")
    with pytest.raises(InvalidRequest, match="cannot span multiple partitions"):
        batch = BatchStatement()
        batch.add("INSERT INTO kv (k, v) VALUES ('a', 'x') IF NOT EXISTS")
        batch.add("INSERT INTO kv (k, v) VALUES ('b', 'x')")
        session.execute(batch)
    # ... and allows what it allows.
    session.execute("SELECT * FROM t WHERE v = 'x' ALLOW FILTERING")
    session.execute("DELETE FROM t WHERE p = 'a'")  # a whole partition


def test_lightweight_transactions(session: Session) -> None:
    r = session.execute("INSERT INTO kv (k, v, version) VALUES ('a', 'x', 1) IF NOT EXISTS")
    assert r.was_applied
    r = session.execute("INSERT INTO kv (k, v, version) VALUES ('a', 'y', 1) IF NOT EXISTS")
    assert not r.was_applied and r.one().v == "x"
    upd = session.prepare("UPDATE kv SET v = ?, version = ? WHERE k = ? IF version = ?")
    assert session.execute(upd, ("z", 2, "a", 1)).was_applied
    r = session.execute(upd, ("w", 3, "a", 1))
    assert not r.was_applied and r.one().version == 2
    assert not session.execute(upd, ("w", 3, "missing", 1)).was_applied
    r = session.execute("DELETE FROM kv WHERE k = 'a' IF v = 'z'")
    assert r.was_applied
    assert session.execute("SELECT * FROM kv WHERE k = 'a'").one() is None


def test_conditions_on_null_and_missing_rows_as_cassandra_evaluates_them(
    session: Session,
) -> None:
    """A missing row has every cell null: `IF c = null` applies to it (and creates it), a
    comparison with a value does not and answers `[applied]` alone; a comparison with a
    null value other than = and != is refused (ColumnCondition.compareWithOperator)."""
    fenced = session.prepare("UPDATE kv SET v = ?, version = ? WHERE k = ? IF version <= ?")
    first = session.prepare("UPDATE kv SET v = ?, version = ? WHERE k = ? IF version = null")
    r = session.execute(fenced, ("x", 1, "f", 5))
    assert not r.was_applied and list(r.one()._fields) == ["applied"]
    assert session.execute(first, ("x", 1, "f")).was_applied
    assert session.execute("SELECT v FROM kv WHERE k = 'f'").one().v == "x"
    assert session.execute(fenced, ("y", 3, "f", 5)).was_applied
    r = session.execute(fenced, ("z", 1, "f", 2))
    assert not r.was_applied and r.one().version == 3
    assert not session.execute(first, ("z", 1, "f")).was_applied
    assert session.execute("UPDATE kv SET v = 'n' WHERE k = 'g' IF v != 'x'").was_applied
    with pytest.raises(InvalidRequest, match='Invalid comparison with null for operator "<="'):
        session.execute(fenced, ("z", 1, "f", None))


def test_conditional_batch_in_one_partition_checks_and_raises_a_fence(session: Session) -> None:
    """The fencing pattern: a conditional batch in one partition applies all its writes
    only if the partition's fence is at most the writer's, and raises the fence."""
    session.execute("CREATE TABLE f (p text, c int, v text, fence bigint, PRIMARY KEY ((p), c))")
    session.execute("INSERT INTO f (p, c, v, fence) VALUES ('j', 0, 'x', 1)")

    def write(epoch: int, value: str) -> bool:
        batch = BatchStatement()
        batch.add("UPDATE f SET fence = %s WHERE p = 'j' AND c = 0 IF fence <= %s", (epoch, epoch))
        batch.add("INSERT INTO f (p, c, v) VALUES ('j', 1, %s)", (value,))
        return bool(session.execute(batch).was_applied)

    assert write(2, "new leader")
    assert not write(1, "deposed leader")
    rows = {r.c: r for r in session.execute("SELECT c, v, fence FROM f WHERE p = 'j'")}
    assert rows[0].fence == 2 and rows[1].v == "new leader"
    with pytest.raises(InvalidRequest, match="cannot span multiple tables"):
        batch = BatchStatement()
        batch.add("UPDATE f SET fence = 3 WHERE p = 'j' AND c = 0 IF fence <= 3")
        batch.add("INSERT INTO kv (k, v) VALUES ('j', 'x')")
        session.execute(batch)


def test_consistency_levels_refused_as_cassandra_refuses(session: Session) -> None:
    def run(cql: str, consistency: int, serial: int | None = None) -> object:
        stmt = SimpleStatement(cql, consistency_level=consistency)
        if serial is not None:
            # past the driver's own check: another client may send any level
            stmt._serial_consistency_level = serial
        return session.execute(stmt)

    lwt = "UPDATE kv SET v = 'x' WHERE k = 'c' IF v = null"
    with pytest.raises(InvalidRequest, match="Must be one of SERIAL or LOCAL_SERIAL"):
        run(lwt, ConsistencyLevel.QUORUM, ConsistencyLevel.QUORUM)
    with pytest.raises(InvalidRequest, match="not supported as conditional update commit"):
        run(lwt, ConsistencyLevel.SERIAL, ConsistencyLevel.SERIAL)
    with pytest.raises(InvalidRequest, match="must use conditional updates for serializable"):
        run("INSERT INTO kv (k, v) VALUES ('c', 'x')", ConsistencyLevel.LOCAL_SERIAL)
    with pytest.raises(InvalidRequest, match="ANY ConsistencyLevel is only supported for writes"):
        run("SELECT * FROM kv WHERE k = 'c'", ConsistencyLevel.ANY)
    # ... and what it allows: LWT at LOCAL_QUORUM with LOCAL_SERIAL, a SERIAL read.
    run(lwt, ConsistencyLevel.LOCAL_QUORUM, ConsistencyLevel.LOCAL_SERIAL)
    assert run("SELECT v FROM kv WHERE k = 'c'", ConsistencyLevel.LOCAL_SERIAL).one().v == "x"


def test_batches_are_atomic(session: Session) -> None:
    ins = session.prepare("INSERT INTO kv (k, v) VALUES (?, ?)")
    for kind in (BatchType.LOGGED, BatchType.UNLOGGED):
        batch = BatchStatement(batch_type=kind)
        batch.add(ins, ("b1", str(kind)))
        batch.add(ins, ("b2", str(kind)))
        batch.add("DELETE FROM t WHERE p = 'zz' AND c = 1")
        session.execute(batch)
        assert session.execute("SELECT v FROM kv WHERE k = 'b2'").one().v == str(kind)
    # A conditional batch on one partition: all or nothing.
    session.execute("INSERT INTO t (p, c, v) VALUES ('q', 1, 'old')")
    batch = BatchStatement()
    batch.add("UPDATE t SET v = 'new' WHERE p = 'q' AND c = 1 IF v = 'other'")
    batch.add("INSERT INTO t (p, c, v) VALUES ('q', 2, 'x')")
    assert not session.execute(batch).was_applied
    assert session.execute("SELECT * FROM t WHERE p = 'q' AND c = 2").one() is None


def test_writes_resolve_by_timestamp_whenever_they_arrive(session: Session) -> None:
    """Last write wins by timestamp, not by arrival: a write older than the cell, or than
    a deletion of its row or partition, is dropped; at equal timestamps the deletion
    wins, and of two values the greater."""

    def v(p: str, c: int) -> object:
        row = session.execute("SELECT v FROM t WHERE p = %s AND c = %s", (p, c)).one()
        return None if row is None else row.v

    session.execute("INSERT INTO t (p, c, v) VALUES ('a', 1, 'new') USING TIMESTAMP 2000")
    session.execute("INSERT INTO t (p, c, v) VALUES ('a', 1, 'late') USING TIMESTAMP 1000")
    assert v("a", 1) == "new"
    written = session.execute("SELECT WRITETIME(v) AS w FROM t WHERE p = 'a' AND c = 1").one()
    assert written.w == 2000
    session.execute("UPDATE t USING TIMESTAMP 3000 SET v = 'newer' WHERE p = 'a' AND c = 1")
    assert v("a", 1) == "newer"
    # a row deletion shadows an older write that arrives after it
    session.execute("DELETE FROM t USING TIMESTAMP 5000 WHERE p = 'a' AND c = 1")
    session.execute("INSERT INTO t (p, c, v) VALUES ('a', 1, 'stale') USING TIMESTAMP 4000")
    assert v("a", 1) is None
    session.execute("INSERT INTO t (p, c, v) VALUES ('a', 1, 'back') USING TIMESTAMP 6000")
    assert v("a", 1) == "back"
    # so does a partition's, for every row in it, and a cell's deletion for that cell
    session.execute("DELETE FROM t USING TIMESTAMP 8000 WHERE p = 'a'")
    session.execute("INSERT INTO t (p, c, v) VALUES ('a', 2, 'stale') USING TIMESTAMP 7000")
    assert session.execute("SELECT * FROM t WHERE p = 'a'").one() is None
    session.execute("INSERT INTO kv (k, v, version) VALUES ('c', 'x', 1) USING TIMESTAMP 100")
    session.execute("DELETE v FROM kv USING TIMESTAMP 300 WHERE k = 'c'")
    session.execute("UPDATE kv USING TIMESTAMP 200 SET v = 'y', version = 2 WHERE k = 'c'")
    row = session.execute("SELECT v, version FROM kv WHERE k = 'c'").one()
    assert (row.v, row.version) == (None, 2)
    # equal timestamps: the deletion, else the greater value
    session.execute("INSERT INTO kv (k, v) VALUES ('tie', 'b') USING TIMESTAMP 50")
    session.execute("INSERT INTO kv (k, v) VALUES ('tie', 'a') USING TIMESTAMP 50")
    assert session.execute("SELECT v FROM kv WHERE k = 'tie'").one().v == "b"
    session.execute("DELETE FROM kv USING TIMESTAMP 50 WHERE k = 'tie'")
    assert session.execute("SELECT v FROM kv WHERE k = 'tie'").one() is None
    # the client's default timestamp (the driver's clock) orders plain writes as well
    late = session.prepare("INSERT INTO kv (k, v) VALUES ('clock', ?) USING TIMESTAMP ?")
    session.execute("INSERT INTO kv (k, v) VALUES ('clock', 'now')")
    session.execute(late, ("an hour ago", int((time.time() - 3600) * 1_000_000)))
    assert session.execute("SELECT v FROM kv WHERE k = 'clock'").one().v == "now"


def test_a_lightweight_transaction_takes_its_ballots_time(cql_server: CqlServer) -> None:
    """A conditional write is stamped by the server (its ballot), refuses a timestamp of
    its own, and a plain write from a client whose clock lags is older than it."""
    behind = _cluster(
        cql_server,
        protocol_version=4,
        timestamp_generator=lambda: int((time.time() - 60) * 1_000_000),
    )
    try:
        s = behind.connect()
        s.execute(
            "CREATE KEYSPACE lww WITH replication = "
            "{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}"
        )
        s.set_keyspace("lww")
        s.execute("CREATE TABLE kv (k text PRIMARY KEY, v text)")
        assert s.execute("INSERT INTO kv (k, v) VALUES ('x', 'cas') IF NOT EXISTS").was_applied
        s.execute("INSERT INTO kv (k, v) VALUES ('x', 'lagging')")
        assert s.execute("SELECT v FROM kv WHERE k = 'x'").one().v == "cas"
        with pytest.raises(InvalidRequest, match="custom timestamp for conditional"):
            s.execute("UPDATE kv USING TIMESTAMP 5 SET v = 'y' WHERE k = 'x' IF v = 'cas'")
        with pytest.raises(InvalidRequest, match="writeTime on PRIMARY KEY part k"):
            s.execute("SELECT WRITETIME(k) FROM kv")
    finally:
        behind.shutdown()


def test_ttl(cql_server: CqlServer, session: Session) -> None:
    session.execute("CREATE TABLE exp (k text PRIMARY KEY, v text) WITH default_time_to_live = 60")
    session.execute("INSERT INTO exp (k, v) VALUES ('default', 'x')")
    session.execute("INSERT INTO exp (k, v) VALUES ('short', 'x') USING TTL 10")
    session.execute("INSERT INTO exp (k, v) VALUES ('forever', 'x') USING TTL 0")
    cql_server.advance_time(30)
    assert {r.k for r in session.execute("SELECT k FROM exp")} == {"default", "forever"}
    cql_server.advance_time(31)
    assert {r.k for r in session.execute("SELECT k FROM exp")} == {"forever"}


def test_unprepared_statements_are_prepared_again(cql_server: CqlServer, session: Session) -> None:
    sel = session.prepare("SELECT v FROM kv WHERE k = ?")
    session.execute("INSERT INTO kv (k, v) VALUES ('a', 'x')")
    cql_server.forget_prepared()
    assert session.execute(sel, ("a",)).one().v == "x"
    opcodes = [r.opcode for r in cql_server.requests[-2:]]
    assert opcodes == ["PREPARE", "EXECUTE"]


def test_fault_injection(cql_server: CqlServer, session: Session) -> None:
    cql_server.inject("write_timeout", "INSERT INTO kv")
    with pytest.raises(WriteTimeout):
        session.execute("INSERT INTO kv (k, v) VALUES ('a', 'x')")
    assert session.execute("SELECT * FROM kv WHERE k = 'a'").one() is None
    cql_server.inject("write_timeout", "INSERT INTO kv", applied=True)
    with pytest.raises(WriteTimeout):
        session.execute("INSERT INTO kv (k, v) VALUES ('a', 'x')")
    assert session.execute("SELECT * FROM kv WHERE k = 'a'").one().v == "x"
    cql_server.inject("read_timeout", "FROM kv")
    with pytest.raises(ReadTimeout):
        session.execute("SELECT * FROM kv WHERE k = 'a'")
    cql_server.inject("unavailable", "kv")
    with pytest.raises(Unavailable):
        session.execute("SELECT * FROM kv WHERE k = 'a'")
    cql_server.inject("drop", "FROM kv")
    with pytest.raises(Exception, match="closed|Connection|defunct"):  # noqa: B017
        session.execute("SELECT * FROM kv WHERE k = 'a'")


def test_cqlsh(cql_server: CqlServer) -> None:
    cqlsh = shutil.which("cqlsh", path=str(Path(sys.executable).parent))
    if cqlsh is None:
        pytest.fail("cqlsh is not installed: pip install -e '.[test]' (make install does)")
    script = (
        "CREATE KEYSPACE shell WITH replication = {'class': 'SimpleStrategy', "
        "'replication_factor': 1};\n"
        "USE shell;\n"
        "CREATE TABLE jobs (job_id text PRIMARY KEY, value text, version bigint);\n"
        "INSERT INTO jobs (job_id, value, version) VALUES ('j1', '{\"a\": 1}', 1);\n"
        "UPDATE jobs SET version = 2 WHERE job_id = 'j1' IF version = 1;\n"
        "SELECT job_id, version FROM jobs;\n"
    )
    run = subprocess.run(
        [cqlsh, cql_server.host, str(cql_server.port), "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "j1" in run.stdout and "2" in run.stdout and "(1 rows)" in run.stdout
    refused = subprocess.run(
        [
            cqlsh,
            cql_server.host,
            str(cql_server.port),
            "-e",
            "SELECT * FROM shell.jobs WHERE value = 'x';",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "ALLOW FILTERING" in refused.stderr
