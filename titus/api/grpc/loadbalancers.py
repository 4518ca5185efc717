"""com.netflix.titus.LoadBalancerService over the same service layer as REST
(titus/api/loadbalancers.py), through the same gate and refusals as the job service."""

from __future__ import annotations

from google.protobuf import empty_pb2

from titus.api.auth import Principal
from titus.api.grpc.gate import Caller
from titus.api.grpc.gen import titus_base_pb2 as base
from titus.api.grpc.gen import titus_job_api_pb2 as jobs_pb
from titus.api.grpc.gen import titus_loadbalancer_api_pb2 as pb
from titus.api.grpc.gen import titus_loadbalancer_api_pb2_grpc as pb_grpc
from titus.api.grpc.service import Context, JobManagement
from titus.api.loadbalancers import LoadBalancerService, held_page_size, job_entry
from titus.api.view import ActiveView

EMPTY = empty_pb2.Empty()
DEFAULT_PAGE = 100


def _result(entry: dict[str, object]) -> pb.GetJobLoadBalancersResult:
    ids = entry["loadBalancers"]
    assert isinstance(ids, list)
    return pb.GetJobLoadBalancersResult(
        jobId=str(entry["jobId"]), loadBalancers=[pb.LoadBalancerId(id=i["id"]) for i in ids]
    )


class LoadBalancers(pb_grpc.LoadBalancerServiceServicer):
    def __init__(self, service: LoadBalancerService, view: ActiveView, calls: JobManagement):
        self.service = service
        self.view = view
        self.calls = calls  # the job service's gate, principals and refusals

    async def GetJobLoadBalancers(
        self, request: jobs_pb.JobId, context: Context
    ) -> pb.GetJobLoadBalancersResult:
        async def work(caller: Caller, who: Principal) -> pb.GetJobLoadBalancersResult:
            return _result(await self.calls.run(self.service.of_job, request.id))

        return await self.calls.call("GetJobLoadBalancers", context, work)

    async def GetAllLoadBalancers(
        self, request: pb.GetAllLoadBalancersRequest, context: Context
    ) -> pb.GetAllLoadBalancersResult:
        async def work(caller: Caller, who: Principal) -> pb.GetAllLoadBalancersResult:
            size = held_page_size(request.page.pageSize or DEFAULT_PAGE)
            number = max(0, request.page.pageNumber)
            page, total = self.service.page(self.view, size, number)
            results = [_result(job_entry(j)) for j in page]
            pagination = base.Pagination(
                currentPage=base.Page(pageNumber=number, pageSize=size),
                hasMore=(number + 1) * size < total,
                totalPages=(total + size - 1) // size,
                totalItems=total,
            )
            return pb.GetAllLoadBalancersResult(jobLoadBalancers=results, pagination=pagination)

        return await self.calls.call("GetAllLoadBalancers", context, work)

    async def AddLoadBalancer(
        self, request: pb.AddLoadBalancerRequest, context: Context
    ) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            arn = request.loadBalancerId.id
            await self.calls.run(self.service.associate, request.jobId, arn, who)
            return EMPTY

        return await self.calls.call("AddLoadBalancer", context, work)

    async def RemoveLoadBalancer(
        self, request: pb.RemoveLoadBalancerRequest, context: Context
    ) -> empty_pb2.Empty:
        async def work(caller: Caller, who: Principal) -> empty_pb2.Empty:
            arn = request.loadBalancerId.id
            await self.calls.run(self.service.dissociate, request.jobId, arn, who)
            return EMPTY

        return await self.calls.call("RemoveLoadBalancer", context, work)
