"""The walking skeleton end to end with the Cassandra store: `titus local` as a process whose
store is `cassandra://` on the CQL test server.

The flows are those of test_local_platform.py and test_moves.py, imported from there so
both stores run the same tests; only the `platform` fixture differs. The CQL server runs in
this test process (its own threads, on a loopback port), so it outlives the platform
process: the restart flow stops and starts `titus local` against the same keyspace, as a
master restart against a real cluster would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_local_platform import (  # noqa: F401 - collected here with this fixture
    test_bad_descriptor_is_refused_with_every_field_and_nothing_stored,
    test_batch_job_runs_to_finished_with_its_whole_history_and_logs,
    test_cli_drives_the_same_flows,
    test_container_over_its_memory_is_failed_for_memory,
    test_failing_batch_task_is_retried_then_the_job_finishes,
    test_following_logs_streams_while_the_task_runs,
    test_jobs_survive_a_restart_of_the_platform,
    test_service_job_keeps_desired_replaces_kills_shrinks_resizes_and_ends,
)
from tests.e2e.test_moves import (  # noqa: F401 - collected here with this fixture
    test_a_running_task_moves_to_another_job_without_a_restart,
)
from tests.support.cql.server import CqlServer
from tests.support.platform import Platform, running_platform

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def cql() -> Iterator[CqlServer]:
    server = CqlServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_platform(tmp_path_factory: pytest.TempPathFactory, cql: CqlServer) -> Iterator[Platform]:
    """`titus local` on a keyspace of its own, one for the module (a start is a few
    seconds each test would pay)."""
    keyspace = f"titus_{uuid.uuid4().hex[:12]}"
    url = f"cassandra://{cql.host}:{cql.port}/{keyspace}?replication=1"
    with running_platform(tmp_path_factory.mktemp("cassandra"), {"TITUS_STORE": url}) as p:
        yield p


@pytest.fixture
def platform(module_platform: Platform) -> Platform:
    """The module's platform (on Cassandra), emptied after each test."""
    return module_platform


def test_the_platform_keeps_its_jobs_in_cassandra(platform: Platform, cql: CqlServer) -> None:
    """Not SQLite in disguise: the job is in the keyspace, no SQLite file was made."""
    job_id = platform.submit(
        {
            **_hello(),
            "jobGroupInfo": {"stack": "e2e", "detail": "cass", "sequence": "v001"},
        }
    )
    platform.wait_job_finished(job_id)
    keyspace = platform.env["TITUS_STORE"].split("/")[3].split("?")[0]
    # the leader archives a job right after it records it Finished (two writes): the
    # Finished state can be read a moment before the archive batch lands
    platform.wait_for(
        f"job {job_id} in archived_jobs",
        lambda: job_id in {r["job_id"] for r in cql.rows(keyspace, "archived_jobs")},
        10.0,
    )
    assert not (platform.data_dir / "titus.db").exists()


def _hello() -> dict[str, object]:
    import json

    path = Path(__file__).resolve().parents[2] / "examples" / "batch-hello.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]
