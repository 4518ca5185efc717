"""What an engineer who submits work does from a terminal: jobs and their tasks, through
every endpoint of the job API (`/api/v3/jobs`, `/api/v3/tasks`, observe, why pending)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx

from titus.cli.client import (
    Api,
    CommandError,
    detail,
    key_values,
    listing,
    read_json_file,
    refusal,
    table,
)
from titus.cli.commands import Outcome, arg, command
from titus.cli.progress import wait_for_job
from titus.model.names import AgentContext, TaskContextKey
from titus.model.states import JobState, TaskState

JOB_HEADER = ["ID", "APP", "TYPE", "SIZE", "STATE", "REASON"]
TASK_HEADER = ["ID", "JOB", "INDEX", "STATE", "REASON", "HOST", "MESSAGE"]

_JOB_ID = arg("id", help="job id")
_TASK_ID = arg("id", help="task id")


def job_row(job: dict[str, Any]) -> list[str]:
    d = job["jobDescriptor"]
    if "batch" in d:
        kind, size = "BATCH", str(d["batch"].get("size", 1))
    else:
        cap = d["service"]["capacity"]
        kind, size = "SERVICE", f"{cap.get('min', 0)}/{cap.get('desired', 0)}/{cap.get('max', 0)}"
        if d["service"].get("enabled") is False:
            kind += " (disabled)"
    status = job["status"]
    return [
        job["id"],
        d["applicationName"],
        kind,
        size,
        status["state"],
        status.get("reasonCode", ""),
    ]


def task_row(task: dict[str, Any]) -> list[str]:
    s = task["status"]
    ctx = task.get("taskContext", {})
    health = ctx.get(TaskContextKey.HEALTH, "")
    return [
        task["id"],
        task["jobId"],
        ctx.get(TaskContextKey.INDEX, ""),
        f"{s['state']} ({health})" if health and s["state"] == "Started" else s["state"],
        s.get("reasonCode", ""),
        ctx.get(AgentContext.HOST, ""),
        s.get("reasonMessage", "")[:60],
    ]


# ---- jobs -----------------------------------------------------------------------------------
@command(
    "job",
    "submit",
    "submit a job descriptor (JSON file, or - for stdin)",
    arg("file"),
    arg(
        "--wait",
        action="store_true",
        help="show progress until a service job's tasks run or a batch job finishes",
    ),
    arg("--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)"),
)
def submit(api: Api, args: argparse.Namespace) -> Outcome:
    out = api.call("POST", "/api/v3/jobs", json=read_json_file(args.file, "job descriptor"))
    if not args.wait:
        return out, out["id"]
    job = wait_for_job(api, out["id"], args.timeout)
    status = job["status"]
    return job, f"{job['id']} {status['state']} {status.get('reasonCode', '')}".rstrip()


@command(
    "job",
    "list",
    "list active jobs, filtered as the API filters them",
    arg("--app", help="only jobs of this application"),
    arg("--type", choices=["BATCH", "SERVICE", "batch", "service"]),
    arg("--state", choices=[s.value for s in JobState], help="only jobs in this state"),
    arg("--capacity-group", help="only jobs of this capacity group"),
    arg(
        "--attribute",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only jobs with this attribute (repeat: all must match)",
    ),
)
def list_jobs(api: Api, args: argparse.Namespace) -> Outcome:
    params: dict[str, str] = {}
    for name, value in (
        ("applicationName", args.app),
        ("jobType", args.type),
        ("jobState", args.state),
        ("capacityGroup", args.capacity_group),
    ):
        if value:
            params[name] = value
    if args.attribute:
        wanted = key_values(args.attribute, "--attribute")
        params["attributes"] = ",".join(f"{k}:{v}" for k, v in wanted.items())
        params["attributes.op"] = "and"
    return listing(api, "/api/v3/jobs", params, job_row, JOB_HEADER)


@command("job", "get", "show a job, its status history included", _JOB_ID)
def get_job(api: Api, args: argparse.Namespace) -> Outcome:
    return detail(api, f"/api/v3/jobs/{args.id}", job_row, JOB_HEADER)


@command("job", "kill", "kill a job and all its tasks", _JOB_ID)
def kill_job(api: Api, args: argparse.Namespace) -> Outcome:
    return api.call("DELETE", f"/api/v3/jobs/{args.id}"), f"kill requested for job {args.id}"


@command(
    "job",
    "resize",
    "change a service job's capacity (min and max follow desired when they must)",
    _JOB_ID,
    arg("--desired", type=int, required=True),
    arg("--min", type=int),
    arg("--max", type=int),
)
def resize(api: Api, args: argparse.Namespace) -> Outcome:
    job = api.call("GET", f"/api/v3/jobs/{args.id}")
    service = job["jobDescriptor"].get("service")
    if service is None:
        raise CommandError(f"job {args.id} is a batch job; only service jobs resize")
    cap = dict(service["capacity"])
    cap["desired"] = args.desired
    if args.min is not None:
        cap["min"] = args.min
    if args.max is not None:
        cap["max"] = args.max
    cap["min"] = min(cap.get("min", 0), cap["desired"])
    cap["max"] = max(cap.get("max", 0), cap["desired"])
    out = api.call("PUT", f"/api/v3/jobs/{args.id}/instances", json=cap)
    return out, f"job {args.id}: min {cap['min']}, desired {cap['desired']}, max {cap['max']}"


@command("job", "enable", "let a service job create and replace tasks again", _JOB_ID)
def enable(api: Api, args: argparse.Namespace) -> Outcome:
    return api.call("POST", f"/api/v3/jobs/{args.id}/enable"), f"job {args.id} enabled"


@command("job", "disable", "keep a service job's tasks but create and replace none", _JOB_ID)
def disable(api: Api, args: argparse.Namespace) -> Outcome:
    return api.call("POST", f"/api/v3/jobs/{args.id}/disable"), f"job {args.id} disabled"


@command(
    "job",
    "processes",
    "allow or forbid changes of a service job's desired size",
    _JOB_ID,
    arg("--increase", choices=["allowed", "disabled"], help="raising desired"),
    arg("--decrease", choices=["allowed", "disabled"], help="lowering desired"),
)
def processes(api: Api, args: argparse.Namespace) -> Outcome:
    if args.increase is None and args.decrease is None:
        raise CommandError("say what to change: --increase and/or --decrease")
    job = api.call("GET", f"/api/v3/jobs/{args.id}")
    service = job["jobDescriptor"].get("service")
    if service is None:
        raise CommandError(f"job {args.id} is a batch job; only service jobs have processes")
    body = dict(service.get("serviceJobProcesses") or {})
    if args.increase is not None:
        body["disableIncreaseDesired"] = args.increase == "disabled"
    if args.decrease is not None:
        body["disableDecreaseDesired"] = args.decrease == "disabled"
    out = api.call("PUT", f"/api/v3/jobs/{args.id}/jobprocesses", json=body)
    return out, f"job {args.id}: " + ", ".join(f"{k} {v}" for k, v in sorted(body.items()))


@command(
    "job",
    "budget",
    "replace a job's disruption budget (JSON file, or - for stdin)",
    _JOB_ID,
    arg("file"),
)
def budget(api: Api, args: argparse.Namespace) -> Outcome:
    body = read_json_file(args.file, "disruption budget")
    out = api.call("PUT", f"/api/v3/jobs/{args.id}/disruptionBudget", json=body)
    return out, f"job {args.id}: disruption budget replaced"


@command(
    "job",
    "observe",
    "print changes of jobs and tasks as they happen (a snapshot first)",
    arg("--job", action="append", default=[], help="only this job (repeat for more)"),
    arg("--snapshot-only", action="store_true", help="stop once the snapshot is printed"),
)
def observe(api: Api, args: argparse.Namespace) -> None:
    params = {"jobIds": ",".join(args.job)} if args.job else {}
    for kind, data in _events(api, "/api/v3/jobs/observe", params):
        if args.json:
            print(json.dumps({"event": kind, "data": data}), flush=True)
        else:
            print(_event_line(kind, data), flush=True)
        if kind == "SnapshotEnd" and args.snapshot_only:
            return


def _events(api: Api, path: str, params: dict[str, str]) -> Iterator[tuple[str, Any]]:
    """Server-Sent Events as (event, data) pairs; comments (keep-alives) are skipped."""
    try:
        with api.http.stream("GET", path, params=params, timeout=None) as r:
            if r.status_code >= 400:
                r.read()
                raise refusal(r)
            kind, data = "message", ""
            for line in r.iter_lines():
                if not line:
                    if data:
                        yield kind, json.loads(data)
                    kind, data = "message", ""
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
    except httpx.HTTPError as exc:
        raise CommandError(f"observe stream broke: {exc}") from None


def _event_line(kind: str, data: dict[str, Any]) -> str:
    if kind == "job":
        job = data["job"]
        return f"job   {data['op']:<8} " + "  ".join(job_row(job))
    if kind == "task":
        return f"task  {data['op']:<8} " + "  ".join(task_row(data["task"]))
    return f"{kind}  {json.dumps(data)}"


# ---- attributes of jobs and of tasks --------------------------------------------------------
def _set_attributes(api: Api, collection: str, ident: str, pairs: list[str]) -> Any:
    body = {"attributes": key_values(pairs, "attributes")}
    return api.call("PUT", f"/api/v3/{collection}/{ident}/attributes", json=body)


def _unset_attributes(api: Api, collection: str, ident: str, keys: list[str]) -> Any:
    params = {"keys": ",".join(keys)}
    return api.call("DELETE", f"/api/v3/{collection}/{ident}/attributes", params=params)


def _attributes_of(item: dict[str, Any]) -> dict[str, str]:
    """A job's attributes live in its descriptor, a task's beside it."""
    if "jobDescriptor" in item:
        return dict(item["jobDescriptor"].get("attributes") or {})
    return dict(item.get("attributes") or {})


def _attribute_commands(resource: str, collection: str) -> None:
    """`attributes`, `set-attributes` and `unset-attributes` for one resource: the API
    treats a job's attributes and a task's alike, and so do these. `attributes` shows
    them, and with `--set`/`--unset` changes them first through the same calls as the
    other two, so one command covers looking and changing."""
    ident = arg("id", help=f"{resource} id")

    @command(
        resource,
        "set-attributes",
        f"add or change a {resource}'s attributes",
        ident,
        arg("pairs", nargs="+", metavar="KEY=VALUE"),
    )
    def set_attributes(api: Api, args: argparse.Namespace) -> Outcome:
        out = _set_attributes(api, collection, args.id, args.pairs)
        keys = key_values(args.pairs, "attributes")
        return out, f"{resource} {args.id}: set {', '.join(sorted(keys))}"

    @command(
        resource,
        "unset-attributes",
        f"remove attributes of a {resource}",
        ident,
        arg("keys", nargs="+"),
    )
    def unset_attributes(api: Api, args: argparse.Namespace) -> Outcome:
        out = _unset_attributes(api, collection, args.id, args.keys)
        return out, f"{resource} {args.id}: removed {', '.join(args.keys)}"

    @command(
        resource,
        "attributes",
        f"show a {resource}'s attributes; --set and --unset change them first",
        ident,
        arg("--set", dest="pairs", action="append", default=[], metavar="KEY=VALUE"),
        arg("--unset", dest="keys", action="append", default=[], metavar="KEY"),
    )
    def attributes(api: Api, args: argparse.Namespace) -> Outcome:
        if args.pairs:
            _set_attributes(api, collection, args.id, args.pairs)
        if args.keys:
            _unset_attributes(api, collection, args.id, args.keys)
        shown = _attributes_of(api.call("GET", f"/api/v3/{collection}/{args.id}"))
        rows = [[key, shown[key]] for key in sorted(shown)]
        return shown, table(rows, ["KEY", "VALUE"]) if rows else f"{resource} {args.id}: none"


_attribute_commands("job", "jobs")
_attribute_commands("task", "tasks")


# ---- tasks ----------------------------------------------------------------------------------
@command(
    "task",
    "list",
    "list tasks (of one job with --job)",
    arg("--job"),
    arg("--state", choices=[s.value for s in TaskState], help="only tasks in this state"),
)
def list_tasks(api: Api, args: argparse.Namespace) -> Outcome:
    params = {"jobIds": args.job} if args.job else {}
    if args.state:
        params["taskStates"] = args.state
    return listing(api, "/api/v3/tasks", params, task_row, TASK_HEADER)


@command("task", "get", "show a task", _TASK_ID)
def get_task(api: Api, args: argparse.Namespace) -> Outcome:
    return detail(api, f"/api/v3/tasks/{args.id}", task_row, TASK_HEADER)


@command(
    "task",
    "kill",
    "kill a task",
    _TASK_ID,
    arg("--shrink", action="store_true", help="lower the job's desired size too"),
)
def kill_task(api: Api, args: argparse.Namespace) -> Outcome:
    params = {"shrink": "true"} if args.shrink else {}
    out = api.call("DELETE", f"/api/v3/tasks/{args.id}", params=params)
    return out, f"kill requested for task {args.id}" + (
        " (shrinking the job)" if args.shrink else ""
    )


@command(
    "task",
    "logs",
    "print a task's output",
    _TASK_ID,
    arg("-f", "--follow", action="store_true", help="keep printing while it runs"),
    arg("--stream", choices=["stdout", "stderr"], default="stdout"),
)
def logs(api: Api, args: argparse.Namespace) -> None:
    params = {"stream": args.stream}
    if args.follow:
        params["follow"] = "true"
    try:
        with api.http.stream(
            "GET", f"/api/v3/tasks/{args.id}/logs", params=params, timeout=None
        ) as r:
            if r.status_code >= 400:
                r.read()
                raise refusal(r)
            for chunk in r.iter_raw():
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
    except httpx.HTTPError as exc:
        raise CommandError(f"cannot read logs: {exc}") from None


@command(
    "task",
    "move",
    "move a running task to another compatible service job, without a restart",
    _TASK_ID,
    arg("--to", required=True, metavar="JOB", help="the job that takes the task"),
)
def move(api: Api, args: argparse.Namespace) -> Outcome:
    task = api.call("GET", f"/api/v3/tasks/{args.id}")
    body = {"taskId": args.id, "sourceJobId": task["jobId"], "targetJobId": args.to}
    out = api.call("POST", "/api/v3/tasks/move", json=body)
    return out, f"move of task {args.id} from job {task['jobId']} to job {args.to} requested"


@command("task", "why", "why a task is still waiting: the scheduler's last attempt", _TASK_ID)
def why(api: Api, args: argparse.Namespace) -> Outcome:
    out = api.call("GET", f"/api/v3/scheduler/results/{args.id}")
    lines = [str(out.get("message", ""))]
    refused = out.get("refusedBy") or {}
    if refused:
        rows = [[rule, str(count)] for rule, count in sorted(refused.items(), key=lambda r: -r[1])]
        lines += ["", table(rows, ["RULE", "HOSTS REFUSED"])]
    if "hostsConsidered" in out:
        lines.append(f"\nhosts considered: {out['hostsConsidered']}")
    return out, "\n".join(lines)
