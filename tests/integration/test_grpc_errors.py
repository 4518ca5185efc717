"""Refusals over gRPC: the codes Titus's clients expect, with the same field paths as
REST in the BadRequest details, and one gate (tokens, rate limits) for both transports."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from tests.integration.test_api_app import SERVICE, service
from tests.integration.test_grpc_jobs import (
    Api,
    descriptor,
    grpc_api,
    retry_delay_sec,
    violations,
)
from tests.support.catalogue import CATALOGUE, GOOD, Edit
from titus.api.errors import ApiError
from titus.api.grpc.convert import to_json
from titus.api.grpc.errors import refusal_of
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.model.validation import InvalidRequest, parse_job_descriptor
from titus.settings import RateBucket
from titus.store.base import PENDING_BY_GROUP_META, StoreUnavailable


def bad_descriptor() -> dict[str, object]:
    """Broken in ways both transports can carry: names, ranges and cross-field rules."""
    body = service(applicationName="bad name!")
    container = body["container"]
    assert isinstance(container, dict)
    container["image"] = {"name": "Bad Image!", "tag": "latest"}
    container["resources"] = {**container["resources"], "cpu": 500}
    container["securityProfile"] = {"securityGroups": ["nope"]}
    body["service"] = {"capacity": {"min": 5, "desired": 2, "max": 1}}
    return body


def test_the_same_bad_descriptor_is_refused_by_rest_and_grpc_with_the_same_paths(
    tmp_path: Path,
) -> None:
    with grpc_api(tmp_path) as api:
        rest = api.http.post("/api/v3/jobs", json=bad_descriptor())
        assert rest.status_code == 400
        rest_errors = {e["path"]: e["message"] for e in rest.json()["errors"]}
        with pytest.raises(grpc.RpcError) as refused:
            api.stub.CreateJob(descriptor(bad_descriptor()))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(refused.value) == rest_errors
        assert {
            "applicationName",
            "container.image.name",
            "container.resources.cpu",
            "container.securityProfile.securityGroups[0]",
        } <= set(rest_errors)
        assert api.store.count_active_jobs() == 0


#: Catalogue rules whose breaking request a gRPC client cannot send, and why. Each is
#: checked to be inexpressible below, so one the wire contract comes to carry is noticed.
NOT_IN_PROTO = {
    "cpu more than 0 (less than the minimum is raised to it)": "proto3: 0 is 'not set'",
    "memory more than 0 (less than the minimum is raised to it)": "proto3: 0 is 'not set'",
    "network more than 0 (less than the minimum is raised to it)": "proto3: 0 is 'not set'",
    "disk more than 0 (less than the minimum is raised to it)": "diskMB is unsigned",
    "one retry policy": "the policies are a oneof: a message holds one",
    "budget: one rate": "the rates are a oneof: a message holds one",
    "unknown field by name": "a message has only the fields it declares",
}


def _in_proto(body: dict[str, Any], field: str) -> pb.JobDescriptor | None:
    """The message carrying `body`, or None when no message can: the JSON does not parse
    into one, or what the message carries (as the server reads it) no longer breaks the
    rule on `field` (a zero that proto3 cannot tell from "not set")."""
    try:
        message = json_format.ParseDict(body, pb.JobDescriptor())
    except json_format.ParseError:
        return None
    try:
        parse_job_descriptor(to_json(message))
    except InvalidRequest as exc:
        if field in {e.path for e in exc.errors}:
            return message
    return None


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with grpc_api(tmp_path_factory.mktemp("catalogue")) as api:
        yield api


@pytest.mark.parametrize(
    ("rule", "field", "breaks", "passes"),
    [pytest.param(r, f, b, p, id=r) for r, f, b, p in CATALOGUE],
)
def test_the_validation_catalogue_is_refused_over_grpc_naming_the_fields_rest_names(
    shared_api: Api, rule: str, field: str, breaks: Edit, passes: Edit
) -> None:
    """Each rule of the validation catalogue, broken: REST answers 400 and gRPC
    INVALID_ARGUMENT, and the BadRequest field violations name exactly the fields REST's
    errors name (the rule's own among them); the request that just passes is taken by
    both."""
    bad = copy.deepcopy(GOOD)
    breaks(bad)
    message = _in_proto(bad, field)
    if rule in NOT_IN_PROTO:
        assert message is None, f"{rule} can be sent over gRPC now: test it there"
        return
    assert message is not None, f"{rule}: not in the proto, say why in NOT_IN_PROTO"
    rest = shared_api.http.post("/api/v3/jobs", json=bad)
    assert rest.status_code == 400, rest.text
    rest_fields = {e["path"] for e in rest.json()["errors"]}
    assert field in rest_fields
    with pytest.raises(grpc.RpcError) as refused:
        shared_api.stub.CreateJob(message)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(refused.value)) == rest_fields

    good = copy.deepcopy(GOOD)
    passes(good)
    assert shared_api.http.post("/api/v3/jobs", json=good).status_code == 202
    shared_api.stub.CreateJob(json_format.ParseDict(good, pb.JobDescriptor()))


def test_missing_not_found_and_refused_changes(tmp_path: Path) -> None:
    with grpc_api(tmp_path) as api:
        stub = api.stub
        with pytest.raises(grpc.RpcError) as empty:
            stub.CreateJob(pb.JobDescriptor())
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert {"owner", "applicationName", "container"} <= set(violations(empty.value))

        for call in (
            lambda: stub.FindJob(pb.JobId(id="nope")),
            lambda: stub.FindTask(pb.TaskId(id="nope")),
            lambda: stub.KillJob(pb.JobId(id="nope")),
        ):
            with pytest.raises(grpc.RpcError) as missing:
                call()
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        with pytest.raises(grpc.RpcError) as unknown:
            stub.FindJobs(pb.JobQuery(filteringCriteria={"colour": "red"}))
        assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(violations(unknown.value)) == {"colour"}
        with pytest.raises(grpc.RpcError) as state:
            stub.FindTasks(pb.TaskQuery(filteringCriteria={"taskStates": "Sleeping"}))
        assert set(violations(state.value)) == {"taskStates"}

        job_id = stub.CreateJob(descriptor()).id
        with pytest.raises(grpc.RpcError) as order:
            stub.UpdateJobCapacity(
                pb.JobCapacityUpdate(jobId=job_id, Capacity=pb.Capacity(min=3, desired=2, max=1))
            )
        assert order.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(order.value)
        with pytest.raises(grpc.RpcError) as reserved:
            stub.UpdateJobAttributes(
                pb.JobAttributesUpdate(jobId=job_id, attributes={"titus.mine": "x"})
            )
        assert reserved.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as no_keys:
            stub.DeleteJobAttributes(pb.JobAttributesDeleteRequest(jobId=job_id))
        assert set(violations(no_keys.value)) == {"keys"}

        stub.KillJob(pb.JobId(id=job_id))
        with pytest.raises(grpc.RpcError) as killing:
            stub.UpdateJobStatus(pb.JobStatusUpdate(id=job_id, enableStatus=False))
        assert killing.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_rest_and_grpc_draw_from_one_rate_bucket(tmp_path: Path) -> None:
    buckets = [
        RateBucket(name="job-create", endpoint="POST /api/v3/jobs", capacity=2, refill_per_sec=0.01)
    ]
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps({"t-run": {"callerId": "runaway"}, "t-calm": {"callerId": "calm"}})
    )
    with grpc_api(tmp_path, rate_limit_buckets=buckets, auth_tokens_file=str(tokens)) as api:
        me = (("authorization", "Bearer t-run"),)
        rest_me = {"Authorization": "Bearer t-run"}
        assert api.http.post("/api/v3/jobs", json=SERVICE, headers=rest_me).is_success
        api.stub.CreateJob(descriptor(), metadata=me)
        with pytest.raises(grpc.RpcError) as limited:
            api.stub.CreateJob(descriptor(), metadata=me)
        assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        delay = retry_delay_sec(limited.value)
        assert delay is not None and delay >= 1
        assert api.http.post("/api/v3/jobs", json=SERVICE, headers=rest_me).status_code == 429
        # another caller has its own bucket
        api.stub.CreateJob(descriptor(), metadata=(("authorization", "Bearer t-calm"),))


def test_a_full_capacity_group_is_resource_exhausted_with_retry_info(tmp_path: Path) -> None:
    with grpc_api(tmp_path, max_pending_per_group=3) as api:
        api.store.set_meta(PENDING_BY_GROUP_META, json.dumps({"DEFAULT": 3}))
        with pytest.raises(grpc.RpcError) as full:
            api.stub.CreateJob(descriptor())
        assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "DEFAULT is full" in (full.value.details() or "")
        assert retry_delay_sec(full.value) == 30


def test_with_tokens_changes_need_one_and_the_token_names_the_caller(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(
        json.dumps({"tok-alice": {"callerId": "alice"}, "tok-bob": {"callerId": "bob"}})
    )
    with grpc_api(tmp_path, auth_tokens_file=str(tokens)) as api:
        with pytest.raises(grpc.RpcError) as anonymous:
            api.stub.CreateJob(descriptor())
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as wrong:
            api.stub.CreateJob(descriptor(), metadata=(("authorization", "Bearer nope"),))
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        job_id = api.stub.CreateJob(
            descriptor(),
            metadata=(("authorization", "Bearer tok-alice"), ("x-titus-callerid", "mallory")),
        ).id
        with pytest.raises(grpc.RpcError) as unread:
            api.stub.FindJob(pb.JobId(id=job_id))  # reads need a token too
        assert unread.value.code() == grpc.StatusCode.UNAUTHENTICATED
        job = api.stub.FindJob(
            pb.JobId(id=job_id), metadata=(("authorization", "Bearer tok-alice"),)
        )
        assert job.jobDescriptor.attributes["titus.createdBy"] == "alice"
        # only the job's owners change it: the same rule as REST (one service layer)
        with pytest.raises(grpc.RpcError) as foreign:
            api.stub.KillJob(pb.JobId(id=job_id), metadata=(("authorization", "Bearer tok-bob"),))
        assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "only its creator" in (foreign.value.details() or "")
        api.stub.KillJob(pb.JobId(id=job_id), metadata=(("authorization", "Bearer tok-alice"),))


def test_store_outage_and_unknown_refusals_map_to_their_codes() -> None:
    outage = refusal_of(StoreUnavailable("cassandra: no host"))
    assert outage is not None and outage.code == grpc.StatusCode.UNAVAILABLE
    assert outage.retry_after_sec is not None
    busy = refusal_of(ApiError(503, "changing too fast", headers={"Retry-After": "1"}))
    assert busy is not None and busy.code == grpc.StatusCode.UNAVAILABLE
    assert busy.retry_after_sec == 1
    assert refusal_of(ValueError("a bug")) is None
