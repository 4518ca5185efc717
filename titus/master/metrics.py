"""The master's Prometheus metrics: what users and operators of the scheduler care about.

Names follow the platform's conventions: `titus_` prefix, base units, `_total` counters,
no task or job ids as label values (capacity groups and reasons are bounded sets).
Modelled on the Kubernetes scheduler's set (pending per queue, attempts by result,
attempt latency, queue-entry-to-start latency).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PENDING = Gauge(
    "titus_scheduler_pending_tasks",
    "Accepted tasks waiting for placement, per capacity group",
    ["capacity_group"],
)
ATTEMPTS = Counter(
    "titus_scheduler_schedule_attempts_total",
    "Placement attempts by result (placed, unschedulable, deferred)",
    ["result"],
)
UNSCHEDULABLE = Gauge(
    "titus_scheduler_unschedulable_tasks",
    "Pending tasks the last attempt could not place, by the rule refusing most hosts",
    ["plugin"],
)
PLACEMENT_SECONDS = Histogram(
    "titus_scheduler_placement_duration_seconds",
    "Duration of one scheduling pass (pending tasks against all hosts)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
QUEUE_TO_PLACED = Histogram(
    "titus_scheduler_task_placement_seconds",
    "From a task entering the queue (Accepted, or its retry delay ending) to its placement",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
SUBMIT_TO_START = Histogram(
    "titus_task_submit_to_start_seconds",
    "From a task's creation (Accepted) to its container running (Started)",
    buckets=(0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0),
)
FAILOVER_SECONDS = Gauge(
    "titus_master_failover_seconds",
    "Last election of this process: from elected to ready to act (state loaded, hosts "
    "listed and reconciled)",
)
LOAD_SECONDS = Gauge(
    "titus_master_load_seconds", "Last election: time to read the active state from the store"
)
FIRST_LAUNCH_SECONDS = Gauge(
    "titus_master_first_launch_seconds",
    "Last election: from elected to the first launch sent to a host",
)
IS_LEADER = Gauge("titus_master_leader", "1 while this process leads and may act")
ITERATION_SECONDS = Histogram(
    "titus_master_iteration_duration_seconds",
    "Duration of one leader loop iteration",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
TASK_FAILURES = Counter(
    "titus_task_failures_total",
    "Tasks that finished with a reason other than normal, by reason",
    ["reason"],
)
STUCK_KILLS = Counter(
    "titus_master_stuck_kills_total",
    "Stuck tasks killed, by the state they were stuck in",
    ["state"],
)
MIGRATIONS = Counter(
    "titus_master_migrations_total",
    "Service tasks moved off hosts of phased-out instance groups",
)
UNHEALTHY_REPLACED = Counter(
    "titus_master_unhealthy_replaced_total",
    "Service tasks killed for failing their container health check, to be replaced",
)
LAUNCHES = Counter("titus_master_launches_total", "Tasks sent to hosts to start")
MOVES = Counter(
    "titus_master_task_moves_total",
    "Task moves between service jobs carried out (moved) or given up (refused)",
    ["result"],
)
AUTOSCALING_SCALINGS = Counter(
    "titus_autoscaling_scalings_total",
    "Desired sizes of service jobs changed by scaling policies, by direction (out, in)",
    ["direction"],
)
AUTOSCALING_PASS_SECONDS = Histogram(
    "titus_autoscaling_pass_duration_seconds",
    "Duration of one autoscaling worker pass over every scaling policy",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
AUTOSCALING_ERRORS = Counter(
    "titus_autoscaling_errors_total",
    "Failed AWS calls of the autoscaling worker, by kind (throttled, refused, unreachable, metric)",
    ["kind"],
)
