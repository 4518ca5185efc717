"""The metadata hooks: the task's role credentials before its container, its own
metadata service once the container's namespace exists.

`IamRoleHook` runs before the container hook: it assumes the job's role, so a task whose
role can never be had ends at launch as an invalid request (no retry would mend it, and
none is used up), and a passing STS fault as a transient system error that the master
places again. `MetadataHook` runs after the container hook and before the network hook:
it makes 169.254.169.254 local to the container's namespace and serves it there, so by
the time the task's address is up (the network hook's last step) its metadata answers.
After an agent restart both adopt what runs: the credentials are fetched again and the
namespace gets a new socket. Teardown stops serving; the address goes with the namespace.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from titus.agent.hooks import LaunchError, TaskContext, TaskHook
from titus.agent.metadata import netns
from titus.agent.metadata.credentials import (
    CredentialSource,
    RoleUnavailable,
    host_has_aws_credentials,
    sts_client,
)
from titus.agent.metadata.server import MetadataServer
from titus.agent.metadata.service import REQUIRE_TOKEN_ATTRIBUTE, MetadataService, TaskIdentity
from titus.agent.metadata.tokens import TokenSigner, load_key
from titus.agent.network.provider import NetworkError
from titus.agent.runtime import DockerRuntime
from titus.model.states import Reason
from titus.settings import Settings

log = logging.getLogger(__name__)


class IamRoleHook(TaskHook):
    name = "iam"

    def __init__(self, credentials: CredentialSource):
        self.credentials = credentials

    def setup(self, ctx: TaskContext) -> None:
        role = ctx.spec.container.securityProfile.iamRole
        if not role:
            return
        try:
            self.credentials.prepare(ctx.task_id, role)
        except RoleUnavailable as e:
            reason = Reason.INVALID_REQUEST if e.permanent else Reason.TRANSIENT_SYSTEM_ERROR
            raise LaunchError(reason, f"IAM role {role}: {e}") from e

    def adopt(self, ctx: TaskContext) -> None:
        role = ctx.spec.container.securityProfile.iamRole
        if role:
            self.credentials.adopt(ctx.task_id, role)

    def teardown(self, ctx: TaskContext) -> None:
        self.credentials.forget(ctx.task_id)


class MetadataHook(TaskHook):
    name = "metadata"

    def __init__(self, runtime: DockerRuntime, server: MetadataServer, settings: Settings):
        self.runtime = runtime
        self.server = server
        self.zone = settings.agent_zone
        self.region = settings.agent_region
        self.require_token = settings.agent_metadata_require_token

    def _identity(self, ctx: TaskContext) -> TaskIdentity:
        attributes = ctx.spec.container.attributes
        required = attributes.get(REQUIRE_TOKEN_ATTRIBUTE, "").lower() == "true"
        started = ctx.container.started_at if ctx.container else None
        return TaskIdentity(
            ctx.task_id,
            ctx.context,
            self.zone,
            self.region,
            started or 0.0,
            self.require_token or required,
        )

    def _serve(self, ctx: TaskContext, pid: int) -> None:
        netns.add_local_address(pid)
        self.server.serve(self._identity(ctx), netns.listen_in_namespace_of(pid))

    def setup(self, ctx: TaskContext) -> None:
        # the container hook's record was made right after the start: no second inspect
        record = ctx.container
        pid = record.pid if record and record.pid > 0 else self.runtime.pid(ctx.container_id or "")
        if pid <= 0:
            return  # the container already ended: its exit is the task's outcome
        try:
            self._serve(ctx, pid)
        except (OSError, NetworkError) as e:
            self.teardown(ctx)
            # a short task may end while its namespace is being entered: the process is
            # gone, and its exit (not this) is the task's outcome
            if netns.process_alive(pid):
                raise LaunchError(
                    Reason.LOCAL_SYSTEM_ERROR, f"metadata service setup failed: {e}"
                ) from e

    def adopt(self, ctx: TaskContext) -> None:
        pid = self.runtime.pid(ctx.container_id or "")
        if pid <= 0:
            return
        try:
            self._serve(ctx, pid)
        except (OSError, NetworkError) as e:
            log.warning("task %s: metadata service not adopted: %s", ctx.task_id, e)

    def release(self, ctx: TaskContext) -> None:
        self.server.stop_serving(ctx.task_id)

    def teardown(self, ctx: TaskContext) -> None:
        self.server.stop_serving(ctx.task_id)


def credential_source(settings: Settings) -> CredentialSource | None:
    """Where role credentials come from: STS, unless `agent_iam_provider` says none or
    (auto) this host has no AWS credentials to call it with."""
    provider = settings.agent_iam_provider
    if provider == "none" or (provider == "auto" and not host_has_aws_credentials()):
        return None
    return CredentialSource(
        sts_client(settings.agent_aws_region),
        duration_sec=settings.agent_iam_duration_sec,
        renew_before_sec=settings.agent_iam_renew_before_sec,
        retry_sec=settings.agent_iam_retry_sec,
    )


def metadata_hooks(
    settings: Settings, runtime: DockerRuntime
) -> tuple[list[TaskHook], list[TaskHook]]:
    """(before the container, after it): the role hook and the metadata hook, or none when
    the metadata service is off or the agent cannot enter namespaces (not root)."""
    if not settings.agent_metadata_enabled:
        return [], []
    if os.geteuid() != 0:
        log.warning("not root: tasks get no metadata service of their own (and no IAM role)")
        return [], []
    credentials = credential_source(settings)
    key = load_key(Path(settings.data_dir) / "metadata" / "token.key")
    server = MetadataServer(MetadataService(TokenSigner(key), credentials))
    before: list[TaskHook] = [IamRoleHook(credentials)] if credentials else []
    return before, [MetadataHook(runtime, server, settings)]
