"""Admission against AWS: a job's IAM role and security groups must exist before it is
taken, so a typo is a 400 at submit time and not a task that fails on every host.

The role (an ARN or a name in this account) must exist in IAM and trust `sts:AssumeRole`
(by the agents' role when `api_aws_agent_role_arn` names it); every security group must
exist in EC2 (in `api_aws_vpc_id` when set). Answers are cached (`api_aws_admission_cache_sec`
for what exists, a few seconds for what does not, so a role made a moment ago is found),
and the cache is bounded. When AWS cannot be asked, `api_aws_admission` decides: closed
refuses the job with a 503 that names what could not be checked, open admits it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from titus.api.errors import ApiError
from titus.model.job import JobDescriptor
from titus.model.validation import FieldError, InvalidRequest
from titus.settings import Settings

log = logging.getLogger(__name__)

ROLE_PATH = "container.securityProfile.iamRole"
GROUPS_PATH = "container.securityProfile.securityGroups"
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3)
NEGATIVE_CACHE_SEC = 5.0
MAX_CACHED = 10_000
#: Error codes that say the thing is not there (as opposed to AWS being unable to answer).
MISSING = frozenset({"NoSuchEntity", "InvalidGroup.NotFound", "InvalidGroupId.Malformed"})


class Unreachable(Exception):
    """AWS could not say."""


def _trusts_assume_role(document: Any, principal: str) -> bool:
    if isinstance(document, str):
        try:
            document = json.loads(urllib.parse.unquote(document))
        except ValueError:
            return False
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        if not principal:
            return True
        allowed = statement.get("Principal", {})
        named = allowed.get("AWS", []) if isinstance(allowed, dict) else allowed
        named = [named] if isinstance(named, str) else named
        if "*" in named or principal in named:
            return True
    return False


class AwsAdmission:
    def __init__(
        self,
        iam: Callable[[], Any],
        ec2: Callable[[], Any],
        *,
        fail_open: bool,
        cache_sec: float,
        agent_role_arn: str = "",
        vpc_id: str = "",
        clock: Callable[[], float] = time.monotonic,
    ):
        self._iam_factory, self._ec2_factory = iam, ec2
        self._clients: dict[str, Any] = {}
        self.fail_open = fail_open
        self.cache_sec = cache_sec
        self.agent_role_arn = agent_role_arn
        self.vpc_id = vpc_id
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> AwsAdmission | None:
        if settings.api_aws_admission == "off":
            return None
        region = settings.api_aws_region or None

        def client(name: str) -> Callable[[], Any]:
            return lambda: boto3.client(name, region_name=region, config=RETRY_CONFIG)

        return cls(
            client("iam"),
            client("ec2"),
            fail_open=settings.api_aws_admission == "open",
            cache_sec=settings.api_aws_admission_cache_sec,
            agent_role_arn=settings.api_aws_agent_role_arn,
            vpc_id=settings.api_aws_vpc_id,
        )

    def check(self, descriptor: JobDescriptor) -> None:
        """Refuse (400, naming each field) a role or group that AWS does not have."""
        profile = descriptor.container.securityProfile
        errors: list[FieldError] = []
        unreachable: list[str] = []
        checks: list[tuple[str, str, Callable[[str], str]]] = []
        if profile.iamRole:
            checks.append((ROLE_PATH, profile.iamRole, self._role_problem))
        for i, group in enumerate(profile.securityGroups):
            checks.append((f"{GROUPS_PATH}[{i}]", group, self._group_problem))
        for path, value, problem_of in checks:
            try:
                problem = self._cached(f"{path.split('[')[0]}|{value}", problem_of, value)
            except Unreachable as e:
                unreachable.append(f"{path}: {e}")
                continue
            if problem:
                errors.append(FieldError(path, problem))
        if errors:
            raise InvalidRequest(errors)
        if unreachable and not self.fail_open:
            raise ApiError(
                503,
                "cannot check with AWS now: " + "; ".join(unreachable),
                headers={"Retry-After": "5"},
            )
        if unreachable:
            log.warning("admitted unchecked (AWS unreachable): %s", "; ".join(unreachable))

    def _cached(self, key: str, ask: Callable[[str], str], value: str) -> str:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        problem = ask(value)
        ttl = NEGATIVE_CACHE_SEC if problem else self.cache_sec
        with self._lock:
            self._cache[key] = (now + ttl, problem)
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        return problem

    def _client(self, name: str) -> Any:
        if name not in self._clients:
            factory = self._iam_factory if name == "iam" else self._ec2_factory
            self._clients[name] = factory()
        return self._clients[name]

    def _ask(self, service: str, call: Callable[[Any], Any]) -> Any:
        """AWS's answer; None when the thing is missing; Unreachable when AWS cannot say."""
        try:
            return call(self._client(service))
        except botocore.exceptions.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in MISSING:
                return None
            raise Unreachable(f"{service}: {code}") from e
        except botocore.exceptions.BotoCoreError as e:
            raise Unreachable(f"{service}: {e}") from e

    def _role_problem(self, role: str) -> str:
        name = role.rsplit("/", 1)[-1]
        found = self._ask("iam", lambda iam: iam.get_role(RoleName=name))
        if found is None:
            return f"IAM role {role!r} does not exist"
        arn = str(found["Role"]["Arn"])
        if role.startswith("arn:") and arn != role:
            return f"IAM role {role!r} does not exist (this account's role of that name is {arn})"
        trust = found["Role"].get("AssumeRolePolicyDocument")
        if not _trusts_assume_role(trust, self.agent_role_arn):
            who = self.agent_role_arn or "anyone"
            return (
                f"IAM role {role!r} cannot be assumed: its trust policy does not let {who} "
                "call sts:AssumeRole"
            )
        return ""

    def _group_problem(self, group: str) -> str:
        found = self._ask("ec2", lambda ec2: ec2.describe_security_groups(GroupIds=[group]))
        groups = found.get("SecurityGroups", []) if found else []
        if not groups:
            return f"security group {group!r} does not exist"
        if self.vpc_id and groups[0].get("VpcId") != self.vpc_id:
            return f"security group {group!r} is not in VPC {self.vpc_id}"
        return ""
