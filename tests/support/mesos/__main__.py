"""Run the Mesos master double as its own process, for tests that start the platform as
processes and want the master to live apart from pytest (or to be killed with SIGKILL).

    python -m tests.support.mesos [--agents N] [--heartbeat S] [--zk HOST:PORT] ...

Prints `MESOS_MASTER=host:port` and `MESOS_CONTROL=host:port` on stdout once it serves, then
runs until SIGTERM/SIGINT, killing its executors on the way out. The control port takes the
operator actions of the in-process double as JSON POSTs: /add_agent, /remove_agent,
/rescind_offer, /rescind_all, /restart, /kill_executor, /teardown_framework, /set_leader; and
GET /state, /calls, /call_times, /events, /executor_starts. `MesosMasterProcess` in fixture.py
is the client of this API.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from tests.support.mesos.fixture import add_default_agents
from tests.support.mesos.httpserver import Request, Response, Server, StreamResponse
from tests.support.mesos.master import Config, MesosMasterDouble


def control_app(double: MesosMasterDouble) -> Any:
    actions = {
        "add_agent": lambda a: {"agent_id": double.add_agent(**a)},
        "remove_agent": lambda a: double.remove_agent(**a),
        "rescind_offer": lambda a: double.rescind_offer(**a),
        "rescind_all": lambda a: {"offer_ids": double.rescind_all(**a)},
        "restart": lambda a: double.restart(**a),
        "kill_executor": lambda a: {"pid": double.kill_executor(**a)},
        "teardown_framework": lambda a: double.teardown_framework(**a),
        "set_leader": lambda a: double.set_leader(**a),
    }

    def app(req: Request) -> Response | StreamResponse:
        name = req.path.strip("/")
        if req.method == "GET":
            with double.lock:
                if name == "state":
                    return Response.json(200, double.state())
                if name == "calls":
                    return Response.json(200, double.calls)
                if name == "call_times":
                    return Response.json(200, double.call_times())
                if name == "events":
                    return Response.json(200, double.events)
                if name == "executor_starts":
                    return Response.json(200, double.executor_starts)
            return Response(404)
        action = actions.get(name)
        if action is None:
            return Response(404, f"unknown action {name}")
        try:
            args = json.loads(req.body or b"{}")
            if "ports" in args:
                args["ports"] = [tuple(r) for r in args["ports"]]
            result = action(args)
        except (KeyError, TypeError, ValueError) as exc:
            return Response(400, f"{type(exc).__name__}: {exc}")
        return Response.json(200, result if result is not None else {})

    return app


#: Collections of the oldest generation only after this many of the middle one: never, in
#: the life of a test or a benchmark run.
FULL_COLLECTION_THRESHOLD = 1_000_000


def hold_off_full_collections() -> None:
    """Keep CPython's full collections from stopping the double. A Mesos master has no
    collector; this process's full collections walk every agent, task and executor it
    holds, 60-140 ms each with 5,000 tasks, several in a benchmark's offer cycle, each
    holding every call then (a framework measured against the double would be charged
    for them). What it holds is its state, not garbage: what is there at start is frozen,
    and the oldest generation is left alone; the young ones are still collected. The
    process lives for a test or a benchmark run, so what cycles reach the oldest
    generation stay until it exits."""
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_THRESHOLD)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.mesos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--agents", type=int, default=2, help="agents added at start")
    parser.add_argument("--heartbeat", type=float, default=15.0)
    parser.add_argument("--allocation-interval", type=float, default=1.0)
    parser.add_argument("--refuse-seconds", type=float, default=5.0)
    parser.add_argument("--update-retry", type=float, default=10.0)
    parser.add_argument("--grace", type=float, default=5.0, help="executor shutdown grace")
    parser.add_argument(
        "--executor-registration-timeout",
        type=float,
        default=60.0,
        help="seconds an executor process has to subscribe before its tasks fail "
        "(a Mesos agent's --executor_registration_timeout, default 1 min)",
    )
    parser.add_argument("--offer-timeout", type=float, default=None)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--zk", default=None, help="ZooKeeper host:port to publish in")
    parser.add_argument("--zk-path", default="/mesos")
    args = parser.parse_args(argv)

    double = MesosMasterDouble(
        Config(
            host=args.host,
            port=args.port,
            heartbeat_interval=args.heartbeat,
            allocation_interval=args.allocation_interval,
            default_refuse_seconds=args.refuse_seconds,
            status_update_retry_seconds=args.update_retry,
            executor_shutdown_grace_period=args.grace,
            executor_registration_timeout=args.executor_registration_timeout,
            offer_timeout=args.offer_timeout,
            work_dir=args.work_dir,
            zk=args.zk,
            zk_path=args.zk_path,
        )
    )
    add_default_agents(double, args.agents)
    hold_off_full_collections()
    double.start()
    control = Server(args.host, args.control_port, control_app(double))
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"MESOS_MASTER={double.address}", flush=True)
    print(f"MESOS_CONTROL={args.host}:{control.port}", flush=True)
    done.wait()
    control.close()
    double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
