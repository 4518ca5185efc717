"""The `titus` command: run the platform's parts, and work with jobs and tasks.

titus local                 the all-in-one platform (API, master, one agent)
titus api | master | agent  one part each, for a cluster of processes
titus job | task | capacity-group | host | instance-group ...
                            clients of the REST API, for users and operators
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from titus import collector
from titus.cli.client import CommandError
from titus.cli.commands import add_commands, client_resources, expand_aliases
from titus.cli.commands import run as run_client
from titus.model.identity import AgentCredentials
from titus.settings import LOCAL_DEFAULTS, Settings, load_settings


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore", "kazoo", "urllib3", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _coordinator(url: str, settings: Settings | None = None, agent_id: str = "") -> Any:
    """`local` (one process) or `zk://host:port[,host:port]/root[?session_timeout=s]`.

    The session timeout is how long a master that died holds leadership before another
    takes over; the URL's value wins over the setting. With `agent_id`, this process is
    that agent's host: it joins with the agent's own identity when it has one
    (agent_credentials_file), and with the platform's credentials only without."""
    if url in ("", "local"):
        from titus.coord.local import LocalCoordinator

        return LocalCoordinator()
    if url.startswith("zk://"):
        from titus.coord.zookeeper import ZooKeeperCoordinator

        kwargs: dict[str, Any] = {}
        if settings is not None and "session_timeout=" not in url:
            kwargs["session_timeout"] = settings.coord_session_timeout_sec
        if settings is not None:
            kwargs.update(_coordination_identity(settings, agent_id))
        return ZooKeeperCoordinator.from_url(url, **kwargs)
    raise CommandError(f"unknown coordination URL {url!r}: use 'local' or zk://host:port/path")


def _coordination_identity(settings: Settings, agent_id: str) -> dict[str, Any]:
    try:
        if agent_id and settings.agent_credentials_file:
            return {"agent_credentials": settings.agent_credentials(agent_id)}
        return {"auth": settings.coord_auth, "cluster_secret": settings.shared_secret()}
    except ValueError as e:
        raise CommandError(str(e)) from None


def _store(settings: Settings) -> Any:
    from titus.store import open_store

    return open_store(settings.store_url)


def _api_server(settings: Settings, store: Any, coord: Any) -> Any:
    import uvicorn

    from titus.api.app import create_app
    from titus.api.grpc.server import attach as attach_grpc

    if not settings.auth_tokens_file:
        hosts = [settings.api_host] + ([settings.grpc_host] if settings.grpc_port >= 0 else [])
        for host in hosts:
            if not _is_loopback(host):
                raise CommandError(
                    f"the API would serve everyone on {host} without tokens: set "
                    "TITUS_AUTH_TOKENS_FILE, or listen on a loopback address"
                )
        logging.getLogger("titus").warning(
            "no API tokens (TITUS_AUTH_TOKENS_FILE): the API trusts every caller and "
            "listens on %s only",
            settings.api_host,
        )
    tls = api_tls(settings)
    app = create_app(settings, store, coord)
    attach_grpc(app, settings)  # gRPC (JobManagementService) runs with the REST server
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        access_log=False,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    return uvicorn.Server(config)


def api_tls(settings: Settings) -> tuple[str, str] | None:
    """(certificate, key) files when TLS is configured, checked now so that a typo stops
    the start with its name instead of a handshake error later."""
    cert, key = settings.api_tls_cert_file, settings.api_tls_key_file
    if not cert and not key:
        return None
    if not (cert and key):
        raise CommandError("TLS needs both TITUS_API_TLS_CERT_FILE and TITUS_API_TLS_KEY_FILE")
    for name, path in (("TITUS_API_TLS_CERT_FILE", cert), ("TITUS_API_TLS_KEY_FILE", key)):
        if not Path(path).is_file():
            raise CommandError(f"{name}: {path} is not a readable file")
    return cert, key


def _master(settings: Settings, store: Any, coord: Any) -> Any:
    from titus.master.direct import DirectDriver
    from titus.master.leader import Master, MasterConfig

    driver: Any
    if settings.cluster.startswith(("mesos://", "mesos+zk://")):
        from titus.master.mesos import MesosDriver

        driver = MesosDriver.from_settings(settings, store)
    elif settings.cluster in ("", "direct"):
        driver = DirectDriver(
            coord,
            poll_wait=settings.agent_poll_wait_sec,
            lost_after=settings.agent_lost_after_sec,
            kill_grace=settings.kill_grace_sec,
            secret=_secret(settings),
        )
    else:
        raise CommandError(
            f"unknown cluster {settings.cluster!r}: use direct, mesos://host:5050 or "
            "mesos+zk://zk1:2181/mesos"
        )
    return Master(
        store,
        coord,
        driver,
        master_id=settings.master_id,
        address=settings.master_address,
        config=MasterConfig.from_settings(settings),
    )


def _secret(settings: Settings) -> bytes | None:
    try:
        return settings.shared_secret()
    except ValueError as e:
        raise CommandError(str(e)) from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _start_agent(settings: Settings, coord: Any) -> tuple[Any, Any]:
    from titus.agent.daemon import AgentDaemon
    from titus.agent.host import agent_id
    from titus.agent.network.plumbing import NetworkConfigError
    from titus.agent.runtime import EngineNotConfigured
    from titus.agent.server import run_agent_server

    try:
        credentials = settings.agent_credentials(agent_id(settings))
    except ValueError as e:
        raise CommandError(str(e)) from None
    if credentials is None:
        if not _is_loopback(settings.agent_host):
            raise CommandError(
                f"the agent's API would take unsigned calls on {settings.agent_host}: set "
                "TITUS_AGENT_CREDENTIALS_FILE (from `titus agent-credentials <id>`) here and "
                "TITUS_CLUSTER_SECRET_FILE on the masters and the API, or listen on a "
                "loopback address"
            )
        logging.getLogger("titus").warning(
            "no cluster secret: the agent's API takes unsigned calls, on %s only",
            settings.agent_host,
        )
    try:
        daemon = AgentDaemon(settings, coord)
    except (NetworkConfigError, EngineNotConfigured) as e:
        raise CommandError(str(e)) from e
    server = run_agent_server(daemon, settings.agent_host, settings.agent_port, background=True)
    daemon.start()
    return daemon, server


def _wait_for_signal() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def cmd_local(settings: Settings) -> int:
    """API, master and one agent in this process, with in-process coordination."""
    collector.install()
    log = logging.getLogger("titus")
    if _secret(settings) is None:
        # one process: its parts share a secret nobody else knows, so the agent's API is
        # signed-only here too
        settings.cluster_secret = secrets.token_urlsafe(24)
    coord = _coordinator("local")
    store = _store(settings)
    daemon, agent_server = _start_agent(settings, coord)
    master = _master(settings, store, coord)
    stop = _wait_for_signal()
    master_thread = threading.Thread(target=master.run, args=(stop,), name="master", daemon=True)
    master_thread.start()
    api = _api_server(settings, store, coord)
    api.install_signal_handlers = lambda: None
    api_thread = threading.Thread(target=api.run, name="api", daemon=True)
    api_thread.start()
    log.info(
        "titus is up: API http://%s:%d, gRPC %s:%d, store %s",
        settings.api_host,
        settings.api_port,
        settings.grpc_host,
        settings.grpc_port,
        settings.store_url,
    )
    while not stop.wait(0.5):
        if not api_thread.is_alive():
            log.error("the API server stopped")
            break
    api.should_exit = True
    master_thread.join(5)
    daemon.stop()
    agent_server.should_exit = True
    api_thread.join(5)
    store.close()
    coord.close()
    return 0


def cmd_api(settings: Settings, coord_url: str) -> int:
    collector.install()
    coord = _coordinator(coord_url, settings)
    store = _store(settings)
    server = _api_server(settings, store, coord)
    server.run()
    coord.close()
    return 0


def cmd_master(settings: Settings, coord_url: str) -> int:
    """One master: it campaigns, leads while elected, and campaigns again after losing it."""
    collector.install()
    coord = _coordinator(coord_url, settings)
    store = _store(settings)
    master = _master(settings, store, coord)
    stop = _wait_for_signal()
    log = logging.getLogger("titus")
    if settings.master_metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(settings.master_metrics_port, settings.master_metrics_host)
        except OSError as exc:  # a second master on the same host: run without metrics
            log.warning("metrics port %d: %s", settings.master_metrics_port, exc)
    log.info("master %s campaigning", master.master_id)
    master.run(stop)
    # closing the session frees leadership at once instead of after the session timeout
    coord.close()
    store.close()
    return 0


def cmd_agent(settings: Settings, coord_url: str) -> int:
    from titus.agent.host import agent_id

    coord = _coordinator(coord_url, settings, agent_id(settings))
    daemon, server = _start_agent(settings, coord)
    stop = _wait_for_signal()
    stop.wait()
    daemon.stop()
    server.should_exit = True
    coord.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="titus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="resource", required=True)

    def daemon_options(p: argparse.ArgumentParser, coord: bool = True) -> None:
        p.add_argument("--data-dir", help="state directory (TITUS_DATA_DIR)")
        p.add_argument("--store", help="store URL: sqlite:///path or cassandra://h1,h2:9042/ks")
        p.add_argument("--log-level", default="info")
        if coord:
            p.add_argument(
                "--coord",
                default="local",
                help="coordination: local, or zk://host:2181/titus for separate processes",
            )

    p = sub.add_parser("local", help="run the all-in-one platform in the foreground")
    daemon_options(p, coord=False)
    p.add_argument("--port", type=int, help="API port (default 7001)")
    p.add_argument("--agent-port", type=int, help="agent port (default 7101)")

    p = sub.add_parser("api", help="run the REST API")
    daemon_options(p)
    p.add_argument("--port", type=int, help="API port (default 7001)")

    p = sub.add_parser("master", help="run a master (it campaigns for leadership)")
    daemon_options(p)
    p.add_argument("--id", help="this master's id")
    p.add_argument("--address", help="address published while this master leads")
    p.add_argument(
        "--cluster",
        help="direct (default), mesos://host:5050 or mesos+zk://zk1:2181/mesos (TITUS_CLUSTER)",
    )

    p = sub.add_parser("agent", help="run an agent on this host")
    daemon_options(p)
    p.add_argument("--id", help="agent id (default: the host name)")
    p.add_argument("--agent-port", type=int, help="agent port (default 7101)")
    p.add_argument("--zone")
    p.add_argument("--instance-type")
    p.add_argument("--cpu", type=float)
    p.add_argument("--memory-mb", type=int)
    p.add_argument("--disk-mb", type=int)
    p.add_argument("--machine-group", help="instance group of this host (default: default)")

    p = sub.add_parser(
        "agent-credentials",
        help="print one agent host's credentials (for its TITUS_AGENT_CREDENTIALS_FILE), "
        "derived from the cluster secret",
    )
    p.add_argument("agent_id", help="the agent's id (its TITUS_AGENT_ID, or its host name)")
    p.add_argument("--log-level", default="warning")

    add_commands(sub)
    return parser


def cmd_agent_credentials(settings: Settings, agent_id: str) -> int:
    """A host's credentials: they let it take the platform's calls and register itself,
    and nothing about any other host."""
    from titus.coord.zookeeper import node_name

    secret = _secret(settings)
    if secret is None:
        raise CommandError(
            "no cluster secret to derive them from: set TITUS_CLUSTER_SECRET_FILE "
            "(the file the masters and the API use)"
        )
    try:
        node_name(agent_id)
    except ValueError as e:
        raise CommandError(str(e)) from None
    print(AgentCredentials.derive(secret, agent_id).to_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(expand_aliases(sys.argv[1:] if argv is None else argv))
    try:
        if args.resource in client_resources():
            try:
                return run_client(args)
            except BrokenPipeError:  # the reader (`| head`) went away: not an error
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
        _setup_logging(args.log_level)
        if args.resource == "agent-credentials":
            return cmd_agent_credentials(load_settings(), args.agent_id)
        settings = load_settings(
            LOCAL_DEFAULTS if args.resource == "local" else None,
            data_dir=args.data_dir,
            store=args.store,
            api_port=getattr(args, "port", None),
            agent_port=getattr(args, "agent_port", None),
            master_id=getattr(args, "id", None) if args.resource == "master" else None,
            agent_id=getattr(args, "id", None) if args.resource == "agent" else None,
            agent_zone=getattr(args, "zone", None),
            agent_instance_type=getattr(args, "instance_type", None),
            agent_cpu=getattr(args, "cpu", None),
            agent_memory_mb=getattr(args, "memory_mb", None),
            agent_disk_mb=getattr(args, "disk_mb", None),
            agent_machine_group=getattr(args, "machine_group", None),
            master_address=getattr(args, "address", None),
            cluster=getattr(args, "cluster", None),
        )
        if args.resource == "local":
            return cmd_local(settings)
        if args.resource == "api":
            return cmd_api(settings, args.coord)
        if args.resource == "master":
            return cmd_master(settings, args.coord)
        if args.resource == "agent":
            return cmd_agent(settings, args.coord)
    except CommandError as exc:
        print(f"titus: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
