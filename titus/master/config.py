"""The leader loop's knobs, built from the typed `Settings`.

Each knob that operators set has its default once, in `titus.settings.Settings`; the
dataclass defaults below read it from there, so a `MasterConfig()` made in a test and one
built from default settings are the same. The few knobs that are not settings (how long
a host may take to confirm a task, how often cluster configuration is read again, how long
the first sync with the hosts may take) have their defaults here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from titus.master.defaults import from_setting
from titus.master.stuck import StuckTimeouts
from titus.settings import Settings

#: Seconds a task may be missing from a host that answered before it is declared lost.
UNKNOWN_TASK_GRACE_SEC = 15.0


@dataclass
class MasterConfig:
    """The leader loop's knobs (see `Settings` for what each means)."""

    loop_interval: float = from_setting("master_loop_interval_sec")
    #: Every active job's index counts are checked once per this period (a safety net: every
    #: change that matters already marks its job for reconciliation).
    sweep_period: float = from_setting("master_sweep_period_sec")
    unknown_task_grace: float = UNKNOWN_TASK_GRACE_SEC
    stuck: StuckTimeouts = field(default_factory=StuckTimeouts)
    stuck_kills_per_sec: float = from_setting("stuck_kills_per_sec")
    stuck_kills_burst: float = from_setting("stuck_kills_burst")
    backoff_initial: float = from_setting("system_backoff_initial_sec")
    backoff_max: float = from_setting("system_backoff_max_sec")
    #: Service tasks on phased-out hosts being moved at once (kills in flight).
    migrate_at_once: int = from_setting("migrate_at_once")
    #: How long a selfManaged job's owner has to move a task before the platform does.
    self_managed_timeout: float = from_setting("self_managed_migration_timeout_sec")
    #: How often target groups are reconciled with their jobs' tasks (0: never).
    load_balancer_interval: float = from_setting("load_balancer_interval_sec")
    load_balancer_region: str = from_setting("load_balancer_region")
    #: Scaling policies: how often they are evaluated or reconciled, and by what.
    autoscaling_interval: float = from_setting("autoscaling_interval_sec")
    autoscaling_executor: str = from_setting("autoscaling_executor")
    autoscaling_metrics: str = from_setting("autoscaling_metrics")
    autoscaling_target_window: int = from_setting("autoscaling_target_window_sec")
    #: The platform's bound on tasks active jobs want: scaling out stops at it, as a
    #: user's resize does at the API.
    max_active_tasks: int = from_setting("max_active_tasks")
    autoscaling_region: str = from_setting("autoscaling_region")
    autoscaling_endpoint_url: str = from_setting("autoscaling_endpoint_url")
    #: How often capacity groups and instance groups are read from the store.
    cluster_config_refresh: float = 5.0
    #: How long the first sync with the hosts may take before acting without it.
    actual_sync_timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> MasterConfig:
        return cls(
            loop_interval=settings.master_loop_interval_sec,
            sweep_period=settings.master_sweep_period_sec,
            stuck=StuckTimeouts.from_settings(settings),
            stuck_kills_per_sec=settings.stuck_kills_per_sec,
            stuck_kills_burst=settings.stuck_kills_burst,
            backoff_initial=settings.system_backoff_initial_sec,
            backoff_max=settings.system_backoff_max_sec,
            migrate_at_once=settings.migrate_at_once,
            self_managed_timeout=settings.self_managed_migration_timeout_sec,
            load_balancer_interval=settings.load_balancer_interval_sec,
            load_balancer_region=settings.load_balancer_region,
            autoscaling_interval=settings.autoscaling_interval_sec,
            autoscaling_executor=settings.autoscaling_executor,
            autoscaling_metrics=settings.autoscaling_metrics,
            autoscaling_target_window=settings.autoscaling_target_window_sec,
            max_active_tasks=settings.max_active_tasks,
            autoscaling_region=settings.autoscaling_region,
            autoscaling_endpoint_url=settings.autoscaling_endpoint_url,
        )
