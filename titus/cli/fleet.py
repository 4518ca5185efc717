"""What an operator does from a terminal: capacity groups, hosts and instance groups."""

from __future__ import annotations

import argparse
from typing import Any

from titus.cli.client import Api, CommandError, read_json_file, table
from titus.cli.commands import Outcome, arg, command

CAPACITY_PATH = "/api/v2/management/applications"
GROUP_HEADER = ["NAME", "TIER", "INSTANCES", "CPU", "MEMORY MB", "DISK MB", "NETWORK MBPS", "GPU"]
AGENT_HEADER = ["ID", "GROUP", "LIFECYCLE", "HEALTH", "CPU USED", "MEMORY MB USED", "TASKS"]
LIFECYCLES = ["active", "phasedOut", "removable"]

_NAME = arg("name", help="capacity group name")


def group_row(group: dict[str, Any]) -> list[str]:
    return [
        str(group.get("appName", "")),
        str(group.get("tier", "")),
        str(group.get("instanceCount", "")),
        str(group.get("instanceCPU", "")),
        str(group.get("instanceMemoryMB", "")),
        str(group.get("instanceDiskMB", "")),
        str(group.get("instanceNetworkMbs", "")),
        str(group.get("instanceGPU", "")),
    ]


def _number(value: float) -> str:
    return f"{value:g}"


def agent_row(agent: dict[str, Any]) -> list[str]:
    res, used = agent.get("resources", {}), agent.get("usage", {})
    health = "healthy" if agent.get("healthy") else "; ".join(agent.get("healthReasons", []))
    return [
        agent["id"],
        str(agent.get("instanceGroup", "")),
        str(agent.get("lifecycleState", "")),
        health or "unhealthy",
        f"{_number(used.get('cpu', 0))}/{_number(res.get('cpu', 0))}",
        f"{_number(used.get('memoryMB', 0))}/{_number(res.get('memoryMB', 0))}",
        str(len(agent.get("tasks", []))),
    ]


# ---- capacity groups ------------------------------------------------------------------------
@command("capacity-group", "list", "list capacity groups")
def list_groups(api: Api, args: argparse.Namespace) -> Outcome:
    groups = api.call("GET", CAPACITY_PATH)
    return groups, table([group_row(g) for g in groups], GROUP_HEADER)


@command("capacity-group", "get", "show a capacity group", _NAME)
def get_group(api: Api, args: argparse.Namespace) -> Outcome:
    group = api.call("GET", f"{CAPACITY_PATH}/{args.name}")
    return group, table([group_row(group)], GROUP_HEADER)


def _group_body(args: argparse.Namespace, name: str | None) -> dict[str, Any]:
    body = read_json_file(args.file, "capacity group")
    if not isinstance(body, dict):
        raise CommandError(f"capacity group {args.file} must be a JSON object")
    if name is not None:
        body.setdefault("appName", name)
        if body["appName"] != name:
            raise CommandError(f"{args.file} names group {body['appName']!r}, not {name!r}")
    return body


@command(
    "capacity-group",
    "create",
    "create a capacity group (JSON file as the API takes it, or - for stdin)",
    arg("file"),
)
def create_group(api: Api, args: argparse.Namespace) -> Outcome:
    body = _group_body(args, None)
    out = api.call("POST", CAPACITY_PATH, json=body)
    return out, f"capacity group {body.get('appName')} created"


@command(
    "capacity-group",
    "update",
    "replace a capacity group's reservation (JSON file, or - for stdin)",
    _NAME,
    arg("file"),
)
def update_group(api: Api, args: argparse.Namespace) -> Outcome:
    out = api.call("PUT", f"{CAPACITY_PATH}/{args.name}", json=_group_body(args, args.name))
    return out, f"capacity group {args.name} updated"


@command("capacity-group", "delete", "delete a capacity group", _NAME)
def delete_group(api: Api, args: argparse.Namespace) -> Outcome:
    out = api.call("DELETE", f"{CAPACITY_PATH}/{args.name}")
    return out, f"capacity group {args.name} deleted"


# ---- hosts ----------------------------------------------------------------------------------
@command(
    "host",
    "list",
    "list hosts: health (and why not), lifecycle, use and tasks",
    arg("--unhealthy", action="store_true", help="only hosts that take no work"),
)
def list_agents(api: Api, args: argparse.Namespace) -> Outcome:
    items = api.call("GET", "/api/v3/agents")["items"]
    if args.unhealthy:
        items = [a for a in items if not a.get("healthy")]
    return items, table([agent_row(a) for a in items], AGENT_HEADER)


@command("instance-group", "list", "list instance groups with their lifecycle and host count")
def list_instance_groups(api: Api, args: argparse.Namespace) -> Outcome:
    items = api.call("GET", "/api/v3/instanceGroups")["items"]
    rows = [[g["id"], g["lifecycleState"], str(g["hosts"])] for g in items]
    return items, table(rows, ["ID", "LIFECYCLE", "HOSTS"])


@command(
    "instance-group",
    "lifecycle",
    "set an instance group's lifecycle: phasedOut moves its tasks away, removable too",
    arg("name"),
    arg("state", choices=LIFECYCLES),
)
def set_lifecycle(api: Api, args: argparse.Namespace) -> Outcome:
    out = api.call(
        "PUT", f"/api/v3/instanceGroups/{args.name}/lifecycle", json={"state": args.state}
    )
    return out, f"instance group {args.name}: {args.state}"
