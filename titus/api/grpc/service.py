"""com.netflix.titus.JobManagementService over the API's one service layer.

Every method does what the REST route for the same change does: it passes the gate
(auth, the shared rate limits), turns the message into the JSON or model the service
layer takes, and calls the same JobService method, in a worker thread because the store
blocks. Validation, defaults and business rules all live in the service layer; a refusal
comes back as the gRPC status of errors.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeAlias, TypeVar

import grpc
from google.protobuf import empty_pb2
from pydantic import BaseModel, ValidationError

from titus.api.auth import Access, Principal
from titus.api.creates import INLINE_PARSE_BYTES
from titus.api.errors import ApiError
from titus.api.grpc import listing
from titus.api.grpc.convert import job_message, optional_capacity, task_message, to_json
from titus.api.grpc.errors import Refusal, refusal_of
from titus.api.grpc.gate import ROUTES, Caller, CallGate, Refused, _text
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.grpc.gen import titus_job_api_pb2_grpc as pb_grpc
from titus.api.grpc.observe import KeepAlives, job_note, observe
from titus.api.observe import OBSERVE_FILTERS, Hub
from titus.api.policy import job_doc
from titus.api.query import Criteria
from titus.api.service import JobService
from titus.api.view import ActiveView
from titus.model.job import Capacity, DisruptionBudget, ServiceJobProcesses
from titus.model.states import JobState
from titus.model.validation import FieldError, InvalidRequest, from_pydantic

log = logging.getLogger("titus.api.grpc")

T = TypeVar("T")
Context: TypeAlias = grpc.aio.ServicerContext
Note: TypeAlias = pb.JobChangeNotification
EMPTY = empty_pb2.Empty()
#: The longest idempotency key a create may carry (as over REST).
MAX_IDEMPOTENCY_KEY = 200


def parse(model: type[BaseModel], data: Any, what: str) -> Any:
    """A model from a message's JSON, refused field by field as REST refuses a body."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(from_pydantic(exc), f"invalid {what}") from None


def keys_to_delete(keys: list[str]) -> list[str]:
    if not keys:
        raise ApiError(
            400, "give the attribute keys to delete", [FieldError("keys", "must not be empty")]
        )
    return keys


async def _read_keep_alives(
    requests: AsyncIterator[pb.ObserveJobsWithKeepAliveRequest], asks: KeepAlives
) -> None:
    """Hand each keep-alive the client sends to the stream; other messages (a second
    query) are ignored, and the client closing its side leaves the stream open."""
    try:
        async for request in requests:
            if request.WhichOneof("Kind") == "keepAliveRequest":
                asks.add(request.keepAliveRequest)
    except Exception:  # noqa: BLE001 - the call ending is the stream's concern, not ours
        log.debug("keep-alive reader ended", exc_info=True)


class JobManagement(pb_grpc.JobManagementServiceServicer):
    def __init__(
        self,
        service: JobService,
        view: ActiveView,
        hub: Hub,
        gate: CallGate,
        access: Access | None = None,
    ):
        """`access` tells callers apart as REST does (by default, with the gate's tokens
        and reads needing one)."""
        self.service = service
        self.view = view
        self.hub = hub
        self.gate = gate
        self.access = access or Access(gate.auth)

    def _principal(self, rpc: str, context: Context) -> Principal:
        """The call's principal, refused (UNAUTHENTICATED) where a token is needed."""
        metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ())}
        who = self.access.principal(
            _text(metadata.get("authorization")), _text(metadata.get("x-titus-callerid"))
        )
        self.access.check(who, ROUTES[rpc][0] == "GET")
        return who

    def _caller_key(self, who: Principal, context: Context) -> str:
        """What the caller's observe streams are counted by (as auth.caller_key)."""
        if who.authenticated:
            return f"principal:{who.name}"
        peer = context.peer() or ""
        host = peer.split(":")[1] if peer.count(":") >= 2 else peer
        return f"address:{host or 'unknown'}"

    # ---- plumbing -------------------------------------------------------------------
    async def call(
        self,
        rpc: str,
        context: Context,
        work: Callable[[Caller, Principal], Awaitable[T]],
        conflict: grpc.StatusCode | None = None,
    ) -> T:
        """Admit the call, run `work`, and end the call with a status if either refuses."""
        try:
            caller = await self.gate.admit(rpc, context)
            return await work(caller, self._principal(rpc, context))
        except Exception as exc:  # noqa: BLE001 - every refusal becomes a status
            refusal = self._refusal(rpc, exc, conflict)
        await self._abort(context, refusal)

    def _refusal(self, rpc: str, exc: Exception, conflict: grpc.StatusCode | None) -> Refusal:
        if isinstance(exc, Refused):
            return exc.refusal
        refusal = refusal_of(exc, conflict)
        if refusal is None:
            log.exception("%s failed", rpc, exc_info=exc)
            refusal = Refusal(grpc.StatusCode.INTERNAL, f"{rpc} failed: {exc}")
        return refusal

    async def _abort(self, context: Context, refusal: Refusal) -> NoReturn:
        await context.abort_with_status(refusal.status())
        raise AssertionError("unreachable: abort ends the call")

    async def _stream(
        self,
        rpc: str,
        context: Context,
        notes: Callable[[Principal, str], AsyncIterator[Note]],
    ) -> AsyncIterator[Note]:
        try:
            await self.gate.admit(rpc, context)
            who = self._principal(rpc, context)
            async for note in notes(who, self._caller_key(who, context)):
                yield note
            return
        except Exception as exc:  # noqa: BLE001 - every refusal becomes a status
            refusal = self._refusal(rpc, exc, None)
        await self._abort(context, refusal)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]:
        return asyncio.to_thread(fn, *args, **kwargs)

    # ---- jobs -----------------------------------------------------------------------
    async def CreateJob(self, request: pb.JobDescriptor, context: Context) -> pb.JobId:
        async def work(caller: Caller, who: Principal) -> pb.JobId:
            key = caller.idempotency_key
            if len(key) > MAX_IDEMPOTENCY_KEY:
                raise ApiError(
                    400,
                    f"idempotency-key is longer than {MAX_IDEMPOTENCY_KEY} characters",
                    [FieldError("idempotency-key", "too long")],
                )
            body = to_json(request)
            job = await self.service.create_job_async(
                body, caller.id, caller.reason, key, offload=request.ByteSize() > INLINE_PARSE_BYTES
            )
            return pb.JobId(id=job.id)

        return await self.call("CreateJob", context, work, grpc.StatusCode.ALREADY_EXISTS)

    async def FindJob(self, request: pb.JobId, context: Context) -> pb.Job:
        async def work(caller: Caller, who: Principal) -> pb.Job:
            doc = await self.run(self.service.read_job, request.id, who)
            return job_message(doc)

        return await self.call("FindJob", context, work)

    async def FindJobs(self, request: pb.JobQuery, context: Context) -> pb.JobQueryResult:
        async def work(caller: Caller, who: Principal) -> pb.JobQueryResult:
            return await listing.find_jobs(self.view, request, who)

        return await self.call("FindJobs", context, work)

    async def KillJob(self, request: pb.JobId, context: Context) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            await self.run(self.service.kill_job, request.id, caller.id, caller.reason, who)
            return EMPTY

        return await self.call("KillJob", context, work)

    async def UpdateJobCapacity(
        self, request: pb.JobCapacityUpdate, context: Context
    ) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            capacity = parse(Capacity, to_json(request.Capacity), "capacity")
            await self.view.refresh()
            await self.run(
                self.service.resize, request.jobId, capacity, caller.id, caller.reason, who=who
            )
            return EMPTY

        return await self.call("UpdateJobCapacity", context, work)

    async def UpdateJobCapacityWithOptionalAttributes(
        self, request: pb.JobCapacityUpdateWithOptionalAttributes, context: Context
    ) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            partial = optional_capacity(request.jobCapacityWithOptionalAttributes)
            await self.run(
                self.service.resize,
                request.jobId,
                Capacity(),
                caller.id,
                caller.reason,
                partial=partial,
                who=who,
            )
            return EMPTY

        return await self.call("UpdateJobCapacityWithOptionalAttributes", context, work)

    async def UpdateJobStatus(
        self, request: pb.JobStatusUpdate, context: Context
    ) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            await self.run(
                self.service.set_enabled,
                request.id,
                request.enableStatus,
                caller.id,
                caller.reason,
                who,
            )
            return EMPTY

        rpc = "UpdateJobStatus" if request.enableStatus else "UpdateJobStatus/disable"
        return await self.call(rpc, context, work)

    async def UpdateJobProcesses(
        self, request: pb.JobProcessesUpdate, context: Context
    ) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            processes = parse(
                ServiceJobProcesses, to_json(request.serviceJobProcesses), "job processes"
            )
            await self.run(
                self.service.set_processes, request.jobId, processes, caller.id, caller.reason, who
            )
            return EMPTY

        return await self.call("UpdateJobProcesses", context, work)

    async def UpdateJobDisruptionBudget(
        self, request: pb.JobDisruptionBudgetUpdate, context: Context
    ) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            budget = parse(DisruptionBudget, to_json(request.disruptionBudget), "disruption budget")
            await self.run(
                self.service.set_disruption_budget,
                request.jobId,
                budget,
                caller.id,
                caller.reason,
                who,
            )
            return EMPTY

        return await self.call("UpdateJobDisruptionBudget", context, work)

    async def _change_attributes(
        self,
        rpc: str,
        context: Context,
        update: Callable[..., Any],
        ident: str,
        upsert: dict[str, str],
        delete: list[str] | None,
    ) -> empty_pb2.Empty:
        """One job's or task's attributes set (`delete` None) or deleted (`delete` the keys,
        which must not be empty): the four attribute calls alike."""

        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            keys = keys_to_delete(delete) if delete is not None else []
            await self.run(update, ident, upsert, keys, caller.id, caller.reason, who)
            return EMPTY

        return await self.call(rpc, context, work)

    async def UpdateJobAttributes(
        self, request: pb.JobAttributesUpdate, context: Context
    ) -> empty_pb2.Empty:
        return await self._change_attributes(
            "UpdateJobAttributes",
            context,
            self.service.update_job_attributes,
            request.jobId,
            dict(request.attributes),
            None,
        )

    async def DeleteJobAttributes(
        self, request: pb.JobAttributesDeleteRequest, context: Context
    ) -> empty_pb2.Empty:
        return await self._change_attributes(
            "DeleteJobAttributes",
            context,
            self.service.update_job_attributes,
            request.jobId,
            {},
            list(request.keys),
        )

    # ---- observe --------------------------------------------------------------------
    # grpc.aio tells a streaming handler by its being an async generator function
    async def ObserveJobs(
        self, request: pb.ObserveJobsQuery, context: Context
    ) -> AsyncIterator[pb.JobChangeNotification]:
        def notes(who: Principal, key: str) -> AsyncIterator[pb.JobChangeNotification]:
            criteria = Criteria.parse(dict(request.filteringCriteria), OBSERVE_FILTERS)
            return observe(
                self.hub,
                criteria,
                list(request.jobFields),
                list(request.taskFields),
                who=who,
                key=key,
            )

        async for note in self._stream("ObserveJobs", context, notes):
            yield note

    async def ObserveJobsWithKeepAlive(
        self, requests: AsyncIterator[pb.ObserveJobsWithKeepAliveRequest], context: Context
    ) -> AsyncIterator[pb.JobChangeNotification]:
        async def notes(who: Principal, key: str) -> AsyncIterator[pb.JobChangeNotification]:
            first = await anext(requests, None)
            if first is None or first.WhichOneof("Kind") != "query":
                raise Refused(
                    Refusal(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "the first message of ObserveJobsWithKeepAlive carries the query",
                    )
                )
            query = first.query
            criteria = Criteria.parse(dict(query.filteringCriteria), OBSERVE_FILTERS)
            asks = KeepAlives()
            reader = asyncio.create_task(_read_keep_alives(requests, asks))
            try:
                async for note in observe(
                    self.hub,
                    criteria,
                    list(query.jobFields),
                    list(query.taskFields),
                    who=who,
                    key=key,
                    asks=asks,
                ):
                    yield note
            finally:
                reader.cancel()

        async for note in self._stream("ObserveJobsWithKeepAlive", context, notes):
            yield note

    async def ObserveJob(
        self, request: pb.JobId, context: Context
    ) -> AsyncIterator[pb.JobChangeNotification]:
        async def notes(who: Principal, key: str) -> AsyncIterator[pb.JobChangeNotification]:
            job = await self.run(self.service.get_job, request.id)
            if job.status.state == JobState.FINISHED:  # nothing more will happen to it
                yield job_note(job_doc(who, job.api_json()), [])
                yield pb.JobChangeNotification(snapshotEnd=pb.JobChangeNotification.SnapshotEnd())
                return
            criteria = Criteria.parse({"jobIds": request.id}, OBSERVE_FILTERS)
            async for note in observe(
                self.hub, criteria, until_job_ends=request.id, who=who, key=key
            ):
                yield note

        async for note in self._stream("ObserveJob", context, notes):
            yield note

    # ---- tasks ----------------------------------------------------------------------
    async def FindTask(self, request: pb.TaskId, context: Context) -> pb.Task:
        async def work(caller: Caller, who: Principal) -> pb.Task:
            task = await self.run(self.service.get_task, request.id)
            return task_message(task.api_json())

        return await self.call("FindTask", context, work)

    async def FindTasks(self, request: pb.TaskQuery, context: Context) -> pb.TaskQueryResult:
        async def work(caller: Caller, who: Principal) -> pb.TaskQueryResult:
            return await listing.find_tasks(self.view, self.service, request)

        return await self.call("FindTasks", context, work)

    async def KillTask(self, request: pb.TaskKillRequest, context: Context) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            await self.run(
                self.service.kill_task,
                request.taskId,
                shrink=request.shrink,
                prevent_min_size_update=request.preventMinSizeUpdate,
                caller=caller.id,
                reason=caller.reason,
                who=who,
            )
            return EMPTY

        return await self.call("KillTask", context, work)

    async def UpdateTaskAttributes(
        self, request: pb.TaskAttributesUpdate, context: Context
    ) -> empty_pb2.Empty:
        return await self._change_attributes(
            "UpdateTaskAttributes",
            context,
            self.service.update_task_attributes,
            request.taskId,
            dict(request.attributes),
            None,
        )

    async def DeleteTaskAttributes(
        self, request: pb.TaskAttributesDeleteRequest, context: Context
    ) -> empty_pb2.Empty:
        return await self._change_attributes(
            "DeleteTaskAttributes",
            context,
            self.service.update_task_attributes,
            request.taskId,
            {},
            list(request.keys),
        )

    async def MoveTask(self, request: pb.TaskMoveRequest, context: Context) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            await self.run(
                self.service.move_task,
                request.sourceJobId,
                request.targetJobId,
                request.taskId,
                caller.id,
                caller.reason,
                who,
            )
            return EMPTY

        return await self.call("MoveTask", context, work)
