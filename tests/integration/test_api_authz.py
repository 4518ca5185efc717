"""Who may do what, as a user notices it: with tokens configured, one user cannot change,
read the secrets of, or read the output of another's job; admins can; operators' changes
are admins'; and the same rules hold over gRPC."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from tests.integration.test_api_app import api, service
from tests.integration.test_api_spinnaker import add_task
from tests.integration.test_grpc_jobs import descriptor, grpc_api
from titus.api.auth import TokenAuth
from titus.api.cluster import ClusterService
from titus.api.errors import ApiError
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.observe import Hub
from titus.api.policy import REDACTED
from titus.api.query import Criteria
from titus.api.schemas import CapacityGroup
from titus.api.view import ActiveView
from titus.coord.local import LocalCoordinator
from titus.store.sqlite import SqliteJobStore

ALICE = {"Authorization": "Bearer tok-alice"}
BOB = {"Authorization": "Bearer tok-bob"}
TEAM = {"Authorization": "Bearer tok-carol"}
ROOT = {"Authorization": "Bearer tok-root"}


def tokens(tmp: Path) -> str:
    path = tmp / "tokens.json"
    path.write_text(
        json.dumps(
            {
                "tok-alice": {"callerId": "alice"},
                "tok-bob": {"callerId": "bob", "roles": ["user"]},
                "tok-carol": {"callerId": "carol", "teams": ["Team@Example.com"]},
                "tok-root": {"callerId": "root", "roles": ["admin"]},
            }
        )
    )
    return str(path)


def test_only_the_owner_its_team_or_an_admin_change_a_job(tmp_path: Path) -> None:
    with api(tmp_path, auth_tokens_file=tokens(tmp_path)) as (http, _):
        body = service(container={**service()["container"], "env": {"DB_PASSWORD": "s3cret"}})
        body["owner"] = {"teamEmail": "team@example.com"}
        job_id = http.post("/api/v3/jobs", json=body, headers=ALICE).json()["id"]
        url = f"/api/v3/jobs/{job_id}"
        resize = {"min": 0, "desired": 1, "max": 5}
        refused = http.put(f"{url}/instances", json=resize, headers=BOB)
        assert refused.status_code == 403
        assert "rule: job owner" in refused.json()["message"]
        assert "bob" in refused.json()["message"]
        for change in (
            http.post(f"{url}/disable", headers=BOB),
            http.put(f"{url}/attributes", json={"attributes": {"a": "b"}}, headers=BOB),
            http.delete(url, headers=BOB),
        ):
            assert change.status_code == 403, change.text
        assert http.put(f"{url}/instances", json=resize, headers=ALICE).status_code == 200
        assert http.post(f"{url}/disable", headers=TEAM).status_code == 200
        # env values are the owners' and admins'; others see the keys only
        seen = http.get(url, headers=BOB).json()["jobDescriptor"]["container"]["env"]
        assert seen == {"DB_PASSWORD": REDACTED}
        listed = http.get("/api/v3/jobs", headers=BOB).json()["items"][0]
        assert listed["jobDescriptor"]["container"]["env"] == {"DB_PASSWORD": REDACTED}
        for who in (ALICE, TEAM, ROOT):
            env = http.get(url, headers=who).json()["jobDescriptor"]["container"]["env"]
            assert env == {"DB_PASSWORD": "s3cret"}
        assert http.delete(url, headers=ROOT).status_code == 200


def test_operators_changes_need_the_admin_role(tmp_path: Path) -> None:
    with api(tmp_path, auth_tokens_file=tokens(tmp_path)) as (http, _):
        url = "/api/v3/instanceGroups/g1/lifecycle"
        refused = http.put(url, json={"state": "phasedOut"}, headers=ALICE)
        assert refused.status_code == 403
        assert "admin role" in refused.json()["message"]
        assert http.put(url, json={"state": "phasedOut"}, headers=ROOT).status_code == 200
        assert http.get("/api/v3/agents").status_code == 401
        assert http.get("/api/v3/agents", headers=ALICE).status_code == 200


def test_an_unknown_role_in_the_token_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"t": {"callerId": "x", "roles": ["root"]}}))
    with pytest.raises(ValueError, match="unknown role"):
        TokenAuth.from_file(str(path))


def test_over_grpc_another_owner_cannot_kill_and_reads_hide_env(tmp_path: Path) -> None:
    with grpc_api(tmp_path, auth_tokens_file=tokens(tmp_path)) as api_:
        alice = (("authorization", "Bearer tok-alice"),)
        bob = (("authorization", "Bearer tok-bob"),)
        request = descriptor()
        request.container.env["TOKEN"] = "s3cret"
        job_id = api_.stub.CreateJob(request, metadata=alice).id
        with pytest.raises(grpc.RpcError) as refused:
            api_.stub.KillJob(pb.JobId(id=job_id), metadata=bob)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "rule: job owner" in (refused.value.details() or "")
        seen = api_.stub.FindJob(pb.JobId(id=job_id), metadata=bob)
        assert dict(seen.jobDescriptor.container.env) == {"TOKEN": REDACTED}
        own = api_.stub.FindJob(pb.JobId(id=job_id), metadata=alice)
        assert dict(own.jobDescriptor.container.env) == {"TOKEN": "s3cret"}
        api_.stub.KillJob(pb.JobId(id=job_id), metadata=alice)


def test_a_caller_holds_a_bounded_number_of_observe_streams(tmp_path: Path) -> None:
    view = ActiveView(SqliteJobStore(tmp_path / "t.db"))
    hub = Hub(view, queue_size=10, history_size=10, max_per_caller=2)
    everything = Criteria.parse({}, set())
    first, _ = hub.subscribe(everything, None, key="principal:alice")
    hub.subscribe(everything, None, key="principal:alice")
    with pytest.raises(ApiError) as refused:
        hub.subscribe(everything, None, key="principal:alice")
    assert refused.value.status == 429
    assert "observe_max_per_caller" in refused.value.message
    hub.subscribe(everything, None, key="principal:bob")  # another caller has its own
    hub.unsubscribe(first)
    hub.subscribe(everything, None, key="principal:alice")  # a closed stream frees its place


def test_task_output_and_task_changes_are_the_jobs_owners(tmp_path: Path) -> None:
    with api(tmp_path, auth_tokens_file=tokens(tmp_path)) as (http, store):
        job_id = http.post("/api/v3/jobs", json=service(), headers=ALICE).json()["id"]
        task_id = add_task(store, job_id, 1)
        logs = http.get(f"/api/v3/tasks/{task_id}/logs", headers=BOB)
        assert logs.status_code == 403
        assert "read the output" in logs.json()["message"]
        assert "rule: job owner" in logs.json()["message"]
        assert http.delete(f"/api/v3/tasks/{task_id}", headers=BOB).status_code == 403
        attrs = {"attributes": {"a": "b"}}
        put = http.put(f"/api/v3/tasks/{task_id}/attributes", json=attrs, headers=BOB)
        assert put.status_code == 403
        assert (
            http.put(f"/api/v3/tasks/{task_id}/attributes", json=attrs, headers=ALICE).status_code
            == 200
        )
        assert http.delete(f"/api/v3/tasks/{task_id}", headers=ALICE).status_code == 200


def test_capacity_group_changes_are_admins_only(tmp_path: Path) -> None:
    """Creating, changing and deleting a capacity group reserves or frees capacity for
    everyone: a user's token is refused (403, naming the rule), an admin's succeeds."""
    url = "/api/v2/management/applications"
    group = {"appName": "batchy", "instanceCount": 2}
    with api(tmp_path, auth_tokens_file=tokens(tmp_path)) as (http, _):
        for user, name in ((ALICE, "alice"), (BOB, "bob")):
            for refused in (
                http.post(url, json=group, headers=user),
                http.put(f"{url}/batchy", json=group, headers=user),
                http.delete(f"{url}/batchy", headers=user),
            ):
                assert refused.status_code == 403, refused.text
                message = refused.json()["message"]
                assert "rule: admin role" in message and f"caller {name} " in message
        assert http.post(url, json=group).status_code == 401  # no token at all
        assert http.get(f"{url}/batchy", headers=ALICE).status_code == 404  # nothing made

        created = http.post(url, json=group, headers=ROOT)
        assert created.status_code == 201, created.text
        assert http.get(f"{url}/batchy", headers=ALICE).json()["instanceCount"] == 2
        bigger = {**group, "instanceCount": 5}
        assert http.put(f"{url}/batchy", json=bigger, headers=BOB).status_code == 403
        assert http.get(f"{url}/batchy", headers=ALICE).json()["instanceCount"] == 2
        updated = http.put(f"{url}/batchy", json=bigger, headers=ROOT)
        assert updated.status_code == 200, updated.text
        assert http.get(f"{url}/batchy", headers=ALICE).json()["instanceCount"] == 5
        assert http.delete(f"{url}/batchy", headers=ALICE).status_code == 403
        assert http.get(f"{url}/batchy", headers=ALICE).status_code == 200
        assert http.delete(f"{url}/batchy", headers=ROOT).status_code == 204
        assert http.get(f"{url}/batchy", headers=ALICE).status_code == 404


def test_the_service_layer_refuses_capacity_group_changes_to_non_admins(tmp_path: Path) -> None:
    """The rule lives in the service layer too (every transport goes through it): a token
    without the admin role is refused by name, whatever the transport in front."""
    auth = TokenAuth.from_file(tokens(tmp_path))
    alice, root = auth.resolve(ALICE["Authorization"]), auth.resolve(ROOT["Authorization"])
    assert alice is not None and root is not None
    store = SqliteJobStore(tmp_path / "titus.db")
    groups = ClusterService(store, LocalCoordinator())
    group = CapacityGroup(appName="batchy", instanceCount=2)
    for change, action in (
        (lambda: groups.create_capacity_group(group, who=alice), "create capacity groups"),
        (lambda: groups.update_capacity_group("batchy", group, who=alice), "change capacity"),
        (lambda: groups.delete_capacity_group("batchy", [], who=alice), "delete capacity"),
    ):
        with pytest.raises(ApiError) as refused:
            change()
        assert refused.value.status == 403
        assert f"alice may not {action}" in refused.value.message
        assert "(rule: admin role)" in refused.value.message
    assert store.get_capacity_group("batchy") is None
    groups.create_capacity_group(group, who=root)
    bigger = group.model_copy(update={"instanceCount": 5})
    assert groups.update_capacity_group("batchy", bigger, who=root)["instanceCount"] == 5
    groups.delete_capacity_group("batchy", [], who=root)
    assert store.get_capacity_group("batchy") is None
    store.close()
