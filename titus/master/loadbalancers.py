"""Load balancer registration: every serving task of an associated job is an IP target of
its job's target groups, and nothing the platform registered outlives its task.

Desired vs actual, as Titus's reconciler does it: the leader's loop works out the desired
targets from its view (tasks Started, not unhealthy, with an address of their own) and
hands them to a worker thread; the worker reads each target group's actual targets from
ELBv2 and registers what is missing and deregisters what the platform registered and no
longer wants (`plan`, pure). Targets someone else registered are left alone. A task being
killed is no longer desired, so it leaves the group on the next pass, before its
container is gone; a drifted group (a target removed or added by hand) is repaired the
same way. Each group stands alone: an ELBv2 error or throttle on one is retried with
backoff on the next passes and delays no other. What the platform registered is kept in
the store (leader meta, fenced by the epoch), so a new leader deregisters its
predecessor's leftovers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from titus.master.latest import LatestWorker
from titus.master.view import LeaderView
from titus.model.disruption import is_unhealthy
from titus.model.loadbalancer import load_balancers_of
from titus.model.names import TaskContextKey
from titus.model.states import TaskState

log = logging.getLogger("titus.master")

REGISTERED_META = "loadBalancerTargets"
RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 5})
BACKOFF_MAX_SEC = 300.0


def plan(desired: set[str], actual: set[str], ours: set[str]) -> tuple[set[str], set[str]]:
    """(to register, to deregister): what is wanted and missing, and what the platform
    put there and no longer wants."""
    return desired - actual, (ours - desired) & actual


def desired_targets(view: LeaderView) -> dict[str, set[str]]:
    """Target group -> the addresses of the tasks that should serve in it."""
    out: dict[str, set[str]] = {}
    for job in view.jobs.values():
        groups = load_balancers_of(job)
        if not groups:
            continue
        ips = {
            t.taskContext[TaskContextKey.CONTAINER_IP]
            for t in view.tasks_of(job.id)
            if t.state == TaskState.STARTED
            and not is_unhealthy(t)
            and t.taskContext.get(TaskContextKey.CONTAINER_IP)
        }
        for group in groups:
            out.setdefault(group, set()).update(ips)
    return out


@dataclass
class _Group:
    ours: set[str] = field(default_factory=set)
    port: int | None = None
    failures: int = 0
    next_try: float = 0.0


class TargetRegistrar(LatestWorker[dict[str, set[str]]]):
    """The worker: one pass over every group at a time, on a thread of its own, for the
    latest desired targets the loop handed it."""

    def __init__(
        self,
        elbv2: Callable[[], Any],
        save: Callable[[str], None],
        saved: str | None,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__()
        self._factory = elbv2
        self._client: Any = None
        self._save = save
        self.clock = clock
        self.groups: dict[str, _Group] = {}
        for arn, ips in _decode(saved).items():
            self.groups[arn] = _Group(ours=set(ips))
        self._start("lb-registrar")

    def work(self, desired: dict[str, set[str]]) -> bool:
        try:
            self.reconcile(desired)
        except Exception:
            log.exception("load balancer pass failed")
        return True

    def reconcile(self, desired: dict[str, set[str]]) -> None:
        before = self._record()
        for arn in sorted(set(desired) | set(self.groups)):
            group = self.groups.setdefault(arn, _Group())
            if self.clock() < group.next_try:
                continue
            try:
                self._reconcile_group(arn, group, desired.get(arn, set()))
                group.failures, group.next_try = 0, 0.0
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
                group.failures += 1
                delay = min(BACKOFF_MAX_SEC, 2.0**group.failures)
                group.next_try = self.clock() + delay
                log.warning("target group %s: %s (next try in %.0f s)", arn, e, delay)
            if not group.ours and arn not in desired:
                del self.groups[arn]
        record = self._record()
        if record != before:
            self._save(record)

    def _elbv2(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def _reconcile_group(self, arn: str, group: _Group, desired: set[str]) -> None:
        elbv2 = self._elbv2()
        if group.port is None:
            found = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"][0]
            group.port = int(found.get("Port") or 0)
        health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        actual = {str(h["Target"]["Id"]) for h in health}
        register, deregister = plan(desired, actual, group.ours)
        if register:
            elbv2.register_targets(TargetGroupArn=arn, Targets=self._targets(register, group))
            log.info("target group %s: registered %s", arn, sorted(register))
        if deregister:
            elbv2.deregister_targets(TargetGroupArn=arn, Targets=self._targets(deregister, group))
            log.info("target group %s: deregistered %s", arn, sorted(deregister))
        group.ours = (group.ours | register) - deregister
        group.ours &= desired | actual  # gone from the group by other hands: not ours now

    @staticmethod
    def _targets(ips: set[str], group: _Group) -> list[dict[str, Any]]:
        return [{"Id": ip, "Port": group.port} if group.port else {"Id": ip} for ip in sorted(ips)]

    def _record(self) -> str:
        kept = {arn: sorted(g.ours) for arn, g in sorted(self.groups.items()) if g.ours}
        return json.dumps(kept, separators=(",", ":"))


def _decode(text: str | None) -> dict[str, list[str]]:
    if not text:
        return {}
    try:
        raw = json.loads(text)
        return {str(k): [str(ip) for ip in v] for k, v in dict(raw).items()}
    except (ValueError, TypeError) as exc:
        log.warning("the stored load balancer targets are unreadable: %s", exc)
        return {}


def elbv2_client(region: str) -> Callable[[], Any]:
    return lambda: boto3.client("elbv2", region_name=region or None, config=RETRY_CONFIG)
