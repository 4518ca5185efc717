"""The user and operator commands as one table: each is a resource, an action, its
arguments and a function from the API and the parsed arguments to an outcome.

A command declares its own arguments next to its code, so adding one is one function with
one decorator; the parser and the dispatcher are built from the table and never change.
An outcome is what `--json` prints (the API's answer) and what a person reads (a table or a
sentence). Streaming commands (logs, observe) print as they go and return None.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from titus.cli.client import DEFAULT_URL, Api, ca_file, find_token

Outcome = tuple[Any, str]
Handler = Callable[[Api, argparse.Namespace], Outcome | None]


@dataclass(frozen=True)
class Arg:
    flags: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True)
class Command:
    resource: str
    action: str
    help: str
    handler: Handler
    args: tuple[Arg, ...]


#: What each resource is, for `titus --help`.
RESOURCES: dict[str, str] = {
    "job": "submit, list, inspect, change and kill jobs",
    "task": "list, inspect, kill and move tasks, read their logs, ask why one waits",
    "capacity-group": "list and manage capacity groups (reservations per application)",
    "host": "list the hosts (agents) with their health, use and tasks",
    "instance-group": "list instance groups and change their lifecycle (phase out hosts)",
    "completion": "print a shell completion script for titus",
    "cluster": "the whole cluster at a glance",
    "autoscaling": "list, set, replace and delete the scaling policies of service jobs",
}

#: Short forms: `titus top` is `titus cluster top`, and so on.
ALIASES: dict[str, list[str]] = {
    "top": ["cluster", "top"],
    "agents": ["host", "list"],
    "why": ["task", "why"],
}


def expand_aliases(argv: list[str]) -> list[str]:
    if argv and argv[0] in ALIASES:
        return [*ALIASES[argv[0]], *argv[1:]]
    return argv


COMMANDS: dict[tuple[str, str], Command] = {}


def command(resource: str, action: str, help: str, *args: Arg) -> Callable[[Handler], Handler]:
    if resource not in RESOURCES:
        raise ValueError(f"unknown resource {resource!r}")

    def register(handler: Handler) -> Handler:
        COMMANDS[(resource, action)] = Command(resource, action, help, handler, args)
        return handler

    return register


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=DEFAULT_URL, help=f"API address (default {DEFAULT_URL})")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--caller", default="", help="caller id sent as X-Titus-CallerId")
    p.add_argument(
        "--token-file",
        default="",
        help="file holding the API token (else TITUS_TOKEN, TITUS_TOKEN_FILE, "
        "~/.config/titus/token)",
    )
    p.add_argument(
        "--ca-file",
        default="",
        help="CA bundle to check an https API with (else TITUS_CA_FILE, else the system's)",
    )


def _load() -> None:
    """The modules whose decorators fill the table."""
    from titus.cli import autoscaling, completion, fleet, jobs, top  # noqa: F401


def add_commands(sub: Any) -> None:
    _load()
    parsers: dict[str, Any] = {}
    for (resource, action), cmd in COMMANDS.items():
        if resource not in parsers:
            parent = sub.add_parser(resource, help=RESOURCES[resource])
            parsers[resource] = parent.add_subparsers(dest="action", required=True)
        p = parsers[resource].add_parser(action, help=cmd.help, description=cmd.help)
        for a in cmd.args:
            p.add_argument(*a.flags, **a.options)
        _common(p)


def client_resources() -> frozenset[str]:
    """The first words of the commands that are clients of the API."""
    return frozenset(RESOURCES)


def run(args: argparse.Namespace) -> int:
    _load()
    cmd = COMMANDS[(args.resource, args.action)]
    api = Api(args.url, args.caller, find_token(args.token_file), ca_file(args.ca_file))
    outcome = cmd.handler(api, args)
    if outcome is not None:
        out, text = outcome
        print(json.dumps(out, indent=2) if args.json else text)
    return 0
