"""One settings object for every component, from `TITUS_*` environment variables and an
optional file named by `TITUS_CONFIG` (JSON or `KEY=value` lines).

Every field here is documented in README.md with its default. Components take the
settings object, never read the environment themselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from titus.model.identity import AgentCredentials


class RateBucket(BaseModel):
    """One token bucket of the API's admission control.

    A request is charged to the first bucket (lowest `order`) whose `caller` pattern matches
    the caller id and whose `endpoint` pattern matches `"<METHOD> <path>"` (both are
    shell-style globs, e.g. `"POST /api/v3/jobs"`, `"GET /api/*"`). Each caller has its own
    bucket of that name unless `shared` is true, in which case all matching callers draw
    from one. A bucket holds at most `capacity` tokens and gains `refill_per_sec` a second.
    """

    name: str
    order: int = 0
    caller: str = "*"
    endpoint: str = "*"
    capacity: float = 100.0
    refill_per_sec: float = 50.0
    shared: bool = False


DEFAULT_RATE_BUCKETS = [
    RateBucket(
        name="job-create", order=10, endpoint="POST /api/v3/jobs", capacity=100, refill_per_sec=50
    ),
    RateBucket(
        name="observe",
        order=20,
        endpoint="GET /api/v3/jobs/observe",
        capacity=10,
        refill_per_sec=1,
    ),
    RateBucket(name="reads", order=30, endpoint="GET /api/*", capacity=600, refill_per_sec=300),
    RateBucket(name="mutations", order=40, endpoint="* /api/*", capacity=200, refill_per_sec=100),
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TITUS_", extra="ignore")

    def agent_credentials(self, agent_id: str) -> AgentCredentials | None:
        """This host's credentials as agent `agent_id`: from agent_credentials_file, else
        derived from the platform's secret (one process, or a host trusted with it), else
        None (no signing). A file written for another agent is refused by name."""
        if self.agent_credentials_file:
            path = self.agent_credentials_file
            try:
                text = Path(path).read_text()
            except OSError as e:
                raise ValueError(f"agent_credentials_file {path}: {e}") from None
            credentials = AgentCredentials.parse(text, f"agent_credentials_file {path}")
            if credentials.agent_id != agent_id:
                raise ValueError(
                    f"agent_credentials_file {path} is for agent {credentials.agent_id!r}, "
                    f"not this agent {agent_id!r} (agent_id)"
                )
            return credentials
        secret = self.shared_secret()
        return AgentCredentials.derive(secret, agent_id) if secret else None

    def shared_secret(self) -> bytes | None:
        """The platform's shared secret (cluster_secret, else the file cluster_secret_file),
        or None when neither is set. Too short a secret is refused by name."""
        value = self.cluster_secret
        if not value and self.cluster_secret_file:
            try:
                value = Path(self.cluster_secret_file).read_text().strip()
            except OSError as e:
                raise ValueError(f"cluster_secret_file {self.cluster_secret_file}: {e}") from None
        if not value:
            return None
        if len(value.encode()) < 16:
            raise ValueError("cluster_secret must be at least 16 characters")
        return value.encode()

    # where things live
    data_dir: str = Field("/var/lib/titus", description="State directory (store, logs).")
    store: str = Field("", description="Store URL; empty means sqlite:///<data_dir>/titus.db.")

    # api
    api_host: str = Field("127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(7001, description="Port of the REST API (Titus served HTTP on 7001).")
    grpc_host: str = Field("127.0.0.1", description="Address the gRPC API listens on.")
    grpc_port: int = Field(
        7104,
        description="Port of the gRPC API (Titus's JobManagementService, next to REST); "
        "0 picks a free port, -1 serves no gRPC.",
    )
    max_body_bytes: int = Field(1_048_576, description="Largest request body (413 beyond).")
    rate_limit_buckets: list[RateBucket] = Field(
        default_factory=lambda: list(DEFAULT_RATE_BUCKETS),
        description="Token buckets per caller and endpoint (see RateBucket); default: "
        "job-create 100 burst / 50 per s, observe 10 / 1, reads 600 / 300, mutations "
        "200 / 100, each per caller. An empty list turns rate limiting off.",
    )
    api_in_flight_per_caller: int = Field(
        8,
        description="Requests of one caller (its token, else its address) the API works on "
        "at once; more wait their turn, so a caller on many connections cannot crowd out "
        "the others. A stream counts until its answer starts. 0: no bound.",
    )
    max_active_jobs: int = Field(20_000, description="Active jobs at most; 429 beyond.")
    max_active_tasks: int = Field(
        200_000,
        description="Tasks that active jobs may want at most (batch size or service desired "
        "summed over active jobs); a create or resize beyond it is refused with 429.",
    )
    auth_tokens_file: str = Field(
        "",
        description='JSON file mapping bearer tokens to callers: {"<token>": {"callerId": '
        '"alice", "roles": ["admin"], "email": "a@x.com", "teams": ["t@x.com"]}} (roles: '
        "user, the default, or admin; a user changes the jobs it created or its teams own). "
        "Empty (default): no authentication.",
    )
    auth_reads: bool = Field(
        True,
        description="With auth_tokens_file set, reads need a valid token too (401 without); "
        "false leaves reads open to anyone who reaches the API.",
    )
    idempotency_ttl_sec: float = Field(
        86_400.0, description="How long an Idempotency-Key is remembered (default 24 h)."
    )
    observe_queue_size: int = Field(
        1_000, description="Events buffered per observe client before it is dropped as slow."
    )
    observe_max_per_caller: int = Field(
        256,
        description="Observe streams (REST and gRPC) one caller may hold at once, counted by "
        "its token's principal, else its address; 429 beyond. 0: no bound.",
    )
    api_max_log_streams: int = Field(
        64,
        description="Task output streams the API proxies from hosts at once (all callers); "
        "429 beyond. 0: no bound.",
    )
    api_max_log_streams_per_caller: int = Field(
        4,
        description="Task output streams one caller may hold open through the API at once, "
        "counted by its token's principal, else its address; 429 beyond. 0: no bound.",
    )
    agent_max_log_follows: int = Field(
        16,
        description="Log follows an agent (or a Mesos executor) serves at once; 429 beyond, "
        "so followers cannot take the threads launches and kills need.",
    )
    agent_max_report_polls: int = Field(
        4,
        description="Report long polls an agent serves at once (the leader holds one); 503 beyond.",
    )
    observe_history: int = Field(
        10_000, description="Recent events kept for clients resuming with Last-Event-ID."
    )
    observe_keepalive_sec: float = Field(
        15.0, description="Seconds between keep-alive comments on an idle observe stream."
    )
    change_poll_sec: float = Field(
        0.2, description="How often the API reads the store's change feed (job and task view)."
    )
    # resource bounds of one container (Titus's defaults)
    cpu_min: float = Field(
        0.01,
        description="Smallest cpu a container gets; a job asking less is raised to it "
        "(default 0.01).",
    )
    cpu_max: float = Field(96.0, description="Largest cpu of a container (default 96).")
    memory_mb_min: int = Field(
        512,
        description="Smallest memoryMB a container gets; a job asking less is raised to it "
        "(default 512; `titus local`: 32).",
    )
    memory_mb_max: int = Field(1_152_000, description="Largest memoryMB (default 1,152,000).")
    disk_mb_min: int = Field(
        10_000,
        description="Smallest diskMB a container gets; a job asking less is raised to it "
        "(default 10,000; `titus local`: 32).",
    )
    disk_mb_max: int = Field(1_550_000, description="Largest diskMB (default 1,550,000).")
    network_mbps_min: int = Field(
        128,
        description="Smallest networkMbps a container gets; a job asking less is raised to "
        "it (default 128).",
    )
    network_mbps_max: int = Field(400_000, description="Largest networkMbps (default 400,000).")
    gpu_max: int = Field(16, description="Most GPUs of a container (default 16).")

    # master
    master_loop_interval_sec: float = Field(
        0.5,
        description=(
            "Longest sleep of the leader loop between iterations; writes and host reports "
            "wake it sooner."
        ),
    )
    master_id: str = Field(
        "",
        description="This master's id in the election; empty: master-<random>.",
    )
    agent_poll_wait_sec: float = Field(
        10.0,
        description="How long the master's long poll of an agent's task reports waits for news.",
    )
    agent_lost_after_sec: float = Field(
        30.0,
        description="An agent that answers no poll for this long has its tasks declared lost.",
    )
    kill_grace_sec: float = Field(
        10.0,
        description="Seconds between SIGTERM and SIGKILL when a task is killed.",
    )
    master_address: str = Field(
        "",
        description="Address this master publishes while it leads (for operators' tools); "
        "empty (default): none.",
    )
    master_sweep_period_sec: float = Field(
        30.0,
        description="Every active job's task counts are checked once per this period, a "
        "safety net behind change-driven reconciliation (default 30 s).",
    )
    system_backoff_initial_sec: float = Field(
        1.0,
        description="First system delay before retrying a task of a job whose tasks keep "
        "failing; doubles per failure in a row (default 1 s).",
    )
    system_backoff_max_sec: float = Field(
        30.0, description="Longest system retry delay of a failing job (default 30 s)."
    )
    stuck_launched_sec: float = Field(
        300.0, description="A task Launched longer than this is killed (default 5 min)."
    )
    stuck_start_initiated_batch_sec: float = Field(
        720.0,
        description="A batch task StartInitiated longer than this is killed (default 12 min).",
    )
    stuck_start_initiated_service_sec: float = Field(
        300.0,
        description="A service task StartInitiated longer than this is killed (default 5 min).",
    )
    stuck_kill_initiated_sec: float = Field(
        600.0,
        description="A task KillInitiated longer than this is given up as Finished with "
        "stuckInKillingState (default 10 min).",
    )
    stuck_kills_per_sec: float = Field(
        1.0, description="Stuck tasks killed per second at most, after the burst (default 1)."
    )
    stuck_kills_burst: float = Field(
        20.0, description="Stuck tasks that may be killed at once (default 20)."
    )
    migrate_at_once: int = Field(
        5,
        description="Service tasks on hosts of phased-out instance groups being moved at "
        "once (default 5).",
    )
    self_managed_migration_timeout_sec: float = Field(
        3600.0,
        description="How long the platform leaves moving a task off a phased-out host to "
        "the owner of a job with migrationPolicy selfManaged before it moves the task "
        "itself (a selfManaged budget's relocationTimeMs takes precedence; default 1 h).",
    )
    max_pending_per_group: int = Field(
        10_000,
        description="Accepted tasks waiting for placement per capacity group at most; the "
        "API refuses new work for a full group with 429 (default 10,000).",
    )
    master_metrics_port: int = Field(
        7201,
        description="Port of the master's Prometheus metrics (/metrics on 127.0.0.1 unless "
        "TITUS_MASTER_METRICS_HOST is set); 0 turns it off (default 7201).",
    )
    master_metrics_host: str = Field(
        "127.0.0.1", description="Address the master's metrics listen on (default 127.0.0.1)."
    )
    coord_session_timeout_sec: float = Field(
        10.0,
        description="ZooKeeper session timeout: how long a dead leader holds leadership "
        "before another master takes over (default 10 s).",
    )
    coord_auth: str = Field(
        "",
        description="ZooKeeper digest credentials 'user:password', the same for every "
        "process of the platform: the session authenticates with them and every node the "
        "platform makes is readable and writable with them alone. Empty: nodes are open "
        "to every client of the ensemble (default empty).",
    )
    # master: the Mesos cluster driver (`titus master --cluster mesos://host:5050`)
    cluster: str = Field(
        "",
        description="How the master reaches hosts: empty or 'direct' (agents registered in "
        "coordination), mesos://host:5050 or mesos+zk://zk1:2181/mesos (a Mesos framework).",
    )
    mesos_framework_name: str = Field("titus", description="Mesos framework name.")
    mesos_user: str = Field("root", description="User the Mesos framework runs tasks as.")
    mesos_role: str = Field("*", description="Mesos role the framework subscribes with.")
    mesos_failover_timeout_sec: float = Field(
        604_800.0,
        description="How long Mesos keeps the framework's tasks running without a connected "
        "leader (default one week); past it Mesos kills them all.",
    )
    mesos_refuse_sec: float = Field(
        5.0, description="Refuse time of declined offers and unused parts of accepted ones."
    )
    mesos_reconcile_interval_sec: float = Field(
        300.0, description="How often the framework reconciles implicitly (default 5 min)."
    )
    mesos_executor_command: str = Field(
        "",
        description="Shell command Mesos agents run as the Titus executor; empty (default): "
        "this interpreter with -m titus.agent.mesos_executor.",
    )

    # the platform's processes among themselves
    cluster_secret: str = Field(
        "",
        description="Secret shared by the platform's processes (at least 16 characters): "
        "the master and the API sign every call to an agent with it, and agents refuse "
        "calls that are unsigned, altered, replayed or from an older leader. Prefer "
        "cluster_secret_file. Empty (and no file): agents take unsigned calls and must "
        "listen on loopback; `titus local` makes a secret of its own (default empty).",
    )
    cluster_secret_file: str = Field(
        "", description="File holding cluster_secret on one line (keep it 0600; default empty)."
    )
    agent_credentials_file: str = Field(
        "",
        description="An agent host's own credentials (`titus agent-credentials <agent id>` "
        "writes them; keep the file 0600), instead of cluster_secret: the calls it obeys "
        "must be signed for it alone, and in ZooKeeper it may change only its own "
        "registration. Empty (default): derived from cluster_secret when that is set.",
    )
    # agent
    agent_id: str = Field("", description="This agent's id; empty: the host name.")
    agent_host: str = Field(
        "127.0.0.1",
        description="Address the agent's HTTP API listens on (and publishes, unless "
        "agent_advertise_host says otherwise).",
    )
    agent_advertise_host: str = Field(
        "",
        description="Address the agent publishes for the master to call (and a Mesos "
        "executor publishes for its task's log endpoint), when it is not the one it listens "
        "on (e.g. listening on 0.0.0.0, published as the host's private address); empty: "
        "agent_host.",
    )
    agent_port: int = Field(7101, description="Port of the agent's HTTP API.")
    agent_zone: str = Field(
        "zone-a",
        description="Availability zone this host reports (host attribute zone).",
    )
    agent_region: str = Field(
        "local",
        description="Region this host reports (host attribute region).",
    )
    agent_instance_type: str = Field(
        "local.large",
        description="Instance type this host reports (host attribute itype).",
    )
    agent_machine_group: str = Field(
        "default",
        description="Instance group this host belongs to (host attribute machineGroup); "
        "hosts of a phased-out group get no new tasks (default: default).",
    )
    agent_cpu: float = Field(
        0.0,
        description="CPUs this agent offers; 0: all cores of the machine.",
    )
    agent_memory_mb: int = Field(
        0,
        description="Memory this agent offers in MB; 0: 80% of the machine's memory.",
    )
    agent_disk_mb: int = Field(100_000, description="Disk this agent offers in MB.")
    agent_network_mbps: int = Field(
        10_000,
        description="Network bandwidth this agent offers in Mbps.",
    )
    docker_url: str = Field(
        "",
        description="Docker engine the agent runs tasks on (e.g. unix:///run/titus/docker.sock); "
        "empty: the environment's DOCKER_HOST. With neither the agent refuses to start: it "
        "never falls back to a default socket.",
    )
    log_dir: str = Field(
        "",
        description="Where task stdout/stderr files are kept; empty: <data_dir>/logs.",
    )
    finished_retention_sec: float = Field(
        3600.0,
        description=(
            "How long an agent keeps a finished task's report that the master has not acknowledged."
        ),
    )
    # agent: isolation
    agent_disk_enforcement: Literal["auto", "measure"] = Field(
        "auto",
        description="How an agent or Mesos executor enforces diskMB: `auto` uses the storage "
        "driver's quota where it has one (btrfs, zfs) and measures elsewhere; `measure` "
        "always measures each container's writable layer and kills a task over its quota.",
    )
    agent_disk_check_interval_sec: float = Field(
        30.0,
        description="How often an agent whose engine cannot enforce disk quotas measures "
        "each container's writable layer (default 30 s); a task over its diskMB is killed.",
    )
    # agent: task logs
    agent_log_rotate_bytes: int = Field(
        100 * 1024 * 1024,
        description="A task's stdout/stderr file is rotated when it reaches this size "
        "(default 100 MiB); rotated files are uploaded to S3.",
    )
    agent_log_s3_bucket: str = Field(
        "",
        description="S3 bucket for task logs; empty (default): no upload unless a job names "
        "one with titusParameter.agent.log.s3BucketName.",
    )
    agent_log_s3_prefix: str = Field(
        "logs",
        description="Key prefix of task logs: <prefix>/<jobId>/<taskId>/<file> (default "
        "'logs'); per job: titusParameter.agent.log.s3PathPrefix.",
    )
    agent_log_s3_writer_role: str = Field(
        "",
        description="Role ARN assumed for writing logs; empty (default): the agent's own "
        "credentials; per job: titusParameter.agent.log.s3WriterRole.",
    )
    agent_log_s3_region: str = Field("us-east-1", description="Region of the log bucket.")
    agent_log_local_retention_sec: float = Field(
        259_200.0,
        description="Output of an ended task that goes to no bucket stays on the host this "
        "long (default 3 days).",
    )
    agent_log_local_max_mb: int = Field(
        10_240,
        description="All such kept output together stays under this; the oldest goes first "
        "(default 10 GiB).",
    )
    agent_log_retention_sec: float = Field(
        3600.0,
        description="How long an uploaded log file stays on the host after its upload "
        "(default 1 h); files not yet uploaded are never deleted.",
    )
    agent_log_upload_interval_sec: float = Field(
        5.0, description="How often the agent looks for log files due for upload (default 5 s)."
    )
    # agent: health
    agent_health_interval_sec: float = Field(
        10.0, description="How often the agent checks its own health (default 10 s)."
    )
    agent_health_probe_interval_sec: float = Field(
        60.0,
        description="How often the health check starts a probe container (default 60 s); "
        "the engine is pinged on every check.",
    )
    agent_gpus: list[str] = Field(
        default_factory=list,
        description="Device ids of the GPUs this host offers, as a JSON list (hosts whose "
        "devices are managed elsewhere, or to offer fewer); empty: the NVIDIA devices "
        "found (/dev/nvidia0, /dev/nvidia1...).",
    )
    agent_allow_no_userns: bool = Field(
        False,
        description="Let the agent run tasks on an engine that does not remap user "
        "namespaces (container root would be root on the host); off: such a host is "
        "unhealthy and takes no tasks. For engines that cannot remap (tests, some "
        "development machines).",
    )
    agent_health_image: str = Field(
        "titus/busybox:latest",
        description="Image of the probe container; empty: no probe container, ping only.",
    )
    agent_health_min_free_disk_mb: int = Field(
        1024,
        description="Free space the agent's log directory needs; less makes the host "
        "unhealthy (default 1024 MB).",
    )
    agent_health_max_clock_jump_sec: float = Field(
        5.0,
        description="A wall clock further than this from the agent's steady clock (the "
        "wall clock at start carried on the monotonic clock: the clock was stepped) makes "
        "the host unhealthy until it is right again (default 5 s).",
    )
    agent_unhealthy_terminate_after_sec: float = Field(
        0.0,
        description="A host unhealthy this long asks the Auto Scaling API to terminate it "
        "(default 0: never; Titus used ~30 min).",
    )
    agent_terminate_max_concurrent: int = Field(
        1,
        description="Hosts of the fleet that may be terminating for bad health at once "
        "(default 1).",
    )
    agent_terminate_max_unhealthy_fraction: float = Field(
        0.2,
        description="When more than this share of registered hosts is unhealthy the fault "
        "is taken as systemic and no host is terminated (default 0.2).",
    )
    agent_aws_region: str = Field(
        "", description="Region for the agent's Auto Scaling calls; empty: the environment's."
    )
    agent_terminate_cooldown_sec: float = Field(
        600.0,
        description="After asking for its termination a host waits this long before asking "
        "again (default 600 s).",
    )
    # agent: restarts
    agent_orphan_grace_sec: float = Field(
        60.0,
        description="A container no task owns (started behind the agent's back, or whose "
        "task the master no longer claims) is killed after this grace (default 60 s).",
    )
    load_balancer_interval_sec: float = Field(
        10.0,
        description="How often the leader brings every associated ELBv2 target group in line "
        "with its job's serving tasks (0: never).",
    )
    load_balancer_region: str = Field(
        "", description="Region of the ELBv2 calls; empty: the environment's."
    )
    autoscaling_executor: Literal["local", "aws"] = Field(
        "local",
        description="Who carries scaling policies out: local (the leader evaluates them on "
        "their metrics and moves desired itself) or aws (Application Auto Scaling with "
        "CloudWatch alarms, calling back autoscaling_endpoint_url).",
    )
    autoscaling_interval_sec: float = Field(
        10.0,
        description="How often the leader evaluates (local) or reconciles with AWS (aws) "
        "every scaling policy (0: never).",
    )
    autoscaling_max_policies_per_job: int = Field(
        10, ge=1, le=50, description="Scaling policies a job may have at most (1..50)."
    )
    autoscaling_metrics: Literal["auto", "cloudwatch", "tasks"] = Field(
        "auto",
        description="Where the local executor reads a policy's metric: cloudwatch "
        "(GetMetricStatistics), tasks (the average of the value the job's running tasks "
        "publish in their task attribute autoscaling.metric.<metricName>), auto "
        "(cloudwatch when AWS credentials are found).",
    )
    autoscaling_target_window_sec: int = Field(
        60,
        ge=1,
        le=3600,
        description="The stretch of the latest samples whose average a target tracking "
        "policy compares with its target, when the local executor reads the tasks' own "
        "metrics (CloudWatch's datapoints are a minute, as its alarms read them).",
    )
    autoscaling_region: str = Field(
        "",
        description="Region of the Application Auto Scaling and CloudWatch calls; empty: "
        "the environment's.",
    )
    autoscaling_endpoint_url: str = Field(
        "",
        description="Base URL of this API as Application Auto Scaling reaches it (aws "
        "executor): each job is the custom resource "
        "<url>/api/v3/autoscaling/scalableTargetDimensions/<jobId>.",
    )
    eviction_system_per_minute: int = Field(
        10,
        description="Evictions (/api/v3/eviction) the whole system allows per minute, "
        "counting every disruption the platform made in that minute (default 10).",
    )
    # api: TLS (REST and gRPC)
    api_tls_cert_file: str = Field(
        "",
        description="PEM certificate (chain) the API serves REST and gRPC with; with "
        "api_tls_key_file it serves HTTPS and TLS gRPC only. Empty: plain HTTP.",
    )
    api_tls_key_file: str = Field("", description="PEM private key of api_tls_cert_file.")
    # api: admission against AWS (titus/api/aws_admission.py)
    api_aws_admission: Literal["off", "closed", "open"] = Field(
        "off",
        description="Check at job create that iamRole and securityGroups exist in AWS: off, "
        "closed (an unreachable AWS refuses the job with 503), open (admits it unchecked).",
    )
    api_aws_admission_cache_sec: float = Field(
        300.0, description="How long an AWS answer that a role or group exists is reused."
    )
    api_aws_region: str = Field("", description="Region of those checks; empty: the environment's.")
    api_aws_agent_role_arn: str = Field(
        "",
        description="The agents' own role: a job's role must trust it with sts:AssumeRole "
        "(empty: any trust of sts:AssumeRole will do).",
    )
    api_aws_vpc_id: str = Field(
        "", description="Security groups of jobs must be in this VPC (empty: any)."
    )
    # agent: the metadata service and IAM roles of tasks (titus/agent/metadata)
    agent_metadata_enabled: bool = Field(
        True,
        description="Serve each task its own instance metadata at 169.254.169.254, inside "
        "its network namespace (default on).",
    )
    agent_metadata_require_token: bool = Field(
        False,
        description="Every task on this host must use IMDSv2 tokens (a job can also ask "
        "with the container attribute titusParameter.agent.imds.requireToken=true).",
    )
    agent_iam_provider: Literal["auto", "sts", "none"] = Field(
        "auto",
        description="Where tasks' role credentials come from: sts (AssumeRole of the job's "
        "iamRole), none (no role is available), auto (sts when this host has AWS "
        "credentials).",
    )
    agent_iam_duration_sec: int = Field(
        3600, description="Lifetime asked of STS for a task's role credentials (900..43200)."
    )
    agent_iam_renew_before_sec: float = Field(
        600.0,
        description="A task's role credentials are renewed when less than this remains "
        "(default 600 s).",
    )
    agent_iam_retry_sec: float = Field(
        10.0, description="After a failed AssumeRole the next try comes this much later."
    )
    # agent: per-task networking (titus/agent/network)
    agent_network_provider: Literal["none", "local", "vpc"] = Field(
        "none",
        description="Where task addresses come from: none (containers stay on the engine's "
        "network), local (a configured pool on a bridge), vpc (ENIs of this EC2 instance, "
        "whose id is agent_id).",
    )
    agent_network_vpc_subnet_id: str = Field("", description="Subnet of the vpc provider's ENIs.")
    agent_network_release_grace_sec: float = Field(
        120.0, description="A released VPC address (then an empty ENI) is kept this long."
    )
    agent_network_subnet: str = Field(
        "100.64.0.0/24", description="Subnet of task addresses; its first host is the gateway."
    )
    agent_network_pool: str = Field(
        "", description="Range of the subnet this host hands out; empty: the whole subnet."
    )
    agent_network_bridge: str = Field(
        "titusbr0", description="Bridge the host ends of task links are put on."
    )
    agent_network_host_netns: str = Field(
        "", description="Network namespace that holds the bridge; empty: the agent's own."
    )
    agent_network_link_type: Literal["veth", "ipvlan"] = Field(
        "veth",
        description="Link of a task's eth0: veth (a pair on the bridge) or ipvlan (L2, on "
        "the host interface of the task's ENI, as on EC2); a kernel without ipvlan refuses "
        "ipvlan when the agent starts.",
    )
    agent_network_ipvlan_parent: str = Field(
        "eth{index}",
        description="Host interface an ipvlan link is made on; {index} is the device index "
        "of the task's ENI.",
    )
    agent_network_sweep_interval_sec: float = Field(
        30.0,
        gt=0,
        description="How often the agent releases addresses of tasks no longer running, "
        "gives back what is past its grace period and re-reads source security groups.",
    )
    agent_network_sweep_batch: int = Field(
        32,
        ge=1,
        le=1000,
        description="Most addresses unassigned, and most ENIs deleted, by one sweep.",
    )
    agent_network_burst_mbps: int = Field(
        0, description="Ceiling a task may burst to over its networkMbps; 0: none."
    )
    agent_network_security_groups: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Security groups of the local provider: group id to inbound rules "
        "'proto:from-to:source' (proto tcp, udp, icmp or all; source a CIDR or a declared "
        "group id, standing for the addresses of this host's tasks in that group).",
    )

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{Path(self.data_dir) / 'titus.db'}"

    @property
    def logs_path(self) -> Path:
        return Path(self.log_dir or Path(self.data_dir) / "logs")


#: Defaults of `titus local`, everything on one machine, where neither the environment nor
#: the configuration file sets them: the small first jobs people try there (tens of MB of
#: memory and disk) run with what they ask instead of being raised to a cluster's minimums.
LOCAL_DEFAULTS: dict[str, Any] = {"memory_mb_min": 32, "disk_mb_min": 32}


def load_settings(defaults: dict[str, Any] | None = None, **overrides: Any) -> Settings:
    """Settings from the file in TITUS_CONFIG (if any), then the environment, then overrides;
    `defaults` (a mode's own, such as LOCAL_DEFAULTS) replace the fields' defaults."""
    file_values: dict[str, Any] = {}
    config = os.environ.get("TITUS_CONFIG")
    if config:
        text = Path(config).read_text()
        if text.lstrip().startswith("{"):
            file_values = json.loads(text)
        else:
            for line in text.splitlines():
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, _, value = line.partition("=")
                    file_values[key.strip().lower().removeprefix("titus_")] = value.strip()
    # precedence: explicit overrides > environment > file > the mode's defaults > defaults
    values = {**(defaults or {}), **file_values}
    values = {k: v for k, v in values.items() if f"TITUS_{k.upper()}" not in os.environ}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
