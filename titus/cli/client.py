"""The job and task commands: a thin client of the REST API, tables for people, JSON for
scripts."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "127.0.0.1:7001"
#: Where the CLI looks for a token when neither --token-file nor TITUS_TOKEN says.
DEFAULT_TOKEN_FILE = Path("~/.config/titus/token")
#: A token is a line, not a document: a larger file is not a token file.
TOKEN_FILE_MAX_BYTES = 4096


class CommandError(Exception):
    pass


def _base(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else f"http://{url}"


def find_token(token_file: str = "") -> str:
    """The bearer token the CLI sends: from `--token-file`, else `TITUS_TOKEN`, else the
    file `TITUS_TOKEN_FILE` names, else ~/.config/titus/token if it exists; "" for none.

    A token file that others may read is refused, as ssh refuses such a key: a token in
    it is no longer a secret."""
    if not token_file and os.environ.get("TITUS_TOKEN", "").strip():
        return os.environ["TITUS_TOKEN"].strip()
    explicit = token_file or os.environ.get("TITUS_TOKEN_FILE", "")
    path = Path(explicit or DEFAULT_TOKEN_FILE).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        if explicit:
            raise CommandError(f"token file {path} does not exist") from None
        return ""
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CommandError(f"token file {path} is open to other users: chmod 600 {path}")
    if info.st_size > TOKEN_FILE_MAX_BYTES:
        raise CommandError(f"token file {path} is larger than a token ({info.st_size} bytes)")
    token = path.read_text().strip()
    if not token or any(c.isspace() for c in token):
        raise CommandError(f"token file {path} must hold one token on one line")
    return token


class Api:
    def __init__(self, url: str, caller: str = "", token: str = ""):
        headers = {"X-Titus-CallerId": caller} if caller else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=_base(url), timeout=30.0, headers=headers)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CommandError(f"cannot reach the API at {self.http.base_url}: {exc}") from None
        if r.status_code >= 400:
            raise refusal(r)
        return r.json() if r.content else {}


def refusal(r: httpx.Response) -> CommandError:
    """The API's refusal as a message: status, message and each problem by field."""
    try:
        body = r.json()
        message = body.get("message", r.text)
        for e in body.get("errors", []):
            message += f"\n  {e['path']}: {e['message']}"
    except ValueError:
        message = r.text
    return CommandError(f"{r.status_code}: {message}")


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _job_row(job: dict[str, Any]) -> list[str]:
    d = job["jobDescriptor"]
    if "batch" in d:
        kind, size = "BATCH", str(d["batch"].get("size", 1))
    else:
        cap = d["service"]["capacity"]
        kind, size = "SERVICE", f"{cap.get('min', 0)}/{cap.get('desired', 0)}/{cap.get('max', 0)}"
    status = job["status"]
    return [
        job["id"],
        d["applicationName"],
        kind,
        size,
        status["state"],
        status.get("reasonCode", ""),
    ]


def _task_row(task: dict[str, Any]) -> list[str]:
    s = task["status"]
    ctx = task.get("taskContext", {})
    return [
        task["id"],
        task["jobId"],
        ctx.get("task.index", ""),
        s["state"],
        s.get("reasonCode", ""),
        ctx.get("agent.host", ""),
        s.get("reasonMessage", "")[:60],
    ]


JOB_HEADER = ["ID", "APP", "TYPE", "SIZE", "STATE", "REASON"]
TASK_HEADER = ["ID", "JOB", "INDEX", "STATE", "REASON", "HOST", "MESSAGE"]


def _all_pages(api: Api, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params = {**params, "pageSize": "500"}
    while True:
        page = api.call("GET", path, params=params)
        items.extend(page["items"])
        if not page["pagination"]["hasMore"]:
            return items
        params["cursor"] = page["pagination"]["cursor"]


Row = Callable[[dict[str, Any]], list[str]]


def _listing(
    api: Api, path: str, params: dict[str, str], row: Row, header: list[str]
) -> tuple[list[dict[str, Any]], str]:
    """Every item of a paged listing, and its table."""
    items = _all_pages(api, path, params)
    return items, table([row(item) for item in items], header)


def _detail(api: Api, path: str, row: Row, header: list[str]) -> tuple[dict[str, Any], str]:
    """One resource, and its table row followed by its whole JSON document."""
    item = api.call("GET", path)
    return item, table([row(item)], header) + "\n\n" + json.dumps(item, indent=2)


def run(args: argparse.Namespace) -> int:
    api = Api(
        args.url, getattr(args, "caller", "") or "", find_token(getattr(args, "token_file", ""))
    )
    out: Any
    text: str
    if args.resource == "job":
        if args.action == "submit":
            path = Path(args.file)
            try:
                body = json.loads(sys.stdin.read() if args.file == "-" else path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise CommandError(f"cannot read job descriptor {args.file}: {exc}") from None
            out = api.call("POST", "/api/v3/jobs", json=body)
            text = out["id"]
        elif args.action == "list":
            params = {}
            if args.app:
                params["applicationName"] = args.app
            if args.type:
                params["jobType"] = args.type
            out, text = _listing(api, "/api/v3/jobs", params, _job_row, JOB_HEADER)
        elif args.action == "get":
            out, text = _detail(api, f"/api/v3/jobs/{args.id}", _job_row, JOB_HEADER)
        elif args.action == "kill":
            out = api.call("DELETE", f"/api/v3/jobs/{args.id}")
            text = f"kill requested for job {args.id}"
        elif args.action == "resize":
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
            text = f"job {args.id}: min {cap['min']}, desired {cap['desired']}, max {cap['max']}"
        else:
            raise CommandError(f"unknown job command {args.action}")
    else:
        if args.action == "list":
            params = {"jobIds": args.job} if args.job else {}
            out, text = _listing(api, "/api/v3/tasks", params, _task_row, TASK_HEADER)
        elif args.action == "get":
            out, text = _detail(api, f"/api/v3/tasks/{args.id}", _task_row, TASK_HEADER)
        elif args.action == "kill":
            params = {"shrink": "true"} if args.shrink else {}
            out = api.call("DELETE", f"/api/v3/tasks/{args.id}", params=params)
            text = f"kill requested for task {args.id}" + (
                " (shrinking the job)" if args.shrink else ""
            )
        elif args.action == "logs":
            return _logs(api, args)
        else:
            raise CommandError(f"unknown task command {args.action}")
    print(json.dumps(out, indent=2) if args.json else text)
    return 0


def _logs(api: Api, args: argparse.Namespace) -> int:
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
    return 0


def add_commands(sub: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=DEFAULT_URL, help=f"API address (default {DEFAULT_URL})")
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.add_argument("--caller", default="", help="caller id sent as X-Titus-CallerId")
        p.add_argument(
            "--token-file",
            default="",
            help="file holding the API token (else TITUS_TOKEN, TITUS_TOKEN_FILE, "
            "~/.config/titus/token)",
        )

    job = sub.add_parser("job", help="submit, list, inspect, resize and kill jobs")
    job_sub = job.add_subparsers(dest="action", required=True)
    p = job_sub.add_parser("submit", help="submit a job descriptor (JSON file, or - for stdin)")
    p.add_argument("file")
    common(p)
    p = job_sub.add_parser("list", help="list active jobs")
    p.add_argument("--app", help="only jobs of this application")
    p.add_argument("--type", choices=["BATCH", "SERVICE", "batch", "service"])
    common(p)
    for action in ("get", "kill"):
        p = job_sub.add_parser(action, help=f"{action} a job")
        p.add_argument("id")
        common(p)
    p = job_sub.add_parser("resize", help="change a service job's capacity")
    p.add_argument("id")
    p.add_argument("--desired", type=int, required=True)
    p.add_argument("--min", type=int)
    p.add_argument("--max", type=int)
    common(p)

    task = sub.add_parser("task", help="list, inspect and kill tasks, and read their logs")
    task_sub = task.add_subparsers(dest="action", required=True)
    p = task_sub.add_parser("list", help="list tasks (of one job with --job)")
    p.add_argument("--job")
    common(p)
    p = task_sub.add_parser("get", help="show a task")
    p.add_argument("id")
    common(p)
    p = task_sub.add_parser("kill", help="kill a task")
    p.add_argument("id")
    p.add_argument("--shrink", action="store_true", help="lower the job's desired size too")
    common(p)
    p = task_sub.add_parser("logs", help="print a task's output")
    p.add_argument("id")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing while it runs")
    p.add_argument("--stream", choices=["stdout", "stderr"], default="stdout")
    common(p)
