"""Names every layer shares: taskContext keys, resource names, the default capacity group.

They are part of the wire contract (clients read `taskContext`, operators name capacity
groups), so each is written once, here, and every package imports it instead of typing
the literal again.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The capacity group of a job that names none.
DEFAULT_CAPACITY_GROUP = "DEFAULT"

#: The instance group of a host that names none.
DEFAULT_INSTANCE_GROUP = "default"

#: A host's resources as the scheduler counts them, in the job descriptor's units.
CPU = "cpu"
MEMORY_MB = "memoryMB"
DISK_MB = "diskMB"
NETWORK_MBPS = "networkMbps"
GPU = "gpu"
IP_SLOTS = "ipSlots"
RESOURCES: tuple[str, ...] = (CPU, MEMORY_MB, DISK_MB, NETWORK_MBPS, GPU, IP_SLOTS)


#: Prefix of the job and container attributes that speak to the agent (Titus's convention):
#: isolation choices, the health check, the metadata service's token rule.
AGENT_PARAMETER_PREFIX = "titusParameter.agent."


class AgentContext:
    """taskContext keys that say where a task runs (set by the agent or the executor)."""

    ID = "agent.id"
    HOST = "agent.host"
    ZONE = "agent.zone"
    REGION = "agent.region"
    INSTANCE_ID = "agent.instanceId"
    INSTANCE_TYPE = "agent.itype"
    LOGS_ADDRESS = "agent.logsAddress"


#: taskContext keys the platform keeps for itself and never shows a caller: where the API
#: reaches an executor's log endpoint is a control-plane address, not the task's business.
INTERNAL_CONTEXT_KEYS = frozenset({AgentContext.LOGS_ADDRESS})


class TaskContextKey:
    """taskContext keys about the task itself."""

    INDEX = "task.index"
    CONTAINER_ID = "task.containerId"
    CONTAINER_IP = "task.containerIp"
    NETWORK_INTERFACE_ID = "task.networkInterfaceId"
    NETWORK_INTERFACE_INDEX = "task.networkInterfaceIndex"
    EXIT_CODE = "task.exitCode"
    KILL_REASON = "task.killReason"
    ORIGINAL_ID = "task.originalId"
    RESUBMIT_OF = "task.resubmitOf"
    RESUBMIT_NUMBER = "task.resubmitNumber"
    SYSTEM_RESUBMIT_NUMBER = "task.systemResubmitNumber"
    RETRY_DELAY = "task.retryDelay"
    NOT_BEFORE = "task.notBefore"
    MOVED_FROM_JOB = "task.movedFromJob"
    #: The platform moved this task off its host (a drain); its replacement counts one
    #: more relocation in RELOCATIONS, which a budget's relocationLimit bounds.
    RELOCATED = "task.relocated"
    RELOCATIONS = "task.relocations"
    #: The container health check's verdict (starting, healthy, unhealthy) and its last output.
    HEALTH = "task.health"
    HEALTH_OUTPUT = "task.healthOutput"


class LogContextKey:
    """taskContext keys where the host says it uploads the task's output."""

    S3_BUCKET = "logs.s3.bucket"
    S3_KEY = "logs.s3.key"
    S3_REGION = "logs.s3.region"


#: taskContext keys a host may write in its reports besides `agent.*`: what it knows of the
#: container it runs. The rest (index, resubmits, kill reason, moves) is the master's: a host
#: that reports them is ignored for those keys, so it cannot rewrite a task's history.
HOST_TASK_CONTEXT_KEYS = frozenset(
    {
        TaskContextKey.CONTAINER_ID,
        TaskContextKey.CONTAINER_IP,
        TaskContextKey.NETWORK_INTERFACE_ID,
        TaskContextKey.NETWORK_INTERFACE_INDEX,
        TaskContextKey.EXIT_CODE,
        TaskContextKey.HEALTH,
        TaskContextKey.HEALTH_OUTPUT,
        LogContextKey.S3_BUCKET,
        LogContextKey.S3_KEY,
        LogContextKey.S3_REGION,
    }
)
HOST_CONTEXT_PREFIX = "agent."


def eni_set_key(groups: Iterable[str]) -> str:
    """One key per security-group set, whatever the order or repeats of its groups: what
    the agent tags an ENI with and what the scheduler counts ENIs by."""
    return ",".join(sorted(set(groups)))
