"""`titus top`: the cluster on one screen, redrawn every few seconds (or once, `--once`).

Jobs and tasks by state, the hosts' health and use, and why tasks wait (the most common
scheduler reasons first), read from the REST API like every other client command.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

from titus.cli.client import Api, all_pages, table
from titus.cli.commands import Outcome, arg, command

#: How many waiting tasks' reasons are asked for per screen (one call each).
REASONS_ASKED = 50
CLEAR = "\x1b[H\x1b[2J"


def snapshot(api: Api) -> dict[str, Any]:
    jobs = all_pages(api, "/api/v3/jobs", {})
    tasks = all_pages(api, "/api/v3/tasks", {})
    hosts = api.call("GET", "/api/v3/agents")["items"]
    waiting = [t for t in tasks if t["status"]["state"] == "Accepted"]
    reasons: Counter[str] = Counter()
    for t in waiting[:REASONS_ASKED]:
        result = api.call("GET", f"/api/v3/scheduler/results/{t['id']}")
        reasons[result.get("message") or "not tried yet"] += 1
    return {
        "jobs": dict(Counter(j["status"]["state"] for j in jobs)),
        "tasks": dict(Counter(t["status"]["state"] for t in tasks)),
        "hosts": len(hosts),
        "healthyHosts": sum(1 for h in hosts if h.get("healthy")),
        "cpu": [
            sum(h["usage"].get("cpu", 0.0) for h in hosts),
            sum(h["resources"].get("cpu", 0.0) for h in hosts),
        ],
        "memoryMB": [
            sum(h["usage"].get("memoryMB", 0.0) for h in hosts),
            sum(h["resources"].get("memoryMB", 0.0) for h in hosts),
        ],
        "waiting": len(waiting),
        "reasons": reasons.most_common(5),
    }


def counts(by_state: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(by_state.items())) or "none"


def screen(s: dict[str, Any]) -> str:
    lines = [
        f"titus top   {time.strftime('%H:%M:%S')}",
        f"jobs:  {counts(s['jobs'])}",
        f"tasks: {counts(s['tasks'])}",
        f"hosts: {s['healthyHosts']}/{s['hosts']} healthy; "
        f"CPU {s['cpu'][0]:g}/{s['cpu'][1]:g} used; "
        f"memory MB {s['memoryMB'][0]:g}/{s['memoryMB'][1]:g} used",
        f"waiting for placement: {s['waiting']}",
    ]
    if s["reasons"]:
        lines.append(table([[str(n), why] for why, n in s["reasons"]], ["TASKS", "WHY WAITING"]))
    return "\n".join(lines)


@command(
    "cluster",
    "top",
    "the cluster on one screen, redrawn until Ctrl-C (also `titus top`)",
    arg("--once", action="store_true", help="print one screen and exit"),
    arg("--interval", type=float, default=2.0, help="seconds between screens (default 2)"),
)
def top(api: Api, args: argparse.Namespace) -> Outcome | None:
    if args.once or args.json:
        s = snapshot(api)
        return s, screen(s)
    try:
        while True:
            sys.stdout.write(CLEAR + screen(snapshot(api)) + "\n")
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return None
