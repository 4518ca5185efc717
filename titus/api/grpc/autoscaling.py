"""com.netflix.titus.AutoScalingService over the same service layer as REST
(titus/api/autoscaling.py), through the same gate and refusals as the job service.

Messages become the protobuf-JSON REST takes and answers are made from the JSON REST
sends, so both transports check and say the same things."""

from __future__ import annotations

from typing import Any

from google.protobuf import empty_pb2, json_format

from titus.api.auth import Principal
from titus.api.autoscaling import AutoScalingService, results
from titus.api.grpc.convert import to_json
from titus.api.grpc.gate import Caller
from titus.api.grpc.gen import titus_autoscale_api_pb2 as pb
from titus.api.grpc.gen import titus_autoscale_api_pb2_grpc as pb_grpc
from titus.api.grpc.gen import titus_job_api_pb2 as jobs_pb
from titus.api.grpc.service import Context, JobManagement

EMPTY = empty_pb2.Empty()


def _result(doc: dict[str, Any]) -> pb.GetPolicyResult:
    return json_format.ParseDict(doc, pb.GetPolicyResult(), ignore_unknown_fields=True)


class AutoScaling(pb_grpc.AutoScalingServiceServicer):
    def __init__(self, service: AutoScalingService, calls: JobManagement):
        self.service = service
        self.calls = calls  # the job service's gate, principals and refusals

    async def GetAllScalingPolicies(
        self, request: empty_pb2.Empty, context: Context
    ) -> pb.GetPolicyResult:
        async def work(caller: Caller, who: Principal) -> pb.GetPolicyResult:
            return _result(results(await self.calls.run(self.service.all_policies)))

        return await self.calls.call("GetAllScalingPolicies", context, work)

    async def GetScalingPolicy(
        self, request: pb.ScalingPolicyID, context: Context
    ) -> pb.GetPolicyResult:
        async def work(caller: Caller, who: Principal) -> pb.GetPolicyResult:
            record = await self.calls.run(self.service.get_policy, request.id)
            return _result(results([record]))

        return await self.calls.call("GetScalingPolicy", context, work)

    async def GetJobScalingPolicies(
        self, request: jobs_pb.JobId, context: Context
    ) -> pb.GetPolicyResult:
        async def work(caller: Caller, who: Principal) -> pb.GetPolicyResult:
            return _result(results(await self.calls.run(self.service.job_policies, request.id)))

        return await self.calls.call("GetJobScalingPolicies", context, work)

    async def SetAutoScalingPolicy(
        self, request: pb.PutPolicyRequest, context: Context
    ) -> pb.ScalingPolicyID:
        async def work(caller: Caller, who: Principal) -> pb.ScalingPolicyID:
            record = await self.calls.run(self.service.set_policy, to_json(request), who)
            return pb.ScalingPolicyID(id=record.id)

        return await self.calls.call("SetAutoScalingPolicy", context, work)

    async def UpdateAutoScalingPolicy(
        self, request: pb.UpdatePolicyRequest, context: Context
    ) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            await self.calls.run(self.service.update_policy, to_json(request), who)
            return EMPTY

        return await self.calls.call("UpdateAutoScalingPolicy", context, work)

    async def DeleteAutoScalingPolicy(
        self, request: pb.DeletePolicyRequest, context: Context
    ) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            await self.calls.run(self.service.delete_policy, request.id.id, who)
            return EMPTY

        return await self.calls.call("DeleteAutoScalingPolicy", context, work)
