"""The executor a leader's settings choose (autoscaling_executor, autoscaling_metrics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from titus.master.autoscaling.aws import AwsExecutor
from titus.master.autoscaling.executor import PolicyExecutor
from titus.master.autoscaling.local import LocalExecutor, task_metrics
from titus.master.autoscaling.metrics import TARGET_PERIOD_SEC, CloudWatchMetrics
from titus.store.roles import TaskAttributes

#: Throttling is retried by the client itself, adaptively, a few times per call.
RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 5}, connect_timeout=3)


def client(service: str, region: str) -> Callable[[], Any]:
    return lambda: boto3.client(service, region_name=region or None, config=RETRY_CONFIG)


def has_aws_credentials() -> bool:
    return boto3.Session().get_credentials() is not None


def executor_factory(
    kind: str,
    metrics: str,
    region: str,
    endpoint_url: str,
    store: TaskAttributes,
    *,
    target_window: int = TARGET_PERIOD_SEC,
) -> Callable[[], PolicyExecutor]:
    """A maker of the executor (one per leadership term: it holds backoff and samples)."""

    def make() -> PolicyExecutor:
        if kind == "aws":
            return AwsExecutor(
                client("application-autoscaling", region),
                client("cloudwatch", region),
                endpoint_url,
            )
        if metrics == "cloudwatch" or (metrics == "auto" and has_aws_credentials()):
            # CloudWatch's own one-minute datapoints, as its alarms read them
            cloudwatch = CloudWatchMetrics(client("cloudwatch", region))
            return LocalExecutor(cloudwatch, TARGET_PERIOD_SEC)
        return LocalExecutor(task_metrics(store), target_window)

    return make
