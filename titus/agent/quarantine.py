"""Asking the Auto Scaling API to replace a host that stays unhealthy.

Where this runs, and why: each agent reports itself. The agent is the one component that
knows its own health first-hand and its own instance id, needs no new service, and keeps
working when the master or the api is down. What it must not do alone is decide that a
fault is its own: a bad image of the engine, a full shared volume or a broken clock
source makes the whole fleet unhealthy at once, and terminating every host would turn
a degradation into an outage. The fleet-wide limit therefore needs state every agent
sees, and the agents already share one: the coordination registry, where each publishes
its AgentInfo. So:

- a host asks only after being unhealthy for `agent_unhealthy_terminate_after_sec`;
- it first publishes a claim (attribute `terminationRequestedAt`) with its registration,
  then reads the registry again: it goes ahead only if the claims ordered by (time, id)
  put it among the first `agent_terminate_max_concurrent`, counting hosts already
  terminating. Every agent orders the same claims the same way, so at most that many go
  ahead at once; a terminated host's registration disappears with it, freeing its slot
  for the next one, which bounds the rate at one host per slot per replacement time;
- nothing is terminated while more than `agent_terminate_max_unhealthy_fraction` of the
  registered hosts are unhealthy: that is a systemic fault, for an operator;
- after asking, a host waits `agent_terminate_cooldown_sec` before asking again (the
  Auto Scaling service may be slow, or refuse).

Termination keeps the group's desired capacity (`ShouldDecrementDesiredCapacity=False`),
so Auto Scaling starts a replacement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.config

from titus.coord.base import AgentInfo, Coordinator
from titus.settings import Settings

log = logging.getLogger(__name__)

ATTR_CLAIM = "terminationRequestedAt"
ATTR_TERMINATING = "terminating"
ATTR_UNHEALTHY_SINCE = "unhealthySince"


class TerminationReporter:
    """Decides, each time the agent's health is checked, whether to ask for termination."""

    def __init__(
        self,
        settings: Settings,
        coord: Coordinator,
        info: AgentInfo,
        publish: Callable[[], None],
        asg_client: Any = None,
    ):
        self.settings = settings
        self.coord = coord
        self.info = info
        self.publish = publish
        self._asg = asg_client
        self._requested_at: float | None = None
        self.terminations = 0  # requests accepted by the Auto Scaling API

    @property
    def enabled(self) -> bool:
        return self.settings.agent_unhealthy_terminate_after_sec > 0

    def asg(self) -> Any:
        if self._asg is None:
            self._asg = boto3.client(
                "autoscaling",
                region_name=self.settings.agent_aws_region or None,
                config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 5}),
            )
        return self._asg

    def consider(self, unhealthy_since: float | None, now: float | None = None) -> bool:
        """Ask for termination if it is due and allowed; True when it was asked."""
        now = time.time() if now is None else now
        attrs = self.info.attributes
        if unhealthy_since is None:
            # healthy again: withdraw a claim that has not been acted on
            if attrs.pop(ATTR_CLAIM, None) is not None:
                self.publish()
            return False
        if not self.enabled:
            return False
        if now - unhealthy_since < self.settings.agent_unhealthy_terminate_after_sec:
            return False
        if (
            self._requested_at is not None
            and now - self._requested_at < self.settings.agent_terminate_cooldown_sec
        ):
            return False
        if ATTR_CLAIM not in attrs:
            attrs[ATTR_CLAIM] = f"{now:.3f}"
            self.publish()
            return False  # decide on the next check, once every agent can see the claim
        if not self._allowed():
            return False
        instance_id = attrs.get("instanceId") or self.info.id
        try:
            self.asg().terminate_instance_in_auto_scaling_group(
                InstanceId=instance_id, ShouldDecrementDesiredCapacity=False
            )
        except Exception as e:
            log.error("asking Auto Scaling to terminate %s failed: %s", instance_id, e)
            self._requested_at = now
            return False
        self._requested_at = now
        self.terminations += 1
        attrs[ATTR_TERMINATING] = "true"
        self.publish()
        log.warning(
            "host %s unhealthy since %.0f s (%s): termination requested",
            instance_id,
            now - unhealthy_since,
            "; ".join(self.info.health_reasons),
        )
        return True

    def _allowed(self) -> bool:
        fleet = self.coord.agents()
        if not any(a.id == self.info.id for a in fleet):
            fleet.append(self.info)
        unhealthy = [a for a in fleet if not a.healthy]
        share = len(unhealthy) / max(1, len(fleet))
        if share > self.settings.agent_terminate_max_unhealthy_fraction:
            log.warning(
                "%d of %d hosts unhealthy: a systemic fault, no host is terminated",
                len(unhealthy),
                len(fleet),
            )
            return False
        terminating = [a for a in fleet if a.attributes.get(ATTR_TERMINATING) == "true"]
        slots = self.settings.agent_terminate_max_concurrent - len(terminating)
        if slots <= 0:
            return False
        claims = sorted(
            (float(a.attributes[ATTR_CLAIM]), a.id)
            for a in fleet
            if ATTR_CLAIM in a.attributes and a.attributes.get(ATTR_TERMINATING) != "true"
        )
        first = [agent_id for _, agent_id in claims[:slots]]
        return self.info.id in first
