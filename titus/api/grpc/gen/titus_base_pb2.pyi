from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Day(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    Monday: _ClassVar[Day]
    Tuesday: _ClassVar[Day]
    Wednesday: _ClassVar[Day]
    Thursday: _ClassVar[Day]
    Friday: _ClassVar[Day]
    Saturday: _ClassVar[Day]
    Sunday: _ClassVar[Day]
Monday: Day
Tuesday: Day
Wednesday: Day
Thursday: Day
Friday: Day
Saturday: Day
Sunday: Day

class Page(_message.Message):
    __slots__ = ("pageNumber", "pageSize", "cursor")
    PAGENUMBER_FIELD_NUMBER: _ClassVar[int]
    PAGESIZE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    pageNumber: int
    pageSize: int
    cursor: str
    def __init__(self, pageNumber: _Optional[int] = ..., pageSize: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class Pagination(_message.Message):
    __slots__ = ("currentPage", "hasMore", "totalPages", "totalItems", "cursor", "cursorPosition")
    CURRENTPAGE_FIELD_NUMBER: _ClassVar[int]
    HASMORE_FIELD_NUMBER: _ClassVar[int]
    TOTALPAGES_FIELD_NUMBER: _ClassVar[int]
    TOTALITEMS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    CURSORPOSITION_FIELD_NUMBER: _ClassVar[int]
    currentPage: Page
    hasMore: bool
    totalPages: int
    totalItems: int
    cursor: str
    cursorPosition: int
    def __init__(self, currentPage: _Optional[_Union[Page, _Mapping]] = ..., hasMore: _Optional[bool] = ..., totalPages: _Optional[int] = ..., totalItems: _Optional[int] = ..., cursor: _Optional[str] = ..., cursorPosition: _Optional[int] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("immediate", "delayed", "exponentialBackOff")
    class Immediate(_message.Message):
        __slots__ = ("retries",)
        RETRIES_FIELD_NUMBER: _ClassVar[int]
        retries: int
        def __init__(self, retries: _Optional[int] = ...) -> None: ...
    class Delayed(_message.Message):
        __slots__ = ("initialDelayMs", "delayMs", "retries")
        INITIALDELAYMS_FIELD_NUMBER: _ClassVar[int]
        DELAYMS_FIELD_NUMBER: _ClassVar[int]
        RETRIES_FIELD_NUMBER: _ClassVar[int]
        initialDelayMs: int
        delayMs: int
        retries: int
        def __init__(self, initialDelayMs: _Optional[int] = ..., delayMs: _Optional[int] = ..., retries: _Optional[int] = ...) -> None: ...
    class ExponentialBackOff(_message.Message):
        __slots__ = ("initialDelayMs", "maxDelayIntervalMs", "retries")
        INITIALDELAYMS_FIELD_NUMBER: _ClassVar[int]
        MAXDELAYINTERVALMS_FIELD_NUMBER: _ClassVar[int]
        RETRIES_FIELD_NUMBER: _ClassVar[int]
        initialDelayMs: int
        maxDelayIntervalMs: int
        retries: int
        def __init__(self, initialDelayMs: _Optional[int] = ..., maxDelayIntervalMs: _Optional[int] = ..., retries: _Optional[int] = ...) -> None: ...
    IMMEDIATE_FIELD_NUMBER: _ClassVar[int]
    DELAYED_FIELD_NUMBER: _ClassVar[int]
    EXPONENTIALBACKOFF_FIELD_NUMBER: _ClassVar[int]
    immediate: RetryPolicy.Immediate
    delayed: RetryPolicy.Delayed
    exponentialBackOff: RetryPolicy.ExponentialBackOff
    def __init__(self, immediate: _Optional[_Union[RetryPolicy.Immediate, _Mapping]] = ..., delayed: _Optional[_Union[RetryPolicy.Delayed, _Mapping]] = ..., exponentialBackOff: _Optional[_Union[RetryPolicy.ExponentialBackOff, _Mapping]] = ...) -> None: ...

class TimeWindow(_message.Message):
    __slots__ = ("days", "hourlyTimeWindows", "timeZone")
    class HourlyTimeWindow(_message.Message):
        __slots__ = ("startHour", "endHour")
        STARTHOUR_FIELD_NUMBER: _ClassVar[int]
        ENDHOUR_FIELD_NUMBER: _ClassVar[int]
        startHour: int
        endHour: int
        def __init__(self, startHour: _Optional[int] = ..., endHour: _Optional[int] = ...) -> None: ...
    DAYS_FIELD_NUMBER: _ClassVar[int]
    HOURLYTIMEWINDOWS_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    days: _containers.RepeatedScalarFieldContainer[Day]
    hourlyTimeWindows: _containers.RepeatedCompositeFieldContainer[TimeWindow.HourlyTimeWindow]
    timeZone: str
    def __init__(self, days: _Optional[_Iterable[_Union[Day, str]]] = ..., hourlyTimeWindows: _Optional[_Iterable[_Union[TimeWindow.HourlyTimeWindow, _Mapping]]] = ..., timeZone: _Optional[str] = ...) -> None: ...

class ContainerHealthProvider(_message.Message):
    __slots__ = ("name", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class KeepAliveRequest(_message.Message):
    __slots__ = ("requestId", "timestamp")
    REQUESTID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    requestId: int
    timestamp: int
    def __init__(self, requestId: _Optional[int] = ..., timestamp: _Optional[int] = ...) -> None: ...

class KeepAliveResponse(_message.Message):
    __slots__ = ("request", "timestamp")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    request: KeepAliveRequest
    timestamp: int
    def __init__(self, request: _Optional[_Union[KeepAliveRequest, _Mapping]] = ..., timestamp: _Optional[int] = ...) -> None: ...
