"""The executor a leader's settings choose (autoscaling_executor, autoscaling_metrics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from titus.master.autoscaling.aws import AwsExecutor
from titus.master.autoscaling.executor import PolicyExecutor
from titus.master.autoscaling.local import LocalExecutor, task_metrics
from titus.master.autoscaling.metrics import CloudWatchMetrics, MetricSource
from titus.store.roles import TaskAttributes

#: Throttling is retried by the client itself, adaptively, a few times per call.
RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 5}, connect_timeout=3)


def client(service: str, region: str) -> Callable[[], Any]:
    return lambda: boto3.client(service, region_name=region or None, config=RETRY_CONFIG)


def has_aws_credentials() -> bool:
    return boto3.Session().get_credentials() is not None


def executor_factory(
    kind: str, metrics: str, region: str, endpoint_url: str, store: TaskAttributes
) -> Callable[[], PolicyExecutor]:
    """A maker of the executor (one per leadership term: it holds backoff and samples)."""

    def make() -> PolicyExecutor:
        if kind == "aws":
            return AwsExecutor(
                client("application-autoscaling", region),
                client("cloudwatch", region),
                endpoint_url,
            )
        source: MetricSource
        if metrics == "cloudwatch" or (metrics == "auto" and has_aws_credentials()):
            source = CloudWatchMetrics(client("cloudwatch", region))
        else:
            source = task_metrics(store)
        return LocalExecutor(source)

    return make
