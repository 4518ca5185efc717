"""Where the local executor reads a policy's metric.

- `CloudWatchMetrics`: GetMetricStatistics of the policy's namespace, name, dimensions and
  statistic, one datapoint per period (what an alarm of Application Auto Scaling reads).
- `TaskMetrics`: the platform's own, with no AWS at all: each running (Started) task of
  the job publishes the metric in its task attribute `autoscaling.metric.<metricName>`
  (a number; through `PUT /api/v3/tasks/{id}/attributes`, `titus task set-attributes`,
  or a sidecar doing either), and the job's value is the average over the tasks that
  publish it, sampled at every pass of the leader. A step policy's periods are made of
  those samples; a new leader starts sampling afresh (it waits a whole evaluation again
  before a step policy acts).

Each answers None, or fewer periods than asked, when data is missing: a policy with
missing data does nothing (an alarm's "missing data is not breaching").
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from titus.master.autoscaling.executor import JobFacts
from titus.model.autoscaling import MetricDimension, Statistic

#: Task attribute prefix of the values tasks publish for the `tasks` source.
TASK_METRIC_PREFIX = "autoscaling.metric."
#: Samples kept per job and metric (a day of 10 s passes would be 8,640).
MAX_SAMPLES = 10_000
#: Target tracking reads the latest minute.
TARGET_PERIOD_SEC = 60


class MetricSource(Protocol):
    def period_values(
        self,
        job: JobFacts,
        namespace: str,
        name: str,
        dimensions: Sequence[MetricDimension],
        statistic: Statistic,
        period: int,
        periods: int,
        now: float,
    ) -> list[float]:
        """The statistic of each of the last `periods` periods before `now` that have
        data, oldest first."""
        ...


def statistic_of(statistic: Statistic, values: Sequence[float]) -> float:
    if statistic == Statistic.SAMPLE_COUNT:
        return float(len(values))
    if statistic == Statistic.SUM:
        return math.fsum(values)
    if statistic == Statistic.MINIMUM:
        return min(values)
    if statistic == Statistic.MAXIMUM:
        return max(values)
    return math.fsum(values) / len(values)


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


class CloudWatchMetrics:
    def __init__(self, cloudwatch: Callable[[], Any]):
        self._factory = cloudwatch
        self._client: Any = None

    def _cloudwatch(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def period_values(
        self,
        job: JobFacts,
        namespace: str,
        name: str,
        dimensions: Sequence[MetricDimension],
        statistic: Statistic,
        period: int,
        periods: int,
        now: float,
    ) -> list[float]:
        answer = self._cloudwatch().get_metric_statistics(
            Namespace=namespace,
            MetricName=name,
            Dimensions=[{"Name": d.name, "Value": d.value} for d in dimensions],
            StartTime=_utc(now - period * periods),
            EndTime=_utc(now),
            Period=period,
            Statistics=[statistic.value],
        )
        points = sorted(answer.get("Datapoints", []), key=lambda p: p["Timestamp"])
        return [float(p[statistic.value]) for p in points if statistic.value in p][-periods:]


class TaskMetrics:
    """The job's tasks' own published values (see the module's docstring)."""

    def __init__(self, attributes: Callable[[str], dict[str, dict[str, str]]]):
        """`attributes(job_id)`: the attributes of the job's tasks, by task id."""
        self._attributes = attributes
        self._samples: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        self._sampled: dict[tuple[str, str], float] = {}

    def current(self, job: JobFacts, name: str) -> float | None:
        """The average of what the job's Started tasks publish now (None: none does)."""
        attributes = self._attributes(job.job_id)
        values = []
        for task_id in job.started:
            raw = attributes.get(task_id, {}).get(TASK_METRIC_PREFIX + name)
            try:
                value = float(raw) if raw is not None else math.nan
            except ValueError:
                continue  # not a number: that task publishes nothing usable
            if math.isfinite(value):
                values.append(value)
        return math.fsum(values) / len(values) if values else None

    def _sample(self, job: JobFacts, name: str, now: float) -> deque[tuple[float, float]]:
        key = (job.job_id, name)
        samples = self._samples.setdefault(key, deque(maxlen=MAX_SAMPLES))
        if self._sampled.get(key) != now:  # once per pass, however many policies read it
            self._sampled[key] = now
            value = self.current(job, name)
            if value is not None:
                samples.append((now, value))
        return samples

    def period_values(
        self,
        job: JobFacts,
        namespace: str,
        name: str,
        dimensions: Sequence[MetricDimension],
        statistic: Statistic,
        period: int,
        periods: int,
        now: float,
    ) -> list[float]:
        samples = self._sample(job, name, now)
        out: list[float] = []
        for i in range(periods - 1, -1, -1):
            start, end = now - (i + 1) * period, now - i * period
            values = [v for t, v in samples if start < t <= end]
            if values:
                out.append(statistic_of(statistic, values))
        return out

    def forget(self, job_ids: set[str]) -> None:
        """Drop the samples of jobs no policy reads any more."""
        for key in [k for k in self._samples if k[0] not in job_ids]:
            del self._samples[key]
            self._sampled.pop(key, None)
