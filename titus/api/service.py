"""What the API does to jobs, apart from HTTP: write the user's wish, wake the master.

The API never talks to hosts: it records desired state in the store (a new job, a new
capacity, a kill) and nudges the master, which acts on it. Writes use the version read,
so a concurrent change by the master or another caller is retried, never overwritten.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from titus.api.admission import Limits, PendingCounts
from titus.api.auth import OPEN, Principal
from titus.api.aws_admission import AwsAdmission
from titus.api.errors import ApiError, not_found
from titus.api.policy import CREATED_BY, job_doc, require_owner
from titus.api.query import Criteria
from titus.coord.base import Coordinator
from titus.model.job import (
    Capacity,
    DisruptionBudget,
    Job,
    JobDescriptor,
    JobStatus,
    ServiceJobProcesses,
    Task,
)
from titus.model.names import DEFAULT_CAPACITY_GROUP, AgentContext
from titus.model.scaling import resize_refusal
from titus.model.states import JobState, Reason, TaskState
from titus.model.validation import (
    DEFAULT_BOUNDS,
    Bounds,
    InvalidRequest,
    check_attribute_totals,
    check_capacity,
    check_disruption_budget,
    check_user_attributes,
    parse_job_descriptor,
)
from titus.store.base import (
    Conflict,
    GroupNameTaken,
    IdempotencyRecord,
    KillRequest,
    MoveRequest,
    StoreNotWritten,
    StoreUnavailable,
)
from titus.store.records import Created
from titus.store.roles import (
    Idempotency,
    Jobs,
    Requests,
    SchedulerResults,
    SubmitsCreates,
    TaskAttributes,
)

log = logging.getLogger("titus.api")

#: How long a claimed Idempotency-Key waits for its job before a retry may take the key over
#: (the claimant died between the claim and the create): long next to any create, short
#: next to the key's life, so a crash does not block the retry for a day.
IDEMPOTENCY_PENDING_LEASE_SEC = 30.0

CAS_ATTEMPTS = 20
HOSTS_TTL_SEC = 2.0
#: Jobs whose tasks one listing by `jobIds` reads from the store.
MAX_LISTED_JOBS = 100

T = TypeVar("T")


class JobServiceStore(Jobs, Requests, Idempotency, TaskAttributes, SchedulerResults, Protocol):
    """The store roles the job service uses (cluster configuration is ClusterService's)."""


class JobService:
    """Every user-facing rule about jobs and tasks, whatever transport the call came by."""

    def __init__(
        self,
        store: JobServiceStore,
        coord: Coordinator,
        *,
        bounds: Bounds = DEFAULT_BOUNDS,
        limits: Limits,
        idempotency_ttl_sec: float,
        aws: AwsAdmission | None = None,
        catch_up: Callable[[], Awaitable[None]] | None = None,
        on_created: Callable[[Created], None] | None = None,
    ):
        """`limits` and `idempotency_ttl_sec` come from Settings (see create_app).

        For creates on the event loop (`create_job_async`): `catch_up` brings the numbers
        `limits` counts from up to date (the API's view), asked before a refusal is final;
        `on_created` is told of each job created there, once durable (the view takes it
        as it is instead of reading it back)."""
        self.store = store
        self.coord = coord
        self.bounds = bounds
        self.limits = limits
        self.idempotency_ttl_sec = idempotency_ttl_sec
        self.aws = aws
        self.catch_up = catch_up
        self.on_created = on_created
        self._submits = isinstance(store, SubmitsCreates)
        self._hosts: tuple[float, Bounds | None] = (float("-inf"), None)
        self._hosts_lock = threading.Lock()

    def current_bounds(self) -> Bounds:
        """The configured bounds, capped by the largest registered host (looked up at most
        every HOSTS_TTL_SEC: the registry may be remote)."""
        with self._hosts_lock:
            at, bounds = self._hosts
            if bounds is None or time.monotonic() - at > HOSTS_TTL_SEC:
                bounds = replace(self.bounds, host=largest_host(self.coord))
                self._hosts = (time.monotonic(), bounds)
        return bounds

    def _cached_bounds(self) -> Bounds | None:
        """`current_bounds` when the host lookup is fresh (no I/O), else None."""
        at, bounds = self._hosts
        if time.monotonic() - at > HOSTS_TTL_SEC:
            return None
        return bounds

    def _nudge(self, job_id: str) -> None:
        self.store.mark_dirty(job_id)
        self.coord.wake()

    # ---- jobs ---------------------------------------------------------------------------
    def create_job(
        self, body: Any, caller: str = "", reason: str = "", idempotency_key: str = ""
    ) -> Job:
        """Validate, admit and store a new job. With an idempotency key, a retry with the
        same body gets the first job back; the same key with another body is a 422."""
        descriptor = parse_job_descriptor(body, self.current_bounds())
        if self.aws is not None:
            self.aws.check(descriptor)
        self._admit(descriptor)
        if not idempotency_key:
            return self.create_parsed(descriptor, caller, reason)
        return self._create_once(descriptor, body, caller, reason, idempotency_key)

    async def create_job_async(
        self,
        body: Any,
        caller: str = "",
        reason: str = "",
        idempotency_key: str = "",
        *,
        offload: bool = False,
    ) -> Job:
        """`create_job` for a caller on the event loop, without a worker thread per create:
        validation and admission run here (pure computation), the write joins the store's
        group commit (`SubmitsCreates`) and is awaited. What needs I/O (a stale host
        lookup or pending count, AWS, an idempotency key, a store without submissions)
        goes to a worker thread; so does the parsing of a large body (`offload`), which
        would hold the loop too long."""
        bounds = self._cached_bounds()
        if offload or bounds is None:
            descriptor = await asyncio.to_thread(
                lambda: parse_job_descriptor(body, self.current_bounds())
            )
        else:
            descriptor = parse_job_descriptor(body, bounds)
        if self.aws is not None:
            await asyncio.to_thread(self.aws.check, descriptor)
        try:
            await self._admit_async(descriptor)
        except ApiError as exc:
            if exc.status != 429 or self.catch_up is None:
                raise
            await self.catch_up()  # refuse on current numbers only
            await self._admit_async(descriptor)
        if idempotency_key:
            return await asyncio.to_thread(
                self._create_once, descriptor, body, caller, reason, idempotency_key
            )
        job = self._new_job(descriptor, caller, reason)
        try:
            if self._submits:
                store: Any = self.store
                created: Created = await _awaitable(store.submit_create_job(job, mark_dirty=True))
            else:
                created = Created(
                    await asyncio.to_thread(self.store.create_job, job, mark_dirty=True)
                )
        except GroupNameTaken as exc:
            raise ApiError(409, str(exc)) from None
        if self.on_created is not None:
            self.on_created(created)
        self._created(created.job, caller, reason)
        return created.job

    def _admit(self, descriptor: JobDescriptor) -> None:
        self.limits.admit(
            1, descriptor.task_demand, descriptor.capacityGroup or DEFAULT_CAPACITY_GROUP
        )

    async def _admit_async(self, descriptor: JobDescriptor) -> None:
        if self.limits.counts_cached():
            self._admit(descriptor)
        else:
            await asyncio.to_thread(self._admit, descriptor)

    def _create_once(
        self,
        descriptor: JobDescriptor,
        body: Any,
        caller: str,
        reason: str,
        idempotency_key: str,
    ) -> Job:
        """The create of a request with an Idempotency-Key: the first with the key makes
        the job; a retry with the same body gets it back, another body is a 422."""
        scoped = f"{caller}|{idempotency_key}"
        fingerprint = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        job_id = str(uuid.uuid4())
        record = self.store.claim_idempotency_key(
            scoped, fingerprint, job_id, self.idempotency_ttl_sec
        )
        if record.job_id != job_id and self._abandoned(record):
            # its claimant died between the claim and the create: the key is free again
            log.warning("Idempotency-Key %s: taking over an abandoned claim", idempotency_key)
            self.store.release_idempotency_key(scoped, record.job_id)
            record = self.store.claim_idempotency_key(
                scoped, fingerprint, job_id, self.idempotency_ttl_sec
            )
        if record.job_id != job_id:
            if record.fingerprint != fingerprint:
                raise ApiError(
                    422,
                    f"Idempotency-Key '{idempotency_key}' was used with another body "
                    f"(job {record.job_id})",
                )
            existing = self.store.get_job(record.job_id)
            if existing is not None:
                log.info("create job %s replayed for key %s", record.job_id, idempotency_key)
                return existing
            raise ApiError(
                409,
                f"a create with Idempotency-Key '{idempotency_key}' is in progress",
                headers={"Retry-After": "1"},
            )
        try:
            return self.create_parsed(descriptor, caller, reason, job_id=job_id)
        except StoreNotWritten:
            # certainly not written: the key is free at once for the client's retry
            self.store.release_idempotency_key(scoped, job_id)
            raise
        except StoreUnavailable:
            # The store could not say whether the job was written (a Cassandra batch that
            # timed out may still land): the key stays with it, so a retry gets the job if
            # it landed, and the key is taken over once the pending lease passes if not.
            raise
        except BaseException:
            self.store.release_idempotency_key(scoped, job_id)
            raise

    def _abandoned(self, record: IdempotencyRecord) -> bool:
        """A claim older than the pending lease whose job was never made."""
        claimed_at = record.expires_at - self.idempotency_ttl_sec
        if time.time() - claimed_at <= IDEMPOTENCY_PENDING_LEASE_SEC:
            return False
        return self.store.get_job(record.job_id) is None

    def create_parsed(
        self, descriptor: JobDescriptor, caller: str = "", reason: str = "", job_id: str = ""
    ) -> Job:
        job = self._new_job(descriptor, caller, reason, job_id)
        try:
            # The job and its dirty mark in one durable write (one commit, not two).
            job = self.store.create_job(job, mark_dirty=True)
        except GroupNameTaken as exc:
            raise ApiError(409, str(exc)) from None
        self._created(job, caller, reason)
        return job

    @staticmethod
    def _new_job(descriptor: JobDescriptor, caller: str, reason: str, job_id: str = "") -> Job:
        """A new job of a validated descriptor, recording who asked and why."""
        if caller:
            descriptor.attributes[CREATED_BY] = caller
        if reason:
            descriptor.attributes["titus.callReason"] = reason
        return Job(
            id=job_id or str(uuid.uuid4()),
            jobDescriptor=descriptor,
            status=JobStatus(state=JobState.ACCEPTED, reasonMessage="accepted"),
        )

    def _created(self, job: Job, caller: str, reason: str) -> None:
        descriptor = job.jobDescriptor
        log.info(
            "create job %s app=%s type=%s caller=%s reason=%s",
            job.id,
            descriptor.applicationName,
            descriptor.job_type,
            caller or "-",
            reason or "-",
        )
        self.coord.wake()

    def get_job(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        if job is None:
            raise not_found("job", job_id)
        return job

    def read_job(self, job_id: str, who: Principal = OPEN) -> dict[str, Any]:
        """A job's API document as `who` may read it (env values hidden from non-owners)."""
        return job_doc(who, self.get_job(job_id).api_json())

    def change_job(
        self, job_id: str, change: Callable[[Job], Job | None], who: Principal, action: str
    ) -> Job:
        """Apply `change` to the current job with optimistic retries; None means no-op.
        Only the job's owners and admins may (`action` names the change in a refusal)."""
        for _ in range(CAS_ATTEMPTS):
            job = self.get_job(job_id)
            require_owner(who, job, action)
            if job.status.state == JobState.FINISHED:
                raise ApiError(409, f"job {job_id} is finished")
            new = change(job.model_copy(deep=True))
            if new is None:
                return job
            try:
                saved = self.store.update_job(new)
            except Conflict:
                continue
            self._nudge(job_id)
            return saved
        raise ApiError(
            503, f"job {job_id} is changing too fast; try again", headers={"Retry-After": "1"}
        )

    def kill_job(
        self, job_id: str, caller: str = "", reason: str = "", who: Principal = OPEN
    ) -> Job:
        def kill(job: Job) -> Job | None:
            if job.status.state != JobState.ACCEPTED:
                return None
            return job.with_status(
                JobState.KILL_INITIATED, Reason.KILLED, f"killed by {caller or 'user'}"
            )

        job = self.change_job(job_id, kill, who, "kill")
        log.info("kill job %s caller=%s reason=%s", job_id, caller or "-", reason or "-")
        return job

    def resize(
        self,
        job_id: str,
        capacity: Capacity,
        caller: str = "",
        reason: str = "",
        *,
        partial: dict[str, int | None] | None = None,
        who: Principal = OPEN,
    ) -> Job:
        """Set min/desired/max (`partial`: only the fields given, as capacityAttributes)."""

        def change(job: Job) -> Job | None:
            service = self._service_of(job)
            cap = service.capacity
            new = (
                capacity
                if partial is None
                else Capacity(
                    min=cap.min if partial.get("min") is None else partial["min"],
                    desired=cap.desired if partial.get("desired") is None else partial["desired"],
                    max=cap.max if partial.get("max") is None else partial["max"],
                )
            )
            errors = check_capacity(new.min, new.desired, new.max, "capacity")
            if errors:
                raise ApiError(400, "invalid capacity", errors)
            refusal = resize_refusal(job_id, service, new)
            if refusal is not None:
                raise ApiError(400, refusal)
            self.limits.admit(0, new.desired - cap.desired)
            service.capacity = new
            return job

        job = self.change_job(job_id, change, who, "resize")
        self._log(
            "resize job",
            job_id,
            caller,
            reason,
            capacity=json.dumps(
                job.jobDescriptor.service.capacity.to_json() if job.jobDescriptor.service else {}
            ),
        )
        return job

    def _service_of(self, job: Job) -> Any:
        service = job.jobDescriptor.service
        if service is None:
            raise ApiError(400, f"job {job.id} is a batch job; this applies to service jobs")
        if job.status.state != JobState.ACCEPTED:
            raise ApiError(409, f"job {job.id} is being killed")
        return service

    def set_processes(
        self,
        job_id: str,
        processes: ServiceJobProcesses,
        caller: str = "",
        reason: str = "",
        who: Principal = OPEN,
    ) -> Job:
        def change(job: Job) -> Job | None:
            self._service_of(job).serviceJobProcesses = processes
            return job

        job = self.change_job(job_id, change, who, "change the processes of")
        self._log("set jobprocesses", job_id, caller, reason, value=processes.to_json())
        return job

    def set_enabled(
        self,
        job_id: str,
        enabled: bool,
        caller: str = "",
        reason: str = "",
        who: Principal = OPEN,
    ) -> Job:
        """Enable or disable a service job; its status history says when, by whom and why
        (the state stays Accepted)."""

        def change(job: Job) -> Job | None:
            if self._service_of(job).enabled == enabled:
                return None
            self._service_of(job).enabled = enabled
            return job.with_status(
                JobState.ACCEPTED, Reason.NORMAL, enabled_message(enabled, caller, reason)
            )

        job = self.change_job(job_id, change, who, "enable" if enabled else "disable")
        self._log("enable job" if enabled else "disable job", job_id, caller, reason)
        return job

    def set_disruption_budget(
        self,
        job_id: str,
        budget: DisruptionBudget,
        caller: str = "",
        reason: str = "",
        who: Principal = OPEN,
    ) -> Job:
        errors = check_disruption_budget(budget, "disruptionBudget")
        if errors:
            raise ApiError(400, "invalid disruption budget", errors)

        def change(job: Job) -> Job | None:
            if job.status.state != JobState.ACCEPTED:
                raise ApiError(409, f"job {job_id} is being killed")
            job.jobDescriptor.disruptionBudget = budget
            return job

        job = self.change_job(job_id, change, who, "change the disruption budget of")
        self._log("set disruptionBudget", job_id, caller, reason)
        return job

    def update_job_attributes(
        self,
        job_id: str,
        upsert: dict[str, str],
        delete: list[str],
        caller: str = "",
        reason: str = "",
        who: Principal = OPEN,
    ) -> Job:
        _check_attribute_change(upsert, delete)

        def change(job: Job) -> Job | None:
            attrs = job.jobDescriptor.attributes
            before = dict(attrs)
            attrs.update(upsert)
            for key in delete:
                attrs.pop(key, None)
            _check_attribute_totals(attrs)
            return job if attrs != before else None

        job = self.change_job(job_id, change, who, "change the attributes of")
        self._log(
            "update job attributes", job_id, caller, reason, set=sorted(upsert), delete=delete
        )
        return job

    def _log(self, what: str, ident: str, caller: str, reason: str, **extra: Any) -> None:
        details = " ".join(f"{k}={v}" for k, v in extra.items())
        log.info(
            "%s %s %scaller=%s reason=%s",
            what,
            ident,
            details + " " if details else "",
            caller or "-",
            reason or "-",
        )

    # ---- tasks --------------------------------------------------------------------------
    def _require_task_owner(self, who: Principal, task: Task, action: str) -> Job:
        """The task's job, once `who` is shown to own it (403 otherwise)."""
        job = self.get_job(task.jobId)
        require_owner(who, job, action)
        return job

    def get_task(self, task_id: str) -> Task:
        """A task with the attributes users set on it merged in."""
        task = self.store.get_task(task_id)
        if task is None:
            raise not_found("task", task_id)
        return task.with_attributes(self.store.get_task_attributes(task_id))

    def tasks_of_jobs(self, job_ids: Iterable[str], criteria: Criteria) -> dict[str, Task]:
        """The tasks, finished ones too, of the first MAX_LISTED_JOBS jobs named that match
        `criteria`, with their attributes, by task id: read from the store, since the
        API's view holds active tasks only."""
        out: dict[str, Task] = {}
        for job_id in list(job_ids)[:MAX_LISTED_JOBS]:
            job = self.store.get_job(job_id)
            if job is None or not criteria.job_matches(job):
                continue
            attrs = self.store.list_task_attributes(job_id)
            for t in self.store.list_tasks(job_id, include_archived=True):
                if criteria.task_matches(t):
                    out[t.id] = t.with_attributes(attrs.get(t.id, {}))
        return out

    def scheduler_result(self, task_id: str) -> dict[str, Any]:
        """Why a task is not placed: the leader's summary of its last placement attempt
        (`hostsConsidered`, `refusedBy`: hosts per rule, each host counted under the first
        rule that refused it, and a one-line `message`).

        A task that was placed, or that the scheduler has not tried yet, has no failure to
        explain: the answer then says so in `message` with `placed` or `pending` set.
        """
        task = self.store.get_task(task_id)
        if task is None:
            raise not_found("task", task_id)
        raw = self.store.get_scheduler_result(task_id) if task.state == TaskState.ACCEPTED else None
        if raw is not None:
            result: dict[str, Any] = json.loads(raw)
            result["state"] = str(task.state)
            return result
        placed = task.state != TaskState.ACCEPTED
        return {
            "taskId": task.id,
            "jobId": task.jobId,
            "state": str(task.state),
            "placed": placed,
            "hostsConsidered": 0,
            "refusedBy": {},
            "message": (
                f"placed on {task.agent_id}"
                if placed and task.agent_id
                else task.status.reasonMessage
            ),
        }

    def logs_address(self, task_id: str, who: Principal = OPEN) -> tuple[str, str]:
        """(host id, base URL) of what serves a placed task's output: a Mesos executor
        serves its own task's (the address it put in taskContext); a direct-mode agent
        serves all of its tasks' at the address it registered. A task's output is its
        job's owners' and admins' to read."""
        task = self.get_task(task_id)
        self._require_task_owner(who, task, "read the output of a task of")
        agent_id = task.agent_id
        if not agent_id:
            raise ApiError(404, f"task {task_id} has not been placed on a host yet: no logs")
        address = task.taskContext.get(AgentContext.LOGS_ADDRESS, "")
        if not address:
            agent = {a.id: a for a in self.coord.agents()}.get(agent_id)
            if agent is None:
                raise ApiError(503, f"host {agent_id} of task {task_id} is not reachable now")
            address = agent.address
        return agent_id, address

    def update_task_attributes(
        self,
        task_id: str,
        upsert: dict[str, str],
        delete: list[str],
        caller: str = "",
        reason: str = "",
        who: Principal = OPEN,
    ) -> None:
        """Users' task attributes live in a side record the API owns (one row per task and
        key) and are merged into the task on every read. The master keeps writing the task
        record itself with its epoch and version; a user's attribute change therefore never
        conflicts with, or is lost to, the master's state updates."""
        _check_attribute_change(upsert, delete)
        task = self.get_task(task_id)
        self._require_task_owner(who, task, "change task attributes of")
        if task.state == TaskState.FINISHED:
            raise ApiError(409, f"task {task_id} is finished")
        after = {**self.store.get_task_attributes(task_id), **upsert}
        for key in delete:
            after.pop(key, None)
        _check_attribute_totals(after)
        self.store.update_task_attributes(task_id, task.jobId, upsert, delete)
        self._log(
            "update task attributes", task_id, caller, reason, set=sorted(upsert), delete=delete
        )

    def move_task(
        self,
        source_job_id: str,
        target_job_id: str,
        task_id: str,
        caller: str = "",
        reason: str = "",
        who: Principal = OPEN,
    ) -> None:
        """Record a move request for the master. A move is between two different active
        service jobs with the same container (image, resources, security profile) and
        capacity group; the task must be a running task of the source job."""
        if source_job_id == target_job_id:
            raise ApiError(400, "source and target job are the same")
        source, target = self.get_job(source_job_id), self.get_job(target_job_id)
        for job in (source, target):
            require_owner(who, job, "move a task to or from")
            self._service_of(job)
        task = self.get_task(task_id)
        if task.jobId != source_job_id:
            raise ApiError(400, f"task {task_id} does not belong to job {source_job_id}")
        if task.state == TaskState.FINISHED:
            raise ApiError(409, f"task {task_id} is finished")
        a, b = source.jobDescriptor, target.jobDescriptor
        if (
            a.container.image != b.container.image
            or a.container.resources != b.container.resources
            or a.container.securityProfile != b.container.securityProfile
            or (a.capacityGroup or DEFAULT_CAPACITY_GROUP)
            != (b.capacityGroup or DEFAULT_CAPACITY_GROUP)
        ):
            raise ApiError(
                400,
                f"jobs {source_job_id} and {target_job_id} are not compatible: image, "
                "resources, security profile and capacity group must be the same",
            )
        assert b.service is not None
        if b.service.capacity.desired + 1 > b.service.capacity.max:
            raise ApiError(409, f"target job {target_job_id} is at its max size")
        self.store.add_move_request(
            MoveRequest(source_job_id, target_job_id, task_id, caller=caller)
        )
        self.coord.wake()
        self._log("move task", task_id, caller, reason, source=source_job_id, target=target_job_id)

    def kill_task(
        self,
        task_id: str,
        *,
        shrink: bool = False,
        prevent_min_size_update: bool = False,
        caller: str = "",
        reason: str = "",
        who: Principal = OPEN,
    ) -> None:
        task = self.get_task(task_id)
        if task.state == TaskState.FINISHED:
            raise ApiError(404, f"task {task_id} is not active (already finished)")
        self._require_task_owner(who, task, "kill a task of")
        # a retried kill (the client did not see the first answer) lowers desired once: a
        # task already being killed, or with a kill queued, has had its shrink; so has one
        # the job names in `shrunkFor`, written with the lowered size (a first try that
        # failed before its kill request was written)
        already = task.state == TaskState.KILL_INITIATED or any(
            r.task_id == task_id for r in self.store.list_kill_requests(task.jobId)
        )
        if shrink and not already:

            def lower(job: Job) -> Job | None:
                service = job.jobDescriptor.service
                if service is None:
                    raise ApiError(400, "shrink applies to service jobs only")
                cap = service.capacity
                if cap.desired <= 0 or task_id in (job.shrunkFor or ()):
                    return None
                if cap.desired - 1 < cap.min:
                    if prevent_min_size_update:
                        raise ApiError(400, f"shrinking would take desired below min ({cap.min})")
                    cap.min = cap.desired - 1
                cap.desired -= 1
                return job.shrunk_for(task_id)

            self.change_job(task.jobId, lower, who, "kill a task of")
        self.store.add_kill_request(
            KillRequest(
                job_id=task.jobId,
                task_id=task_id,
                shrink=shrink,
                reason=Reason.KILLED,
                message=f"killed by {caller or 'user'}",
            )
        )
        self.coord.wake()
        log.info(
            "kill task %s shrink=%s caller=%s reason=%s",
            task_id,
            shrink,
            caller or "-",
            reason or "-",
        )


def _awaitable(future: Future[T]) -> asyncio.Future[T]:
    """A store's future, awaitable on the running loop: its outcome is handed over with one
    call from the thread that completes it (lighter than asyncio.wrap_future, which also
    chains cancellation back to a write that cannot be taken back anyway)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()

    def hand_over(done: Future[T]) -> None:
        if not waiter.done():
            error = done.exception()
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(done.result())

    future.add_done_callback(lambda done: loop.call_soon_threadsafe(hand_over, done))
    return waiter


def enabled_message(enabled: bool, caller: str, reason: str) -> str:
    """The status-history line an enable or disable leaves: what, by whom, and why."""
    what = "job enabled" if enabled else "job disabled"
    why = f": {reason}" if reason else ""
    return f"{what} by {caller or 'user'}{why}"


def _check_attribute_change(upsert: dict[str, str], delete: list[str]) -> None:
    """A user's attributes to set and keys to delete: no empty or reserved keys."""
    errors = check_user_attributes(upsert) + check_user_attributes(
        dict.fromkeys(delete, ""), "keys"
    )
    if errors:
        raise ApiError(400, "invalid attributes", errors)


def _check_attribute_totals(attrs: dict[str, str]) -> None:
    """What a job or task would hold after a change, within the bounds on the whole set."""
    errors = check_attribute_totals(attrs)
    if errors:
        raise ApiError(400, "invalid attributes", errors)


def largest_host(coord: Coordinator) -> dict[str, float] | None:
    """Per resource, the most any one registered host offers (None with no host)."""
    agents = coord.agents()
    if not agents:
        return None
    out: dict[str, float] = {}
    for agent in agents:
        for name, value in agent.resources.items():
            out[name] = max(out.get(name, 0.0), float(value))
    return out


__all__ = [
    "InvalidRequest",
    "JobService",
    "JobServiceStore",
    "Limits",
    "PendingCounts",
    "largest_host",
]
