"""No field accepted and then ignored: every field of the job descriptor is in the table
below, naming the test that shows what it changes for the job (or that shows it refused),
or, while it is not acted on yet, the issue that will make it act. A field added to the
model without an entry fails this test, so none slips in unread; a named test that is
renamed or removed fails it too."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from titus.model.job import JobDescriptor

TESTS = Path(__file__).resolve().parents[1]

RETRY = {
    "immediate.retries": "test_batch_job_with_retry_policy_and_paging",
    "delayed.initialDelayMs": "test_delayed_retry_policy_delays_the_retry",
    "delayed.delayMs": "test_delayed_retry_policy_delays_the_retry",
    "delayed.retries": "test_delayed_retry_policy_delays_the_retry",
    "exponentialBackOff.initialDelayMs": "test_a_retry_waits_the_longer_delay_from_the_time_given",
    "exponentialBackOff.maxDelayIntervalMs": (
        "test_a_retry_waits_the_longer_delay_from_the_time_given"
    ),
    "exponentialBackOff.retries": "test_a_retry_waits_the_longer_delay_from_the_time_given",
}
SERVICE = "test_service_job_keeps_desired_replaces_kills_shrinks_resizes_and_ends"
BUDGET = "test_batch_tasks_move_off_drained_hosts_only_within_their_relocation_limit"
HEALTH = "test_a_budget_names_the_health_check_or_nothing"
PHASE_OUT = "test_phasing_out_a_group_keeps_a_ten_task_job_within_at_most_two_unavailable"
SELF_MANAGED = "test_a_self_managed_job_is_left_to_its_owner_until_the_timeout"

#: leaf field -> the test that shows what it does (or that it is refused), or "pending: ..."
FIELDS: dict[str, str] = {
    "owner.teamEmail": "test_rule_breaks_and_just_passes",
    "applicationName": "test_task_listings_filter_page_and_project",
    "capacityGroup": "test_a_full_capacity_group_refuses_new_work_and_names_its_limit",
    "jobGroupInfo.stack": "test_duplicate_group_name_names_the_job",
    "jobGroupInfo.detail": "test_duplicate_group_name_names_the_job",
    "jobGroupInfo.sequence": "test_duplicate_group_name_names_the_job",
    "attributes": "test_deploy_find_resize_disable_enable_kill",
    "container.resources.cpu": "test_cpu_burner_is_held_to_its_quota_and_a_bursting_job_is_not",
    "container.resources.gpu": "test_a_gpu_task_is_asked_exactly_its_devices_and_gives_them_back",
    "container.resources.memoryMB": "test_memory_hog_is_killed_and_its_neighbour_keeps_running",
    "container.resources.diskMB": "test_disk_quota_holds_on_btrfs_and_the_neighbour_still_writes",
    "container.resources.networkMbps": "test_a_task_is_held_to_its_network_mbps_both_ways",
    "container.resources.shmSizeMB": "test_shm_is_as_large_as_asked_and_no_larger",
    "container.resources.allocateIP": (
        "test_a_host_out_of_addresses_refuses_ip_tasks_by_name_and_takes_the_others"
    ),
    "container.resources.ephemeralStorageMB": (
        "test_ephemeral_storage_becomes_the_disk_the_container_gets"
    ),
    "container.securityProfile.securityGroups": (
        "test_security_groups_let_in_the_ports_they_allow_and_no_others"
    ),
    "container.securityProfile.iamRole": (
        "test_the_sdk_in_each_container_gets_its_own_jobs_role_and_never_anothers"
    ),
    "container.securityProfile.attributes": (
        "test_cpu_burner_is_held_to_its_quota_and_a_bursting_job_is_not"
    ),
    "container.image.name": "test_missing_image_is_an_invalid_request_and_leaves_nothing",
    "container.image.tag": "test_missing_image_is_an_invalid_request_and_leaves_nothing",
    "container.image.digest": "test_rule_breaks_and_just_passes",
    "container.entryPoint": "test_command_and_env_reach_the_container_and_output_is_kept",
    "container.command": "test_command_and_env_reach_the_container_and_output_is_kept",
    "container.env": "test_command_and_env_reach_the_container_and_output_is_kept",
    "container.softConstraints.constraints": "test_soft_constraints_steer_but_do_not_refuse",
    "container.softConstraints.expression": "test_constraint_expressions_are_refused_by_name",
    "container.hardConstraints.constraints": (
        "test_attribute_constraints_match_the_host_attribute"
    ),
    "container.hardConstraints.expression": "test_constraint_expressions_are_refused_by_name",
    "container.attributes": "test_cpu_burner_is_held_to_its_quota_and_a_bursting_job_is_not",
    "batch.size": "test_batch_job_with_retry_policy_and_paging",
    "batch.runtimeLimitSec": "test_batch_task_over_its_runtime_limit_is_killed",
    "batch.retryOnRuntimeLimit": "test_runtime_limit_is_retried_only_when_asked",
    **{f"batch.retryPolicy.{k}": v for k, v in RETRY.items()},
    "service.capacity.min": SERVICE,
    "service.capacity.desired": SERVICE,
    "service.capacity.max": SERVICE,
    "service.enabled": (
        "test_a_disabled_service_job_keeps_its_tasks_and_creates_replaces_or_kills_none"
    ),
    **{f"service.retryPolicy.{k}": v for k, v in RETRY.items()},
    "service.migrationPolicy.systemDefault": SELF_MANAGED,
    "service.migrationPolicy.selfManaged": SELF_MANAGED,
    "service.serviceJobProcesses.disableIncreaseDesired": (
        "test_job_and_task_attributes_budget_processes_and_move"
    ),
    "service.serviceJobProcesses.disableDecreaseDesired": (
        "test_job_and_task_attributes_budget_processes_and_move"
    ),
    "disruptionBudget.selfManaged.relocationTimeMs": SELF_MANAGED,
    "disruptionBudget.availabilityPercentageLimit.percentageOfHealthyContainers": (
        "test_availability_percentage_keeps_that_share_healthy"
    ),
    "disruptionBudget.unhealthyTasksLimit.limitOfUnhealthyContainers": PHASE_OUT,
    "disruptionBudget.relocationLimit.limit": BUDGET,
    "disruptionBudget.rateUnlimited": PHASE_OUT,
    **{
        f"disruptionBudget.{leaf}": "test_rates_count_recent_disruptions_only"
        for leaf in (
            "ratePercentagePerHour.maxPercentageOfContainersRelocatedInHour",
            "ratePerInterval.intervalMs",
            "ratePerInterval.limitPerInterval",
            "ratePercentagePerInterval.intervalMs",
            "ratePercentagePerInterval.percentageLimitPerInterval",
        )
    },
    **{
        f"disruptionBudget.timeWindows.{leaf}": "test_time_windows_in_the_windows_zone"
        for leaf in (
            "days",
            "hourlyTimeWindows.startHour",
            "hourlyTimeWindows.endHour",
            "timeZone",
        )
    },
    "disruptionBudget.containerHealthProviders.name": HEALTH,
    "disruptionBudget.containerHealthProviders.attributes": HEALTH,
}


def _models(annotation: object) -> list[type[BaseModel]]:
    found = []
    for t in (annotation, *typing.get_args(annotation)):
        for u in (t, *typing.get_args(t)):
            if isinstance(u, type) and issubclass(u, BaseModel):
                found.append(u)
    return found


def leaves(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field that holds a value (a model without fields counts: its presence is
    the value)."""
    out: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{info.alias or name}"
        nested = _models(info.annotation)
        if not nested:
            out.add(path)
        for sub in nested:
            out |= leaves(sub, f"{path}.") if sub.model_fields else {path}
    return out


def _test_names() -> set[str]:
    names: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        names |= set(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M))
    return names


def test_every_field_of_the_job_descriptor_is_acted_on_refused_or_owned_by_an_issue() -> None:
    fields = leaves(JobDescriptor)
    assert sorted(fields - FIELDS.keys()) == [], "fields nobody reads: add them to FIELDS"
    assert sorted(FIELDS.keys() - fields) == [], "FIELDS names fields the model no longer has"
    known = _test_names()
    missing = {f: t for f, t in FIELDS.items() if not t.startswith("pending:") and t not in known}
    assert missing == {}, "FIELDS names tests that do not exist"
