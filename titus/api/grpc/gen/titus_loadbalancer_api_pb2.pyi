from google.protobuf import empty_pb2 as _empty_pb2
from . import titus_job_api_pb2 as _titus_job_api_pb2
from . import titus_base_pb2 as _titus_base_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoadBalancerId(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class AddLoadBalancerRequest(_message.Message):
    __slots__ = ("jobId", "loadBalancerId")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    LOADBALANCERID_FIELD_NUMBER: _ClassVar[int]
    jobId: str
    loadBalancerId: LoadBalancerId
    def __init__(self, jobId: _Optional[str] = ..., loadBalancerId: _Optional[_Union[LoadBalancerId, _Mapping]] = ...) -> None: ...

class RemoveLoadBalancerRequest(_message.Message):
    __slots__ = ("jobId", "loadBalancerId")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    LOADBALANCERID_FIELD_NUMBER: _ClassVar[int]
    jobId: str
    loadBalancerId: LoadBalancerId
    def __init__(self, jobId: _Optional[str] = ..., loadBalancerId: _Optional[_Union[LoadBalancerId, _Mapping]] = ...) -> None: ...

class GetAllLoadBalancersRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _titus_base_pb2.Page
    def __init__(self, page: _Optional[_Union[_titus_base_pb2.Page, _Mapping]] = ...) -> None: ...

class GetJobLoadBalancersResult(_message.Message):
    __slots__ = ("jobId", "loadBalancers")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    LOADBALANCERS_FIELD_NUMBER: _ClassVar[int]
    jobId: str
    loadBalancers: _containers.RepeatedCompositeFieldContainer[LoadBalancerId]
    def __init__(self, jobId: _Optional[str] = ..., loadBalancers: _Optional[_Iterable[_Union[LoadBalancerId, _Mapping]]] = ...) -> None: ...

class GetAllLoadBalancersResult(_message.Message):
    __slots__ = ("jobLoadBalancers", "pagination")
    JOBLOADBALANCERS_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    jobLoadBalancers: _containers.RepeatedCompositeFieldContainer[GetJobLoadBalancersResult]
    pagination: _titus_base_pb2.Pagination
    def __init__(self, jobLoadBalancers: _Optional[_Iterable[_Union[GetJobLoadBalancersResult, _Mapping]]] = ..., pagination: _Optional[_Union[_titus_base_pb2.Pagination, _Mapping]] = ...) -> None: ...
