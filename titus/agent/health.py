"""The agent's view of its own host: can it run tasks well right now?

A sick host that keeps taking work fails every task sent to it, so the agent checks
itself periodically and publishes the verdict with its registration (AgentInfo.healthy
and health_reasons); the master places nothing on an unhealthy host. Checks:

- docker: the engine answers a ping, and (every `agent_health_probe_interval_sec`) can
  create, start and remove a small probe container: an engine that answers but cannot
  start containers (full storage, broken runtime) is as bad as one that is down; and it
  remaps user namespaces (root in a container is an unprivileged uid on the host), unless
  `agent_allow_no_userns` says this host may do without;
- disk: the log directory's file system has `agent_health_min_free_disk_mb` free;
- clock: the wall clock is where the agent's steady clock (the wall clock at start carried
  on the monotonic clock, titus/agent/clock.py) says it should be; a clock that was
  stepped leaves the host unhealthy until it is right again (its tasks keep running and
  the leader's calls are still taken: only new placements stop).

The reasons are short sentences an operator reads in `GET /api/v3/agents`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from titus.agent.clock import AGENT_CLOCK, SteadyClock
from titus.settings import Settings

log = logging.getLogger(__name__)

PROBE_LABEL = "titus.health.probe"


@dataclass
class HealthStatus:
    healthy: bool = True
    reasons: list[str] = field(default_factory=list)
    docker_ok: bool = True
    unhealthy_since: float | None = None  # wall clock of the first failed check in a row


class HealthChecker:
    """Runs the checks; `check()` returns the new status and keeps it in `status`."""

    def __init__(
        self,
        settings: Settings,
        client: docker.DockerClient,
        agent_id: str,
        clock: SteadyClock = AGENT_CLOCK,
    ):
        self.settings = settings
        self.clock = clock
        self.client = client
        self.agent_id = agent_id
        self.status = HealthStatus()
        self._last_probe = float("-inf")
        self._probe_ok = True
        self._probe_error = ""
        self._userns = True
        self._lock = threading.Lock()

    def check(self, probe: bool = True) -> HealthStatus:
        """Run every check; `probe=False` skips the probe container this time."""
        with self._lock:
            reasons: list[str] = []
            docker_ok = self._check_docker(reasons, probe)
            self._check_disk(reasons)
            self._check_clock(reasons)
            healthy = not reasons
            since = self.status.unhealthy_since
            if healthy:
                since = None
            elif since is None:
                since = time.time()
            self.status = HealthStatus(healthy, reasons, docker_ok, since)
            return self.status

    def _check_docker(self, reasons: list[str], probe: bool = True) -> bool:
        try:
            self.client.ping()
        except Exception as e:
            reasons.append(f"docker engine unavailable: {_short(e)}")
            self._last_probe = float("-inf")  # probe again as soon as it answers
            return False
        now = time.monotonic()
        image = self.settings.agent_health_image
        due = now - self._last_probe >= self.settings.agent_health_probe_interval_sec
        if probe and due:
            self._last_probe = now
            self._userns = self._remaps_user_namespaces()
            if image:
                self._probe_ok, self._probe_error = self._probe(image)
        if not self._probe_ok:
            reasons.append(f"docker engine cannot start containers: {self._probe_error}")
            return False
        if not self._userns and not self.settings.agent_allow_no_userns:
            reasons.append(
                "docker engine does not remap user namespaces (root in a container would "
                "be root on the host): start dockerd with --userns-remap, or set "
                "agent_allow_no_userns"
            )
            return False
        return True

    def _remaps_user_namespaces(self) -> bool:
        """The engine says so in its security options ("name=userns")."""
        try:
            options = self.client.info().get("SecurityOptions") or []
        except Exception as e:  # asked again at the next probe
            log.warning("docker engine info failed: %s", _short(e))
            return self._userns
        return any(str(o).split(",")[0] == "name=userns" for o in options)

    def _probe(self, image: str) -> tuple[bool, str]:
        """Create, start, wait for and remove a container that does nothing."""
        container = None
        try:
            container = self.client.containers.create(
                image,
                command=["true"],
                labels={PROBE_LABEL: self.agent_id},
                network_mode="none",
                mem_limit="16m",
                detach=True,
            )
            container.start()
            result = container.wait(timeout=30)
            if int(result.get("StatusCode", -1)) != 0:
                return False, f"probe container exited {result.get('StatusCode')}"
            return True, ""
        except docker.errors.ImageNotFound:
            # the probe image is missing, not the engine broken: ping is all we can say
            return True, ""
        except Exception as e:
            return False, _short(e)
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except Exception:
                    log.debug("removing the health probe container failed", exc_info=True)

    def _check_disk(self, reasons: list[str]) -> None:
        path = Path(self.settings.logs_path)
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            free_mb = shutil.disk_usage(path).free // (1024 * 1024)
        except OSError as e:
            reasons.append(f"cannot read free disk space of {path}: {e}")
            return
        need = self.settings.agent_health_min_free_disk_mb
        if free_mb < need:
            reasons.append(f"disk nearly full: {free_mb} MB free at {path}, need {need} MB")

    def _check_clock(self, reasons: list[str]) -> None:
        off = self.clock.wall_offset()
        if abs(off) > self.settings.agent_health_max_clock_jump_sec:
            reasons.append(
                f"wall clock is {off:+.1f} s off the clock this agent keeps since it started "
                "(stepped): no new tasks here until it is right again"
            )


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
