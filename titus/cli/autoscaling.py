"""`titus autoscaling`: the scaling policies of service jobs (`/api/v3/autoscaling`).

A policy file is the `scalingPolicy` of Titus's PutPolicyRequest as JSON: either
`{"targetPolicyDescriptor": {...}}` or `{"stepPolicyDescriptor": {...}}` (see
docs/autoscaling.md and examples/)."""

from __future__ import annotations

import argparse
from typing import Any

from titus.cli.client import Api, read_json_file, table
from titus.cli.commands import Outcome, arg, command

HEADER = ["ID", "JOB", "TYPE", "STATE", "METRIC", "REASON"]
URL = "/api/v3/autoscaling"


def policy_row(item: dict[str, Any]) -> list[str]:
    policy = item.get("scalingPolicy", {})
    step = policy.get("stepPolicyDescriptor")
    if step is not None:
        alarm = step.get("alarmConfig", {})
        operator = {
            "GreaterThanOrEqualToThreshold": ">=",
            "GreaterThanThreshold": ">",
            "LessThanThreshold": "<",
            "LessThanOrEqualToThreshold": "<=",
        }.get(alarm.get("comparisonOperator", "GreaterThanOrEqualToThreshold"), "?")
        kind, metric = (
            "step",
            f"{alarm.get('metricName', '')} {operator} {alarm.get('threshold', '')}",
        )
    else:
        target = policy.get("targetPolicyDescriptor", {})
        custom = target.get("customizedMetricSpecification", {})
        kind, metric = (
            "target",
            f"{custom.get('metricName', '')} -> {target.get('targetValue', '')}",
        )
    status = item.get("policyState", {})
    return [
        item["id"]["id"],
        item["jobId"],
        kind,
        status.get("state", ""),
        metric,
        status.get("pendingReason", "")[:60],
    ]


@command(
    "autoscaling",
    "list",
    "list scaling policies (every job's, or one job's)",
    arg("--job", default="", help="only this job's"),
)
def list_policies(api: Api, args: argparse.Namespace) -> Outcome:
    path = f"{URL}/scalingPolicies/{args.job}" if args.job else f"{URL}/scalingPolicies"
    items = api.call("GET", path)["items"]
    return items, table([policy_row(i) for i in items], HEADER)


@command("autoscaling", "get", "show one scaling policy", arg("id", help="policy id"))
def get_policy(api: Api, args: argparse.Namespace) -> Outcome:
    [item] = api.call("GET", f"{URL}/scalingPolicy/{args.id}")["items"]
    return item, table([policy_row(item)], HEADER)


@command(
    "autoscaling",
    "set",
    "set a scaling policy on a service job (policy JSON file, or - for stdin); prints its id",
    arg("job", help="job id"),
    arg("file"),
)
def set_policy(api: Api, args: argparse.Namespace) -> Outcome:
    policy = read_json_file(args.file, "scaling policy")
    out = api.call(
        "POST", f"{URL}/scalingPolicy", json={"jobId": args.job, "scalingPolicy": policy}
    )
    return out, str(out["id"])


@command(
    "autoscaling",
    "update",
    "replace a scaling policy (policy JSON file, or - for stdin)",
    arg("id", help="policy id"),
    arg("file"),
)
def update_policy(api: Api, args: argparse.Namespace) -> Outcome:
    policy = read_json_file(args.file, "scaling policy")
    body = {"policyId": {"id": args.id}, "scalingPolicy": policy}
    out = api.call("PUT", f"{URL}/scalingPolicy", json=body)
    return out, f"scaling policy {args.id}: replaced (Pending until applied)"


@command("autoscaling", "delete", "delete a scaling policy", arg("id", help="policy id"))
def delete_policy(api: Api, args: argparse.Namespace) -> Outcome:
    out = api.call("DELETE", f"{URL}/scalingPolicy/{args.id}")
    return out, f"scaling policy {args.id}: deleting"
