"""Credentials of each task's IAM role, from STS, fetched before its container starts.

A task's role is assumed once at launch (session name `titus-<taskId>`), so a role that
cannot be had fails the launch with a clear reason instead of a container that finds no
credentials later. After that one renewer thread keeps every task's credentials fresh:
it assumes the role again when less than `renew_before_sec` remain and, on a failure,
tries again every `retry_sec` while the old credentials still hold. The metadata service
only ever reads what is cached, so no container's request waits on STS.

STS's answers keep their meaning for the container: an access error (the role does not
exist, does not trust this host, or the host may not assume it) is 403 and permanent; a
throttle or an outage is 503 and passes (botocore retries throttles with backoff first).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

log = logging.getLogger(__name__)

RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 5}, connect_timeout=5)
#: STS error codes that no retry mends.
ACCESS_ERRORS = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "NoSuchEntity",
        "ValidationError",
        "InvalidParameterValue",
        "RegionDisabledException",
        "MalformedPolicyDocument",
    }
)
_SESSION_CHARS = re.compile(r"[^\w+=,.@-]")
MAX_SESSION_NAME = 64


def session_name(task_id: str) -> str:
    """`titus-<taskId>` in the characters and length STS allows."""
    return _SESSION_CHARS.sub("_", f"titus-{task_id}")[:MAX_SESSION_NAME]


def role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


class RoleUnavailable(Exception):
    """The role's credentials cannot be had: `permanent` for an access error."""

    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.permanent = permanent

    @property
    def status(self) -> int:
        return 403 if self.permanent else 503


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    token: str
    expiration: float
    last_updated: float


@dataclass
class _TaskRole:
    role_arn: str
    session: str
    credentials: Credentials | None = None
    error: RoleUnavailable | None = None
    next_attempt: float = 0.0


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CredentialSource:
    """The role credentials of every task on this host."""

    def __init__(
        self,
        sts: Callable[[], Any],
        duration_sec: int = 3600,
        renew_before_sec: float = 600.0,
        retry_sec: float = 10.0,
        clock: Callable[[], float] = time.time,
    ):
        self._sts_factory = sts
        self._sts: Any = None
        self.duration_sec = duration_sec
        self.renew_before_sec = renew_before_sec
        self.retry_sec = retry_sec
        self.clock = clock
        self._roles: dict[str, _TaskRole] = {}
        self._account: str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._renewer: threading.Thread | None = None

    # ---- what the hooks and the service call ----------------------------------------------
    def prepare(self, task_id: str, role: str) -> str:
        """Assume the task's role now; its ARN. Raises RoleUnavailable."""
        entry = _TaskRole(self.role_arn(role), session_name(task_id))
        self._refresh(entry)
        if entry.credentials is None and entry.error is not None:
            raise entry.error
        self._keep(task_id, entry)
        return entry.role_arn

    def adopt(self, task_id: str, role: str) -> None:
        """Take over a running task's role after a restart: fetched by the renewer."""
        try:
            arn = self.role_arn(role)
        except RoleUnavailable as e:
            log.warning("task %s: role %s: %s", task_id, role, e)
            arn = role
        self._keep(task_id, _TaskRole(arn, session_name(task_id)))

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._roles.pop(task_id, None)

    def role_of(self, task_id: str) -> str | None:
        entry = self._roles.get(task_id)
        return entry.role_arn if entry else None

    def current(self, task_id: str) -> Credentials:
        """The task's cached credentials while they hold; else why not (RoleUnavailable)."""
        entry = self._roles.get(task_id)
        if entry is None:
            raise RoleUnavailable("this task has no IAM role", permanent=True)
        creds = entry.credentials
        if creds is not None and creds.expiration > self.clock():
            return creds
        raise entry.error or RoleUnavailable("credentials are being fetched", permanent=False)

    @property
    def account_id(self) -> str:
        if self._account is None:
            try:
                self._account = str(self._client().get_caller_identity()["Account"])
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                return ""
        return self._account

    def role_arn(self, role: str) -> str:
        """The ARN of a role named by ARN or by name (in this host's account)."""
        if role.startswith("arn:"):
            return role
        account = self.account_id
        if not account:
            raise RoleUnavailable(f"cannot tell the account of role {role!r}", permanent=False)
        return f"arn:aws:iam::{account}:role/{role}"

    # ---- renewal --------------------------------------------------------------------------
    def _client(self) -> Any:
        if self._sts is None:
            self._sts = self._sts_factory()
        return self._sts

    def _keep(self, task_id: str, entry: _TaskRole) -> None:
        with self._lock:
            self._roles[task_id] = entry
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(
                    target=self._renew_loop, name="iam-renewer", daemon=True
                )
                self._renewer.start()
        self._wake.set()

    def _due(self, entry: _TaskRole, now: float) -> bool:
        if now < entry.next_attempt:
            return False
        creds = entry.credentials
        return creds is None or creds.expiration - now < self.renew_before_sec

    def _renew_loop(self) -> None:
        while True:
            with self._lock:
                if not self._roles:
                    self._renewer = None
                    return
                entries = list(self._roles.values())
            now = self.clock()
            for entry in entries:
                if self._due(entry, now):
                    self._refresh(entry)
            self._wake.wait(1.0)
            self._wake.clear()

    def _refresh(self, entry: _TaskRole) -> None:
        try:
            answer = self._client().assume_role(
                RoleArn=entry.role_arn,
                RoleSessionName=entry.session,
                DurationSeconds=self.duration_sec,
            )
        except botocore.exceptions.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            message = str(e.response.get("Error", {}).get("Message", "")) or code
            entry.error = RoleUnavailable(
                f"STS AssumeRole {entry.role_arn}: {code}: {message}", code in ACCESS_ERRORS
            )
        except botocore.exceptions.BotoCoreError as e:
            entry.error = RoleUnavailable(f"STS AssumeRole {entry.role_arn}: {e}", False)
        else:
            got = answer["Credentials"]
            entry.credentials = Credentials(
                got["AccessKeyId"],
                got["SecretAccessKey"],
                got["SessionToken"],
                got["Expiration"].timestamp(),
                self.clock(),
            )
            entry.error = None
            entry.next_attempt = 0.0
            return
        entry.next_attempt = self.clock() + self.retry_sec
        log.warning("%s", entry.error)


def credentials_document(creds: Credentials) -> dict[str, str]:
    """What IMDS answers for `iam/security-credentials/<role>`."""
    return {
        "Code": "Success",
        "LastUpdated": iso_time(creds.last_updated),
        "Type": "AWS-HMAC",
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "Token": creds.token,
        "Expiration": iso_time(creds.expiration),
    }


def sts_client(region: str) -> Callable[[], Any]:
    """A factory of the STS client (the environment says where and who)."""
    return lambda: boto3.client("sts", region_name=region or None, config=RETRY_CONFIG)


def host_has_aws_credentials() -> bool:
    return boto3.Session().get_credentials() is not None
