"""Task placement: a tiered queue feeding a pipeline of named filter and scorer plugins that
work on numpy vectors of hosts. `Scheduler.schedule` is one iteration of the leader loop."""

from titus.master.scheduler.capacity import CapacityLedger
from titus.master.scheduler.context import TaskContext
from titus.master.scheduler.engine import Scheduler
from titus.master.scheduler.filters import Filter, default_filters
from titus.master.scheduler.hosts import HostTable
from titus.master.scheduler.model import (
    RESOURCES,
    Assignment,
    CapacityGroup,
    HostEnis,
    HostState,
    PlacementSummary,
    SchedulerConfig,
    ScheduleResult,
    TaskRequest,
)
from titus.master.scheduler.queue import TieredQueue, queue_order
from titus.master.scheduler.scorers import Scorer, default_scorers
from titus.model.names import eni_set_key

__all__ = [
    "RESOURCES",
    "Assignment",
    "CapacityGroup",
    "CapacityLedger",
    "Filter",
    "HostEnis",
    "HostState",
    "HostTable",
    "PlacementSummary",
    "ScheduleResult",
    "Scheduler",
    "SchedulerConfig",
    "Scorer",
    "TaskContext",
    "TaskRequest",
    "TieredQueue",
    "default_filters",
    "default_scorers",
    "eni_set_key",
    "queue_order",
]
