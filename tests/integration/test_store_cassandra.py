"""The store conformance suite against the Cassandra backend over the CQL test server, plus
what only Cassandra has: retries and clear errors under timeouts and unavailable replicas,
the archive's TTL, bucketed indexes, URLs and credentials."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.store.conformance import *  # noqa: F401,F403
from tests.store.conformance import finish, make_job, make_task
from tests.support.cql.server import CqlServer
from tests.support.poll import wait_until
from titus.model.job import Job, Task
from titus.model.states import TaskState
from titus.store import open_store
from titus.store.base import Conflict, GroupNameTaken, JobStore, MoveRequest, StoreUnavailable
from titus.store.cassandra import CassandraJobStore, CassandraRefused, parse_replication
from titus.store.errors import StaleEpoch
from titus.store.metrics import STORE_ERRORS


def _open(server: CqlServer, **kw: object) -> CassandraJobStore:
    options: dict[str, object] = {"backoff_base": 0.001, "request_timeout": 5.0}
    options.update(kw)
    return CassandraJobStore(
        [server.host],
        port=server.port,
        keyspace="titus",
        local_dc="datacenter1",
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def store_factory(cql_server: CqlServer) -> Iterator[Callable[[], JobStore]]:
    yield lambda: _open(cql_server)


@pytest.fixture
def cstore(cql_server: CqlServer) -> Iterator[CassandraJobStore]:
    s = _open(cql_server)
    yield s
    s.close()


# ---- faults -----------------------------------------------------------------------------
def test_timeout_during_create_is_retried(cql_server: CqlServer, cstore: CassandraJobStore) -> None:
    job = make_job("v001")
    cql_server.inject("write_timeout", "INSERT INTO active_jobs", times=2)
    cstore.create_job(job, [make_task(job)])
    assert cstore.get_job(job.id) is not None
    assert len(cstore.list_tasks(job.id)) == 1


def test_dropped_connection_during_create_is_retried(
    cql_server: CqlServer, store_factory: Callable[[], JobStore]
) -> None:
    store = _open(cql_server, backoff_base=0.2)
    try:
        job = make_job("v001")
        cql_server.inject("drop", "INSERT INTO active_jobs")
        store.create_job(job, [make_task(job)])
        assert store.get_job(job.id) is not None
        assert len(store.list_tasks(job.id)) == 1
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["unavailable", "write_timeout"])
def test_create_that_never_lands_leaves_nothing(
    cql_server: CqlServer, cstore: CassandraJobStore, kind: str
) -> None:
    job = make_job("v001")
    cql_server.inject(kind, "INSERT INTO active_jobs", times=1000)
    with pytest.raises(StoreUnavailable) as info:
        cstore.create_job(job, [make_task(job)])
    assert f"job {job.id} was not created" in str(info.value)
    cql_server.clear_faults()
    assert cstore.get_job(job.id) is None
    assert cstore.list_tasks(job.id) == []
    assert cstore.count_active_jobs() == 0
    # Its group name was given back: the user can submit again.
    again = make_job("v001")
    cstore.create_job(again)
    assert cstore.get_job(again.id) is not None


def test_create_that_landed_despite_timeouts_is_whole(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    job = make_job("v001")
    tasks = [make_task(job, i) for i in range(3)]
    cql_server.inject("write_timeout", "INSERT INTO active_jobs", times=1000, applied=True)
    created = cstore.create_job(job, tasks)
    cql_server.clear_faults()
    assert created.version == 1
    assert cstore.get_job(job.id) is not None
    assert {t.id for t in cstore.list_tasks(job.id)} == {t.id for t in tasks}
    with pytest.raises(GroupNameTaken):
        cstore.create_job(make_job("v001"))


def test_lwt_timeouts_that_applied_are_not_conflicts(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    job = make_job("v001")
    cql_server.inject("write_timeout", "INTO job_group_names", applied=True)
    cstore.create_job(job)
    task = cstore.create_task(make_task(cstore.get_job(job.id)))  # type: ignore[arg-type]
    cql_server.inject("write_timeout", "UPDATE active_tasks", applied=True)
    launched = cstore.update_task(task.with_status(TaskState.LAUNCHED))
    assert launched.version == 2
    got = cstore.get_task(task.id)
    assert got is not None and got.version == 2 and got.state == TaskState.LAUNCHED
    stored = cstore.get_job(job.id)
    assert stored is not None
    cql_server.inject("write_timeout", "UPDATE active_jobs", applied=True)
    assert cstore.update_job(stored).version == 2
    with pytest.raises(Conflict):  # another change from the same version is a conflict
        cstore.update_job(finish(stored))


def test_reads_retry_and_then_fail_clearly(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    job = cstore.create_job(make_job())
    cql_server.inject("read_timeout", "FROM active_jobs", times=2)
    assert cstore.get_job(job.id) is not None
    reads, writes = _store_errors("read"), _store_errors("write")
    cql_server.inject("unavailable", "FROM active_jobs", times=1000)
    with pytest.raises(StoreUnavailable, match=f"read job {job.id}"):
        cstore.get_job(job.id)
    # counted once, as the caller saw it (not once per retry), and as a read
    assert (_store_errors("read"), _store_errors("write")) == (reads + 1, writes)


def _store_errors(operation: str) -> float:
    return STORE_ERRORS.labels("cassandra", operation)._value.get()


def test_restarted_node_forgot_prepared_statements(cql_server: CqlServer) -> None:
    store = _open(cql_server, backoff_base=0.2)
    try:
        job = store.create_job(make_job())
        cql_server.forget_prepared()
        cql_server.drop_connections()
        assert store.get_job(job.id) is not None
        store.create_task(make_task(job))
        assert len(store.list_tasks(job.id)) == 1
        assert any(r.opcode == "PREPARE" for r in cql_server.requests[-10:])
    finally:
        store.close()


# ---- shape and settings -------------------------------------------------------------------
def test_writes_are_local_quorum_logged_batches(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    cql_server.requests.clear()
    job = make_job()
    cstore.create_job(job, [make_task(job)])
    batches = [r for r in cql_server.requests if r.opcode == "BATCH"]
    assert len(batches) == 1
    assert batches[0].batch_type == "LOGGED"
    assert batches[0].consistency == "LOCAL_QUORUM"
    assert any("active_job_ids" in s for s in batches[0].statements)
    assert all(
        r.consistency == "LOCAL_QUORUM" for r in cql_server.requests if r.opcode != "PREPARE"
    )


def test_job_ids_are_bucketed(cql_server: CqlServer, cstore: CassandraJobStore) -> None:
    for _ in range(40):
        cstore.create_job(make_job())
    buckets = {r["bucket"] for r in cql_server.rows("titus", "active_job_ids")}
    assert len(buckets) > 10
    assert cstore.count_active_jobs() == 40


def test_archive_expires_after_30_days(cql_server: CqlServer, cstore: CassandraJobStore) -> None:
    old = cstore.create_job(make_job())
    task = cstore.create_task(make_task(old))
    cstore.archive_job(old.with_status(old.status.state))
    active = cstore.create_job(make_job())
    cql_server.advance_time(29 * 24 * 3600)
    assert cstore.get_job(old.id) is not None
    assert cstore.get_task(task.id) is not None
    cql_server.advance_time(2 * 24 * 3600)
    assert cstore.get_job(old.id) is None
    assert cstore.get_task(task.id) is None
    assert cstore.list_tasks(old.id, include_archived=True) == []
    assert cstore.get_job(active.id) is not None


def test_schema_migrations_recorded_once(cql_server: CqlServer) -> None:
    for _ in range(2):
        _open(cql_server).close()
    rows = cql_server.rows("titus", "schema_migrations")
    assert [r["version"] for r in rows] == [1, 2, 3, 4, 5, 6]
    ks = cql_server.engine.keyspaces["titus"]
    assert ks.replication["class"].endswith("NetworkTopologyStrategy")
    assert ks.tables["archived_jobs"].default_ttl == 30 * 24 * 3600
    assert ks.tables["dirty_marks"].default_ttl == 3600


def test_from_url_with_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    server = CqlServer(credentials=("titus", "s3cret")).start()
    try:
        monkeypatch.setenv("TITUS_CASSANDRA_USERNAME", "titus")
        monkeypatch.setenv("TITUS_CASSANDRA_PASSWORD", "s3cret")
        url = (
            f"cassandra://{server.host}:{server.port}/jobs_ks"
            "?dc=datacenter1&replication=datacenter1:3"
        )
        store = open_store(url)
        try:
            job = store.create_job(make_job())
            assert store.get_job(job.id) is not None
        finally:
            store.close()
        assert server.engine.keyspaces["jobs_ks"].replication["datacenter1"] == "3"
        monkeypatch.setenv("TITUS_CASSANDRA_PASSWORD", "wrong")
        with pytest.raises(StoreUnavailable, match="cannot connect"):
            CassandraJobStore.from_url(url)
    finally:
        server.stop()


def test_parse_replication() -> None:
    assert parse_replication("us-east:3,eu-west:2") == {
        "class": "NetworkTopologyStrategy",
        "us-east": 3,
        "eu-west": 2,
    }
    assert parse_replication("1") == {"class": "SimpleStrategy", "replication_factor": 1}
    with pytest.raises(ValueError):
        parse_replication("us-east")


# ---- bulk load, change feed and schema upgrades --------------------------------------------
def test_bulk_load_reads_whole_tables_not_each_task(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    for _ in range(15):
        job = make_job()
        cstore.create_job(job, [make_task(job, i) for i in range(20)])
    cql_server.requests.clear()
    index = cstore.load_active_index()
    assert len(index.jobs) == 15 and len(index.tasks) == 300
    reads = [r for r in cql_server.requests if r.opcode in ("QUERY", "EXECUTE")]
    assert len(reads) <= 4, [r.statements for r in reads]
    assert all("WHERE" not in r.statements[0] for r in reads)


def test_the_facts_scan_reads_no_document(cql_server: CqlServer, cstore: CassandraJobStore) -> None:
    """The leader's start-up asks for the plain columns of whole tables: the documents
    (most of what is stored) stay on the servers."""
    for _ in range(15):
        job = make_job()
        cstore.create_job(job, [make_task(job, i) for i in range(20)])
    cql_server.requests.clear()
    facts = cstore.load_active_facts()
    assert len(facts.jobs) == 15 and len(facts.tasks) == 300
    reads = [r.statements[0] for r in cql_server.requests if r.opcode in ("QUERY", "EXECUTE")]
    assert len(reads) <= 4, reads
    tasks_read = [s for s in reads if "active_tasks" in s]
    assert tasks_read and all(
        "value" not in s and "*" not in s and "WHERE" not in s for s in tasks_read
    )


def test_tasks_written_before_the_index_columns_still_load(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    """A keyspace upgraded from schema 1 has task rows without the plain index columns."""
    job = cstore.create_job(make_job())
    old = make_task(job).model_copy(update={"version": 1})
    cql_server.engine.run(
        "INSERT INTO titus.active_tasks (task_id, version, value) VALUES (?, ?, ?)",
        None,
        [old.id, 1, old.model_dump_json(exclude_none=True)],
    )
    [row] = cstore.load_active_index().tasks
    assert (row.id, row.job_id, row.version, row.state) == (old.id, job.id, 1, "Accepted")
    assert row.timestamp == old.status.timestamp
    [facts] = cstore.load_active_facts().tasks
    assert facts == (old.id, job.id, "Accepted", None, old.status.timestamp)


def test_change_feed_delivers_a_late_write_once(
    cql_server: CqlServer, store_factory: Callable[[], JobStore]
) -> None:
    """A write whose sequence number is older than what a reader has already read (it
    landed late: a slow coordinator, a retry) still reaches the reader, and only once."""
    writer = _open(cql_server)
    reader = _open(cql_server)
    try:
        job = writer.create_job(make_job())
        head = reader.last_change_seq()
        first = writer.create_task(make_task(job, 0))
        batch = reader.changes_since(head)
        assert [c.entity_id for c in batch.changes] == [first.id]
        seen = batch.changes[-1].seq
        # a change numbered before `seen` becomes visible only now
        late = seen - 5
        cql_server.engine.run(
            "INSERT INTO titus.changes (bucket, seq, kind, entity_id, op, job_id) "
            "VALUES (?, ?, 'task', 'late-task', 'put', ?)",
            None,
            [late // (60_000 * 1024), late, job.id],
        )
        again = reader.changes_since(seen)
        assert [(c.entity_id, c.seq) for c in again.changes] == [("late-task", late)]
        assert reader.changes_since(seen).changes == []
        # asking from before them returns entries again, as for any reader that restarts
        assert {c.entity_id for c in reader.changes_since(head).changes} == {
            first.id,
            "late-task",
        }
    finally:
        writer.close()
        reader.close()


def test_update_survives_a_lost_change_entry(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    """The change entry of a compare-and-set update is written after it: when Cassandra
    refuses that entry, the update (already applied) is still reported as done."""
    job = cstore.create_job(make_job())
    task = cstore.create_task(make_task(job))
    cql_server.inject("unavailable", "INSERT INTO changes", times=1000)
    launched = cstore.update_task(task.with_status(TaskState.LAUNCHED))
    cql_server.clear_faults()
    got = cstore.get_task(task.id)
    assert got is not None and got.version == launched.version == 2


def test_idempotency_keys_expire_by_ttl(cql_server: CqlServer, cstore: CassandraJobStore) -> None:
    cstore.claim_idempotency_key("k", "fp-a", "job-a", 3600)
    cql_server.advance_time(3599)
    assert cstore.claim_idempotency_key("k", "fp-b", "job-b", 60).job_id == "job-a"
    cql_server.advance_time(2)
    assert cstore.claim_idempotency_key("k", "fp-b", "job-b", 60).job_id == "job-b"
    [row] = cql_server.rows("titus", "idempotency_keys")
    assert row["job_id"] == "job-b"


def test_archiving_a_job_with_many_tasks_uses_small_batches(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    """Cassandra refuses batches over 50 KB by default: a job archived with 55 tasks still
    active goes in several batches, none with more than 20 task documents."""
    job = cstore.create_job(make_job("v001"))
    tasks = [cstore.create_task(make_task(job, i)) for i in range(55)]
    cql_server.requests.clear()
    cstore.archive_job(job.with_status(job.status.state))
    batches = [r for r in cql_server.requests if r.opcode == "BATCH"]
    assert len(batches) >= 3
    for b in batches:
        assert sum("INSERT INTO archived_tasks " in s for s in b.statements) <= 20
    assert cstore.list_tasks(job.id) == []
    assert {t.id for t in cstore.list_tasks(job.id, include_archived=True)} == {t.id for t in tasks}
    assert cstore.list_active_tasks() == [] and cstore.count_active_jobs() == 0
    again = cstore.create_job(make_job("v001"))  # the group name was released
    assert cstore.get_job(again.id) is not None


def test_taking_dirty_marks_deletes_nothing_and_reads_only_recent_partitions(
    cql_server: CqlServer, store_factory: Callable[[], JobStore]
) -> None:
    """Marks are taken by reading, never by deleting (no tombstones pile up in what the
    leader reads every iteration), each mark once, a mark that lands late within the
    window included, and a leader's handle reads only the minutes since its last take."""
    api, leader = _open(cql_server), _open(cql_server)
    try:
        api.mark_dirty("job-a")
        api.mark_dirty("job-b")
        api.mark_dirty("job-a")
        assert leader.take_dirty() == ["job-a", "job-b"]
        assert leader.take_dirty() == []
        # a mark numbered before the last take, visible only now (a slow coordinator)
        late = leader._dirty_from + 1
        cql_server.engine.run(
            "INSERT INTO titus.dirty_marks (bucket, seq, job_id) VALUES (?, ?, 'job-late')",
            None,
            [late // (60_000 * 1024), late],
        )
        assert leader.take_dirty() == ["job-late"]
        assert leader.take_dirty() == []
        cql_server.requests.clear()
        leader.take_dirty()
        statements = [r.statements[0] for r in cql_server.requests if r.statements]
        assert not any(s.lstrip().upper().startswith("DELETE") for s in statements)
        assert 1 <= len(statements) <= 2  # this minute's partition (and the next at most)
        # marks of a request and of a create reach the leader too
        job = api.create_job(make_job(), mark_dirty=True)
        assert leader.take_dirty() == [job.id]
    finally:
        api.close()
        leader.close()


def test_a_task_whose_create_stopped_after_its_row_is_listed_and_archived_with_its_job(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    """A leader that stops once a task's row landed (here: every answer to the row's
    write is a timeout after it applied) leaves a task its successor loads and runs:
    users see it under its job, and it goes to the archive with the job."""
    job = cstore.create_job(make_job())
    cql_server.inject("write_timeout", "INSERT INTO active_tasks", times=1000, applied=True)
    with pytest.raises(StoreUnavailable):
        cstore.create_task(make_task(job))
    cql_server.clear_faults()
    [loaded] = [t for t in cstore.load_active().tasks if t.jobId == job.id]
    assert [t.id for t in cstore.list_tasks(job.id)] == [loaded.id]
    cstore.archive_job(finish(job))
    assert cstore.list_active_tasks() == []
    assert [t.id for t in cstore.list_tasks(job.id, include_archived=True)] == [loaded.id]


def test_a_task_that_cannot_be_read_does_not_hold_its_job_active(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    """Archiving moves task documents as they are: one no version of the model reads goes
    to the archive with the rest instead of failing the job's archive on every retry."""
    job = cstore.create_job(make_job())
    good, bad = (cstore.create_task(make_task(job, i)) for i in range(2))
    cql_server.engine.run(
        "UPDATE titus.active_tasks SET value = ? WHERE task_id = ?",
        None,
        [json.dumps({"id": bad.id, "status": [[[]]]}), bad.id],
    )
    cstore.archive_job(finish(job))
    assert cstore.count_active_jobs() == 0 and cstore.list_active_tasks() == []
    archived = cstore.list_tasks(job.id, include_archived=True)
    assert [t.id for t in archived] == [good.id]  # the unreadable one is quarantined
    assert {r["task_id"] for r in cql_server.rows("titus", "archived_tasks")} == {good.id, bad.id}


def test_a_batch_cassandra_refuses_leaves_nothing_and_says_why(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    """Cassandra refuses a logged batch over 50 KB ("Batch too large"): a job with that
    many first tasks is refused whole, with the reason, and its group name is free again."""
    job = make_job("v001")
    writes = _store_errors("write")
    with pytest.raises(CassandraRefused, match="Batch too large"):
        cstore.create_job(job, [make_task(job, i) for i in range(200)])
    assert _store_errors("write") > writes
    assert cstore.get_job(job.id) is None
    assert cstore.list_active_tasks() == []
    assert cstore.create_job(make_job("v001")).version == 1


def test_following_an_idle_feed_is_cheap(cql_server: CqlServer, cstore: CassandraJobStore) -> None:
    """The API polls the feed several times a second: a poll with nothing new reads the
    current minute's partition (and the next, for clock skew), not the whole hour."""
    cstore.create_job(make_job())
    head = cstore.last_change_seq()
    cql_server.requests.clear()
    for _ in range(5):
        assert cstore.changes_since(head).changes == []
    assert len(cql_server.requests) <= 5 * 3


# ---- leadership fencing under interleaving ------------------------------------------------
def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run `fn` in a thread; the list gets what it returned or raised."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as e:  # noqa: BLE001 - the test inspects it
            out.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_deposed_leaders_update_is_refused_once_its_successor_wrote(
    cql_server: CqlServer,
) -> None:
    """The epoch check is the condition of the write: a leader's update held up after its
    check (here at the server) lands after its successor's and is refused, and a deposed
    leader that re-reads what its successor wrote cannot write it back either."""
    old, new = _open(cql_server), _open(cql_server)
    try:
        old.claim_epoch(1)
        job = old.create_job(make_job())
        task = old.create_task(make_task(job), epoch=1)
        held = cql_server.hold("UPDATE active_tasks")
        thread, out = _in_thread(
            lambda: old.update_task(task.with_status(TaskState.LAUNCHED, "normal", "old"), epoch=1)
        )
        assert held.arrived.wait(10), "the deposed leader's write never reached the server"
        new.claim_epoch(2)
        theirs = new.update_task(task.with_status(TaskState.LAUNCHED, "normal", "new"), epoch=2)
        held.release()
        thread.join(10)
        assert isinstance(out[0], StaleEpoch), out
        stored = new.get_task(task.id)
        assert stored is not None and stored.status.reasonMessage == "new"
        # re-read after the refusal: the deposed leader has the current version now
        again = old.get_task(task.id)
        assert again is not None and again.version == theirs.version
        with pytest.raises(StaleEpoch):
            old.update_task(again.with_status(TaskState.START_INITIATED), epoch=1)
        stored = new.get_task(task.id)
        assert stored is not None and stored.version == theirs.version
        # the same for the job and the leader's settings
        current = new.get_job(job.id)
        assert current is not None
        new.update_job(current, epoch=2)
        fresh = old.get_job(job.id)
        assert fresh is not None
        with pytest.raises(StaleEpoch):
            old.update_job(finish(fresh), epoch=1)
        new.set_meta("framework", "theirs", epoch=2)
        with pytest.raises(StaleEpoch):
            old.set_meta("framework", "ours", epoch=1)
        assert new.get_meta("framework") == "theirs"
    finally:
        old.close()
        new.close()


def test_a_deposed_leaders_move_held_after_its_version_reads_is_refused(
    cql_server: CqlServer,
) -> None:
    """A move is decided by one fenced write of the task, and its epoch is read again
    right before it: a leader deposed while it read the versions moves nothing."""
    old, new = _open(cql_server), _open(cql_server)
    try:
        old.claim_epoch(1)
        source, target = old.create_job(make_job()), old.create_job(make_job())
        task = old.create_task(make_task(source), epoch=1)
        held = cql_server.hold("WRITETIME(version) AS written FROM active_jobs")
        thread, out = _in_thread(
            lambda: old.move_task(
                task.model_copy(update={"jobId": target.id}), source, target, epoch=1
            )
        )
        assert held.arrived.wait(10), "the deposed leader's move never read the versions"
        new.claim_epoch(2)
        held.release()
        thread.join(10)
        assert isinstance(out[0], StaleEpoch), out
        stored = new.get_task(task.id)
        assert stored is not None and stored.jobId == source.id and stored.version == 1
        assert [t.id for t in new.list_tasks(target.id)] == []
    finally:
        old.close()
        new.close()


def _marked(job: Job) -> Job:
    """`job` as a move would change it (a label tells the documents apart when read)."""
    descriptor = job.jobDescriptor.model_copy(update={"attributes": {"mark": "moved"}})
    return job.model_copy(update={"jobDescriptor": descriptor})


def _start_a_move(store: CassandraJobStore) -> tuple[Task, Job, Job]:
    store.claim_epoch(1)
    source, target = store.create_job(make_job()), store.create_job(make_job())
    task = store.create_task(make_task(source), epoch=1)
    store.update_task_attributes(task.id, source.id, {"team": "search"})
    store.add_move_request(MoveRequest(source.id, target.id, task.id))
    return task, source, target


def _move(store: CassandraJobStore, task: Task, source: Job, target: Job) -> None:
    moved = task.model_copy(update={"jobId": target.id})
    store.move_task(moved, _marked(source), _marked(target), epoch=1)


def _is_moved(store: CassandraJobStore, task_id: str, source: Job, target: Job) -> None:
    """The move is whole: the task, both jobs, the index and attribute rows, the
    request, and nothing left pending beside the task."""
    stored = store.get_task(task_id)
    assert stored is not None and stored.jobId == target.id
    assert [t.id for t in store.list_tasks(target.id)] == [task_id]
    assert store.list_tasks(source.id) == []
    assert store.list_task_attributes(target.id) == {task_id: {"team": "search"}}
    assert store.list_task_attributes(source.id) == {}
    assert store.list_move_requests(source.id) == []
    for job in (source, target):
        got = store.get_job(job.id)
        assert got is not None and got.version == job.version + 1
        assert got.jobDescriptor.attributes == {"mark": "moved"}


def test_a_move_decided_by_a_leader_that_died_is_finished_by_its_successors_load(
    cql_server: CqlServer,
) -> None:
    """A leader whose move's remainder was never written (it died after deciding the
    move) leaves the remainder beside the task; the next leader's load writes it, so the
    task, both jobs and the indexes agree again, and the load sees the moved jobs."""
    old, new = _open(cql_server, retries=1), _open(cql_server)
    try:
        task, source, target = _start_a_move(old)
        cql_server.inject("drop", "INSERT INTO active_task_ids", times=10)
        with pytest.raises(StoreUnavailable):
            _move(old, task, source, target)
        cql_server.clear_faults()
        decided = new.get_task(task.id)
        assert decided is not None and decided.jobId == target.id
        unchanged = new.get_job(target.id)
        assert unchanged is not None and unchanged.version == target.version
        new.claim_epoch(2)
        loaded = new.load_active()
        assert {j.id: j.version for j in loaded.jobs} == {
            source.id: source.version + 1,
            target.id: target.version + 1,
        }
        _is_moved(new, task.id, source, target)
        assert [r.get("move") for r in cql_server.rows("titus", "active_tasks")] == [None]
    finally:
        old.close()
        new.close()


def test_an_unreadable_move_remainder_does_not_stop_a_leaders_load(
    cql_server: CqlServer, cstore: CassandraJobStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A remainder edited into nonsense is named in the log and left for an operator; the
    leader still loads every job and task."""
    task, source, target = _start_a_move(cstore)
    cql_server.engine.run(
        "UPDATE titus.active_tasks SET move = '{not json' WHERE task_id = ?", None, [task.id]
    )
    loaded = cstore.load_active()
    assert {j.id for j in loaded.jobs} == {source.id, target.id}
    assert [t.id for t in loaded.tasks] == [task.id]
    assert f"the move of task {task.id} cannot be finished" in caplog.text


def test_a_deposed_leaders_late_move_remainder_loses_to_its_successors_writes(
    cql_server: CqlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leader that decided a move and then stalled (a long pause) before writing the
    rest of it sends that rest only after its successor finished the move itself (while
    loading) and wrote the task and a job since: the late batch changes nothing, as it is
    written at the move's own timestamp, older than theirs."""
    old, new = _open(cql_server), _open(cql_server)
    try:
        task, source, target = _start_a_move(old)
        stalled, resume = threading.Event(), threading.Event()
        send = old._db.batch

        def stall_then_send(what: str, items: Any) -> None:
            if what.startswith("move task"):
                stalled.set()
                resume.wait(10)
            send(what, items)

        monkeypatch.setattr(old._db, "batch", stall_then_send)
        thread, out = _in_thread(lambda: _move(old, task, source, target))
        assert stalled.wait(10), "the deposed leader never decided its move"
        new.claim_epoch(2)
        new.load_active()
        _is_moved(new, task.id, source, target)
        moved = new.get_task(task.id)
        assert moved is not None
        theirs = new.update_task(moved.with_status(TaskState.LAUNCHED, "normal", "new"), epoch=2)
        job = new.get_job(target.id)
        assert job is not None
        resized = new.update_job(
            job.model_copy(update={"jobDescriptor": make_job().jobDescriptor}), epoch=2
        )
        resume.set()
        thread.join(10)
        assert out == [None], out  # written, as far as it knows
        got = new.get_job(target.id)
        assert got is not None and (got.version, got.jobDescriptor.attributes) == (
            resized.version,
            {},
        )
        stored = new.get_task(task.id)
        assert stored is not None and stored.version == theirs.version
        assert [t.id for t in new.list_tasks(target.id)] == [task.id]
        assert new.list_tasks(source.id) == []
    finally:
        old.close()
        new.close()


def test_a_deposed_leaders_create_cannot_overwrite_its_successors_task(
    cql_server: CqlServer,
) -> None:
    """Two leaders creating the same task (the leader names it after what it replaces)
    write one row: the deposed one's create, held up past its epoch check until the
    successor created the task and launched it, is refused and changes nothing."""
    old, new = _open(cql_server), _open(cql_server)
    try:
        old.claim_epoch(1)
        job = old.create_job(make_job())
        task = make_task(job)
        held = cql_server.hold("fence) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS")
        thread, out = _in_thread(lambda: old.create_task(task, epoch=1))
        assert held.arrived.wait(10), "the deposed leader's create never reached the server"
        new.claim_epoch(2)
        made = new.create_task(task, epoch=2)
        launched = new.update_task(made.with_status(TaskState.LAUNCHED), epoch=2)
        held.release()
        thread.join(10)
        assert isinstance(out[0], StaleEpoch), out
        [stored] = new.list_tasks(job.id)
        assert (stored.version, stored.state) == (launched.version, TaskState.LAUNCHED)
    finally:
        old.close()
        new.close()


def test_rows_written_before_fences_take_the_first_fenced_write(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    """Rows from before the fence column (null) are written by the leader once with
    `IF fence = null`, and fenced from then on."""
    cstore.claim_epoch(3)
    job = cstore.create_job(make_job())
    task = cstore.create_task(make_task(job), epoch=3)
    for table, key, value in (
        ("active_tasks", "task_id", task.id),
        ("active_jobs", "job_id", job.id),
    ):
        cql_server.engine.run(
            f"UPDATE titus.{table} SET fence = null WHERE {key} = ?", None, [value]
        )
    assert cstore.update_task(task.with_status(TaskState.LAUNCHED), epoch=3).version == 2
    assert cstore.update_job(job, epoch=3).version == 2
    assert {r["fence"] for r in cql_server.rows("titus", "active_tasks")} == {3}
    assert {r["fence"] for r in cql_server.rows("titus", "active_jobs")} == {3}


# ---- creates in groups --------------------------------------------------------------------
def _creates_queued_behind_a_held_one(
    cql_server: CqlServer, store: CassandraJobStore, jobs: list[Job], refused_early: int = 0
) -> tuple[list[object], list[threading.Thread]]:
    """Start one create and hold its batch at the server, then start `jobs` (which queue
    behind it but for `refused_early` refused before they join), then let it go: what
    each of `jobs` returned or raised, once all ended."""
    held = cql_server.hold("INSERT INTO active_jobs")
    first, _ = _in_thread(lambda: store.create_job(make_job(), mark_dirty=True))
    assert held.arrived.wait(10)
    outs: list[list[object]] = []
    threads = []
    for job in jobs:
        t, out = _in_thread(lambda j=job: store.create_job(j, mark_dirty=True))  # type: ignore[misc]
        threads.append(t)
        outs.append(out)
    wait_until(
        "the creates to queue behind the one in flight",
        lambda: len(store._groups._queue) == len(jobs) - refused_early,
        10,
    )
    held.release()
    for t in [first, *threads]:
        t.join(20)
    return [o[0] for o in outs], threads


def test_concurrent_creates_share_one_logged_batch(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    jobs = [make_job() for _ in range(8)]
    before = len([r for r in cql_server.requests if r.opcode == "BATCH"])
    results, _ = _creates_queued_behind_a_held_one(cql_server, cstore, jobs)
    assert all(isinstance(r, Job) for r in results), results
    batches = [r for r in cql_server.requests[before:] if r.opcode == "BATCH"]
    assert [r.batch_type for r in batches] == ["LOGGED", "LOGGED"]
    assert cstore._groups.sent[-2:] == [1, 8]
    for job in jobs:
        assert cstore.get_job(job.id) is not None
    assert set(cstore.take_dirty()) >= {j.id for j in jobs}


def test_a_create_refused_in_a_group_is_refused_alone(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    """A taken group name is refused before its create joins a group; a create Cassandra
    refuses (too large a batch) fails alone, its group name freed, the others written."""
    held = cstore.create_job(make_job("v007"))
    big = make_job("v008")
    big.jobDescriptor.attributes.update({f"k{i}": "x" * 1000 for i in range(60)})
    jobs = [make_job("v007"), big, *[make_job() for _ in range(5)]]
    cql_server.batch_size_fail_kb = 50
    results, _ = _creates_queued_behind_a_held_one(cql_server, cstore, jobs, refused_early=1)
    assert isinstance(results[0], GroupNameTaken) and held.id in str(results[0])
    assert isinstance(results[1], CassandraRefused), results[1]
    assert all(isinstance(r, Job) for r in results[2:]), results
    assert cstore.get_job(big.id) is None
    assert cstore.create_job(make_job("v008")).id  # the refused create's name is free
    for job in jobs[2:]:
        assert cstore.get_job(job.id) is not None


def test_a_group_cassandra_refuses_whole_is_written_create_by_create(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    jobs = [make_job() for _ in range(6)]
    cql_server.batch_size_fail_kb = 4  # one create fits, the group of six does not
    results, _ = _creates_queued_behind_a_held_one(cql_server, cstore, jobs)
    assert all(isinstance(r, Job) for r in results), results
    assert cstore._groups.sent[-6:] == [1] * 6
    for job in jobs:
        assert cstore.get_job(job.id) is not None


def test_a_group_whose_write_timed_out_after_applying_is_acknowledged_whole(
    cql_server: CqlServer, cstore: CassandraJobStore
) -> None:
    """The ambiguous case: the group's batch applied but the coordinator timed out (and
    then every retry too): each create finds its job whole and answers it created."""
    jobs = [make_job() for _ in range(4)]
    held = cql_server.hold("INSERT INTO active_jobs")
    first, _ = _in_thread(lambda: cstore.create_job(make_job()))
    assert held.arrived.wait(10)
    outs = []
    for job in jobs:
        _, out = _in_thread(lambda j=job: cstore.create_job(j))  # type: ignore[misc]
        outs.append(out)
    wait_until("the creates to queue", lambda: len(cstore._groups._queue) == len(jobs), 10)
    cql_server.inject("write_timeout", "INSERT INTO active_jobs", times=20, applied=True)
    held.release()
    wait_until("every create to answer", lambda: all(outs), 30)
    cql_server.clear_faults()
    assert all(isinstance(o[0], Job) for o in outs), outs
    assert cstore._groups.sent[-1] == len(jobs)  # written as one group
    for job in jobs:
        assert cstore.get_job(job.id) is not None
