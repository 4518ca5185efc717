"""A job's container health check, read from its container attributes.

Titus jobs speak to the agent through `titusParameter.agent.*` container attributes; the
health check is four of them (the bare names are read too, as isolation.py reads its own):

- `healthcheck.command`: a shell command run inside the container; exit 0 is healthy;
- `healthcheck.intervalSec` (default 10), `healthcheck.timeoutSec` (default 5),
  `healthcheck.retries` (consecutive failures before the task is unhealthy, default 3),
  `healthcheck.startPeriodSec` (failures during it do not count, default 0).

The engine runs it (Docker's HEALTHCHECK); the agent reports the result in the task's
context (`task.health`: starting, healthy or unhealthy) and the master replaces unhealthy
service tasks within their job's disruption budget. A value out of bounds is refused at
submit time, naming the attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from titus.model.names import AGENT_PARAMETER_PREFIX
from titus.model.validation import FieldError

AGENT_PREFIX = AGENT_PARAMETER_PREFIX
COMMAND = "healthcheck.command"
INTERVAL = "healthcheck.intervalSec"
TIMEOUT = "healthcheck.timeoutSec"
RETRIES = "healthcheck.retries"
START_PERIOD = "healthcheck.startPeriodSec"
#: name -> (default, lowest, highest)
NUMBERS: dict[str, tuple[int, int, int]] = {
    INTERVAL: (10, 1, 3600),
    TIMEOUT: (5, 1, 300),
    RETRIES: (3, 1, 100),
    START_PERIOD: (0, 0, 3600),
}

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
STARTING = "starting"


@dataclass(frozen=True)
class HealthCheck:
    command: str
    interval_sec: int = 10
    timeout_sec: int = 5
    retries: int = 3
    start_period_sec: int = 0

    def engine_form(self) -> dict[str, object]:
        """Docker's healthcheck (durations in nanoseconds)."""
        second = 1_000_000_000
        return {
            "test": ["CMD-SHELL", self.command],
            "interval": self.interval_sec * second,
            "timeout": self.timeout_sec * second,
            "retries": self.retries,
            "start_period": self.start_period_sec * second,
        }


def _named(attributes: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Health check attributes by lower-case bare name: (the key as given, its value)."""
    found: dict[str, tuple[str, str]] = {}
    for key, value in attributes.items():
        bare = key[len(AGENT_PREFIX) :] if key.startswith(AGENT_PREFIX) else key
        if bare.lower().startswith("healthcheck."):
            found[bare.lower()] = (key, value)
    return found


def check_health_attributes(
    attributes: Mapping[str, str], path: str = "container.attributes"
) -> list[FieldError]:
    """Errors of a health check given in `attributes` (none when there is no check)."""
    named = _named(attributes)
    if not named:
        return []
    errors: list[FieldError] = []
    known = {n.lower() for n in (COMMAND, *NUMBERS)}
    for bare, (key, _) in named.items():
        if bare not in known:
            errors.append(FieldError(f"{path}.{key}", "is not a health check setting"))
    command = named.get(COMMAND.lower())
    if command is None or not command[1].strip():
        where = f"{path}.{AGENT_PREFIX}{COMMAND}"
        errors.append(FieldError(where, "a health check needs a command"))
    for name, (_, low, high) in NUMBERS.items():
        given = named.get(name.lower())
        if given is None:
            continue
        key, value = given
        if not value.strip().isdigit() or not low <= int(value) <= high:
            errors.append(FieldError(f"{path}.{key}", f"must be an integer in {low}..{high}"))
    return errors


def health_check_of(attributes: Mapping[str, str]) -> HealthCheck | None:
    """The health check `attributes` give (validated at submit), or None."""
    named = _named(attributes)
    command = named.get(COMMAND.lower())
    if command is None or check_health_attributes(attributes):
        return None

    def number(name: str) -> int:
        given = named.get(name.lower())
        return int(given[1]) if given is not None else NUMBERS[name][0]

    return HealthCheck(
        command[1],
        interval_sec=number(INTERVAL),
        timeout_sec=number(TIMEOUT),
        retries=number(RETRIES),
        start_period_sec=number(START_PERIOD),
    )
