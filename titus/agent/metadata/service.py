"""What the metadata service answers one task: the task's own identity and nothing else.

Only the paths below are served; `ami-id` and `instance-type` are not found (a task has
neither), and every other path is forbidden, as Titus's proxy answered, so nothing of the
host's own metadata leaks through. IMDSv2: a token PUT with a TTL in 1..21600 gets a token
(400 otherwise, 403 when forwarded); a request carrying a bad or expired token is 401, and
so is one without a token when the job or the host requires tokens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from titus.agent.metadata.credentials import (
    CredentialSource,
    RoleUnavailable,
    credentials_document,
    iso_time,
    role_name,
)
from titus.agent.metadata.tokens import TokenError, TokenSigner, parse_ttl
from titus.model.names import AGENT_PARAMETER_PREFIX, TaskContextKey

TOKEN_PATH = "/latest/api/token"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
#: The container attribute by which a job requires IMDSv2 tokens (Titus's name for it).
REQUIRE_TOKEN_ATTRIBUTE = AGENT_PARAMETER_PREFIX + "imds.requireToken"
NOT_SERVED = frozenset({"/latest/meta-data/ami-id", "/latest/meta-data/instance-type"})
MAX_PATH = 1024


@dataclass(frozen=True)
class Response:
    status: int
    body: str = ""
    content_type: str = "text/plain"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class TaskIdentity:
    """What a task's metadata says of it; `context` is the task's live context, so its
    address shows once the network hook has given it."""

    task_id: str
    context: Mapping[str, str]
    zone: str
    region: str
    started_at: float
    require_token: bool = False

    @property
    def ip(self) -> str:
        return self.context.get(TaskContextKey.CONTAINER_IP, "")


def _text(lines: list[str]) -> Response:
    return Response(200, "\n".join(lines))


def _json(document: Mapping[str, object]) -> Response:
    return Response(200, json.dumps(document, indent=2), "application/json")


class MetadataService:
    def __init__(
        self,
        signer: TokenSigner,
        credentials: CredentialSource | None,
        clock: Callable[[], float] = time.time,
    ):
        self.signer = signer
        self.credentials = credentials
        self.clock = clock

    def handle(
        self, task: TaskIdentity, method: str, path: str, headers: Mapping[str, str]
    ) -> Response:
        """The answer to one request; `headers` keys are lower case."""
        path = path.split("?", 1)[0]
        if len(path) > MAX_PATH or "/.." in path or "//" in path:
            return Response(403, "Forbidden")
        if path == TOKEN_PATH:
            return self._token(task, method, headers)
        if method not in ("GET", "HEAD"):
            return Response(405, "Method Not Allowed", headers={"Allow": "GET, HEAD"})
        token = headers.get(TOKEN_HEADER)
        if token is not None and not self.signer.valid(token, task.task_id, self.clock()):
            return Response(401, "Unauthorized")
        if token is None and task.require_token:
            return Response(401, "Unauthorized: this task requires IMDSv2 tokens")
        return self._route(task, path)

    def _token(self, task: TaskIdentity, method: str, headers: Mapping[str, str]) -> Response:
        if method != "PUT":
            return Response(405, "Method Not Allowed", headers={"Allow": "PUT"})
        if "x-forwarded-for" in headers:
            return Response(403, "Forbidden")
        try:
            ttl = parse_ttl(headers.get(TTL_HEADER))
        except TokenError as e:
            return Response(400, f"Bad Request: {e}")
        token = self.signer.issue(task.task_id, ttl, self.clock())
        return Response(200, token, headers={"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})

    def _role(self, task: TaskIdentity) -> str | None:
        return self.credentials.role_of(task.task_id) if self.credentials else None

    def _route(self, task: TaskIdentity, path: str) -> Response:
        role = self._role(task)
        routes: dict[str, Callable[[], Response]] = {
            "/latest": lambda: _text(["dynamic", "meta-data"]),
            "/latest/meta-data": lambda: _text(
                ["iam/", "instance-id", "local-hostname", "local-ipv4", "placement/"]
            ),
            "/latest/meta-data/instance-id": lambda: _text([task.task_id]),
            "/latest/meta-data/local-ipv4": lambda: _text([task.ip]),
            "/latest/meta-data/local-hostname": lambda: _text([task.task_id]),
            "/latest/meta-data/placement": lambda: _text(["availability-zone", "region"]),
            "/latest/meta-data/placement/availability-zone": lambda: _text([task.zone]),
            "/latest/meta-data/placement/region": lambda: _text([task.region]),
            "/latest/meta-data/iam": lambda: _text(["info", "security-credentials/"]),
            "/latest/meta-data/iam/info": lambda: self._info(task, role),
            "/latest/meta-data/iam/security-credentials": lambda: self._roles(role),
            "/latest/dynamic": lambda: _text(["instance-identity/"]),
            "/latest/dynamic/instance-identity": lambda: _text(["document"]),
            "/latest/dynamic/instance-identity/document": lambda: self._document(task),
        }
        key = path.rstrip("/")
        if key in routes:
            return routes[key]()
        if path in NOT_SERVED:
            return Response(404, "Not Found")
        prefix = "/latest/meta-data/iam/security-credentials/"
        if path.startswith(prefix) and path.count("/") == prefix.count("/"):
            return self._credentials(task, role, path[len(prefix) :])
        return Response(403, "Forbidden: this path is not served to containers")

    @staticmethod
    def _no_role() -> Response:
        return Response(404, "Not Found: no IAM role is available to this task")

    def _roles(self, role: str | None) -> Response:
        return _text([role_name(role)]) if role else self._no_role()

    def _info(self, task: TaskIdentity, role: str | None) -> Response:
        if not role:
            return self._no_role()
        profile = role.replace(":role/", ":instance-profile/", 1)
        return _json(
            {
                "Code": "Success",
                "LastUpdated": iso_time(self.clock()),
                "InstanceProfileArn": profile,
                "InstanceProfileId": task.task_id,
            }
        )

    def _credentials(self, task: TaskIdentity, role: str | None, asked: str) -> Response:
        if not role or asked != role_name(role) or self.credentials is None:
            return Response(404, "Not Found")
        try:
            creds = self.credentials.current(task.task_id)
        except RoleUnavailable as e:
            return Response(e.status, str(e))
        return _json(credentials_document(creds))

    def _document(self, task: TaskIdentity) -> Response:
        account = self.credentials.account_id if self.credentials else ""
        return _json(
            {
                "accountId": account,
                "architecture": "x86_64",
                "availabilityZone": task.zone,
                "instanceId": task.task_id,
                "pendingTime": iso_time(task.started_at),
                "privateIp": task.ip,
                "region": task.region,
                "version": "2017-09-30",
            }
        )
