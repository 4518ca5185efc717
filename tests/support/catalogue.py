"""The validation catalogue: each rule of a job descriptor with an edit of a good
descriptor that just breaks it and one that just passes, and the field the refusal names.
One list for every test that walks it: the validation unit test (both sides of each
bound), and the refusal tests over REST and gRPC (the same fields named by both)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GOOD: dict[str, Any] = {
    "owner": {"teamEmail": "team@example.com"},
    "applicationName": "app",
    "container": {
        "image": {"name": "titus/busybox", "tag": "latest"},
        "resources": {"cpu": 1, "memoryMB": 512, "diskMB": 10000, "networkMbps": 128},
    },
    "batch": {"size": 1, "runtimeLimitSec": "3600"},
}

Edit = Callable[[dict[str, Any]], None]


def put(path: str, value: Any) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    return edit


def service(cap: dict[str, int]) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        del body["batch"]
        body["service"] = {"capacity": cap}

    return edit


def budget(b: dict[str, Any]) -> Edit:
    return put("disruptionBudget", b)


RATE = {"rateUnlimited": {}}
POLICY = {"relocationLimit": {"limit": 1}}

# rule, the field named in the error, an edit that breaks it, an edit that just passes
CATALOGUE: list[tuple[str, str, Edit, Edit]] = [
    (
        "cpu more than 0 (less than the minimum is raised to it)",
        "container.resources.cpu",
        put("container.resources.cpu", 0),
        put("container.resources.cpu", 0.001),
    ),
    (
        "cpu max",
        "container.resources.cpu",
        put("container.resources.cpu", 96.5),
        put("container.resources.cpu", 96),
    ),
    (
        "memory more than 0 (less than the minimum is raised to it)",
        "container.resources.memoryMB",
        put("container.resources.memoryMB", 0),
        put("container.resources.memoryMB", 1),
    ),
    (
        "memory max",
        "container.resources.memoryMB",
        put("container.resources.memoryMB", 1_152_001),
        put("container.resources.memoryMB", 1_152_000),
    ),
    (
        "disk more than 0 (less than the minimum is raised to it)",
        "container.resources.diskMB",
        put("container.resources.diskMB", -1),
        put("container.resources.diskMB", 1),
    ),
    (
        "disk max",
        "container.resources.diskMB",
        put("container.resources.diskMB", 1_550_001),
        put("container.resources.diskMB", 1_550_000),
    ),
    (
        "network more than 0 (less than the minimum is raised to it)",
        "container.resources.networkMbps",
        put("container.resources.networkMbps", 0),
        put("container.resources.networkMbps", 1),
    ),
    (
        "network max",
        "container.resources.networkMbps",
        put("container.resources.networkMbps", 400_001),
        put("container.resources.networkMbps", 400_000),
    ),
    (
        "gpu max",
        "container.resources.gpu",
        put("container.resources.gpu", 17),
        put("container.resources.gpu", 16),
    ),
    (
        "shm <= memory",
        "container.resources.shmSizeMB",
        put("container.resources.shmSizeMB", 513),
        put("container.resources.shmSizeMB", 512),
    ),
    (
        "image name",
        "container.image.name",
        put("container.image.name", "bad image"),
        put("container.image.name", "org/my-app_1.2"),
    ),
    (
        "image tag",
        "container.image.tag",
        put("container.image.tag", "v1:2"),
        put("container.image.tag", "v1.2-rc_3"),
    ),
    (
        "image digest",
        "container.image.digest",
        lambda b: b["container"]["image"].update(tag=None, digest="sha256:" + "a" * 31),
        lambda b: (
            b["container"]["image"].pop("tag"),
            b["container"]["image"].update(digest="sha256:" + "a" * 32),
        ),
    ),
    (
        "tag or digest, not both",
        "container.image",
        put("container.image.digest", "sha256:" + "a" * 64),
        put("container.image.tag", "x"),
    ),
    (
        "at most 6 security groups",
        "container.securityProfile.securityGroups",
        put("container.securityProfile.securityGroups", [f"sg-{i}" for i in range(7)]),
        put("container.securityProfile.securityGroups", [f"sg-{i}" for i in range(6)]),
    ),
    (
        "security group grammar",
        "container.securityProfile.securityGroups[0]",
        put("container.securityProfile.securityGroups", ["default"]),
        put("container.securityProfile.securityGroups", ["sg-0abc"]),
    ),
    (
        "iam role",
        "container.securityProfile.iamRole",
        put("container.securityProfile.iamRole", "arn:aws:iam::12:role/x"),
        put("container.securityProfile.iamRole", "arn:aws:iam::123456789012:role/app-role"),
    ),
    (
        "entryPoint size",
        "container.entryPoint",
        put("container.entryPoint", ["x" * 16385]),
        put("container.entryPoint", ["x" * 16384]),
    ),
    (
        "env size",
        "container.env",
        put("container.env", {"A": "x" * 32768}),
        put("container.env", {"A": "x" * 32767}),
    ),
    (
        "env name",
        "container.env",
        put("container.env", {"": "x"}),
        put("container.env", {"_A1": "x"}),
    ),
    (
        "known constraint",
        "container.hardConstraints.constraints.nearby",
        put("container.hardConstraints", {"constraints": {"nearby": "true"}}),
        put("container.hardConstraints", {"constraints": {"UniqueHost": "true"}}),
    ),
    (
        "switch constraint is true or false",
        "container.hardConstraints.constraints.activeHost",
        put("container.hardConstraints", {"constraints": {"activeHost": "yes"}}),
        put("container.softConstraints", {"constraints": {"ACTIVEHOST": "False"}}),
    ),
    (
        "not soft and hard",
        "container.hardConstraints.constraints.zoneBalance",
        lambda b: b["container"].update(
            softConstraints={"constraints": {"ZONEBALANCE": "true"}},
            hardConstraints={"constraints": {"zoneBalance": "true"}},
        ),
        lambda b: b["container"].update(
            softConstraints={"constraints": {"zoneBalance": "true"}},
            hardConstraints={"constraints": {"uniqueHost": "true"}},
        ),
    ),
    (
        "reserved attribute",
        "attributes.titus.agent",
        put("attributes", {"titus.agent": "x"}),
        put("attributes", {"tit.agent": "x"}),
    ),
    ("batch size", "batch.size", put("batch.size", 1001), put("batch.size", 1000)),
    (
        "runtime limit max",
        "batch.runtimeLimitSec",
        put("batch.runtimeLimitSec", "864001"),
        put("batch.runtimeLimitSec", "864000"),
    ),
    (
        "runtime limit min",
        "batch.runtimeLimitSec",
        put("batch.runtimeLimitSec", 4),
        put("batch.runtimeLimitSec", 5),
    ),
    (
        "service max",
        "service.capacity.max",
        service({"min": 0, "desired": 1, "max": 10001}),
        service({"min": 0, "desired": 1, "max": 10000}),
    ),
    (
        "capacity order",
        "service.capacity",
        service({"min": 2, "desired": 1, "max": 3}),
        service({"min": 1, "desired": 1, "max": 1}),
    ),
    (
        "one retry policy",
        "batch.retryPolicy",
        put("batch.retryPolicy", {"immediate": {"retries": 1}, "delayed": {"retries": 1}}),
        put("batch.retryPolicy", {"delayed": {"retries": 1, "delayMs": "1000"}}),
    ),
    ("budget: one policy", "disruptionBudget", budget({**RATE}), budget({**RATE, **POLICY})),
    (
        "budget: one rate",
        "disruptionBudget",
        budget({**POLICY, **RATE, "ratePerInterval": {"intervalMs": 1, "limitPerInterval": 1}}),
        budget({**POLICY, "ratePerInterval": {"intervalMs": 1, "limitPerInterval": 1}}),
    ),
    (
        "budget: percentage",
        "disruptionBudget.availabilityPercentageLimit.percentageOfHealthyContainers",
        budget({**RATE, "availabilityPercentageLimit": {"percentageOfHealthyContainers": 100.5}}),
        budget({**RATE, "availabilityPercentageLimit": {"percentageOfHealthyContainers": 100}}),
    ),
    (
        "budget: time window",
        "disruptionBudget.timeWindows[0].hourlyTimeWindows[0]",
        budget(
            {
                **RATE,
                **POLICY,
                "timeWindows": [
                    {"days": ["Monday"], "hourlyTimeWindows": [{"startHour": 10, "endHour": 10}]}
                ],
            }
        ),
        budget(
            {
                **RATE,
                **POLICY,
                "timeWindows": [
                    {"days": ["Monday"], "hourlyTimeWindows": [{"startHour": 0, "endHour": 24}]}
                ],
            }
        ),
    ),
    (
        "unknown field by name",
        "container.resources.memoryMb",
        put("container.resources.memoryMb", 512),
        put("container.resources.memoryMB", 512),
    ),
    ("email", "owner.teamEmail", put("owner.teamEmail", "team"), put("owner.teamEmail", "a@b.io")),
    # A name's grammar holds to its last character: a trailing line break (which "$" in a
    # pattern lets through) would reach logs, labels and the container's environment.
    (
        "application name ends as it should",
        "applicationName",
        put("applicationName", "app\n"),
        put("applicationName", "app.v2"),
    ),
    (
        "image tag ends as it should",
        "container.image.tag",
        put("container.image.tag", "latest\n"),
        put("container.image.tag", "latest"),
    ),
    (
        "env name ends as it should",
        "container.env.A\n",
        put("container.env", {"A\n": "x"}),
        put("container.env", {"A": "x"}),
    ),
    (
        "security group ends as it should",
        "container.securityProfile.securityGroups[0]",
        put("container.securityProfile.securityGroups", ["sg-1\n"]),
        put("container.securityProfile.securityGroups", ["sg-1"]),
    ),
    (
        "capacity group ends as it should",
        "capacityGroup",
        put("capacityGroup", "web\n"),
        put("capacityGroup", "web"),
    ),
]
