"""ObserveJobsWithKeepAlive with stubs generated from our protos: the query first, then
keep-alives, each answered in order after every change written before it."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.integration.test_api_app import SERVICE
from tests.integration.test_grpc_jobs import grpc_api
from titus.api.grpc.gen import titus_base_pb2 as base
from titus.api.grpc.gen import titus_job_api_pb2 as pb

DEADLINE_SEC = 60
Ask = pb.ObserveJobsWithKeepAliveRequest


def client_side(asks: queue.Queue[Ask | None]) -> Iterator[Ask]:
    """What the client sends: whatever the test puts on `asks`, until None."""
    while (ask := asks.get()) is not None:
        yield ask


def keep_alive(n: int) -> Ask:
    return Ask(keepAliveRequest=base.KeepAliveRequest(requestId=n, timestamp=1000 + n))


def test_keep_alives_are_answered_in_order_after_the_changes_before_them(
    tmp_path: Path,
) -> None:
    with grpc_api(tmp_path) as api:
        job_id = api.http.post("/api/v3/jobs", json=SERVICE).json()["id"]
        asks: queue.Queue[Ask | None] = queue.Queue()
        asks.put(Ask(query=pb.ObserveJobsQuery(filteringCriteria={"jobIds": job_id})))
        stream = api.stub.ObserveJobsWithKeepAlive(client_side(asks), timeout=DEADLINE_SEC)
        try:
            kinds = []
            for note in stream:
                kinds.append(note.WhichOneof("Notification"))
                if kinds[-1] == "snapshotEnd":
                    break
            assert kinds == ["jobUpdate", "snapshotEnd"]

            asks.put(keep_alive(1))
            answer = next(stream)
            assert answer.WhichOneof("Notification") == "keepAliveResponse"
            assert answer.keepAliveResponse.request.requestId == 1
            assert answer.keepAliveResponse.request.timestamp == 1001
            assert answer.keepAliveResponse.timestamp > 0

            for desired in (3, 4):
                capacity = {"min": 1, "desired": desired, "max": 5}
                assert api.http.put(f"/api/v3/jobs/{job_id}/instances", json=capacity).is_success
            asks.put(keep_alive(2))
            asks.put(keep_alive(3))
            seen: list[str | int] = []
            last_desired = 0
            while len([s for s in seen if isinstance(s, int)]) < 2:
                note = next(stream)
                if note.WhichOneof("Notification") == "keepAliveResponse":
                    seen.append(note.keepAliveResponse.request.requestId)
                else:
                    seen.append(note.WhichOneof("Notification"))
                    last_desired = note.jobUpdate.job.jobDescriptor.service.capacity.desired
            # the changes written before the keep-alives come first, the last one included
            assert seen[-2:] == [2, 3]
            assert "jobUpdate" in seen and last_desired == 4
        finally:
            stream.cancel()
            asks.put(None)


@pytest.mark.parametrize("first", [keep_alive(1), None], ids=["keep-alive", "nothing"])
def test_a_stream_that_does_not_start_with_the_query_is_refused(
    tmp_path: Path, first: Ask | None
) -> None:
    with grpc_api(tmp_path) as api:
        sent = [first] if first is not None else []
        with pytest.raises(grpc.RpcError) as refused:
            list(api.stub.ObserveJobsWithKeepAlive(iter(sent), timeout=DEADLINE_SEC))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "query" in (refused.value.details() or "")
