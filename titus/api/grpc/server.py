"""The gRPC server next to REST: same process, same event loop, same services.

`attach(app, settings)` makes the REST application's lifespan also run a gRPC server on
`grpc_host:grpc_port`, serving Titus's JobManagementService, the standard health service
and server reflection (so `grpcurl -plaintext HOST:7104 list` names the service). It
runs on the REST server's event loop and is handed the application's job service, view,
observe hub, token table and rate limiter: one source of truth and one gate for both
transports.

A port another process holds is logged and REST keeps serving without gRPC (address
reuse is off, so two servers never share a port and split its callers between them).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from fastapi import FastAPI
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from titus.api.auth import TokenAuth
from titus.api.gate import Gate
from titus.api.grpc.autoscaling import AutoScaling
from titus.api.grpc.gate import CallGate
from titus.api.grpc.gen import titus_autoscale_api_pb2 as as_pb
from titus.api.grpc.gen import titus_autoscale_api_pb2_grpc as as_grpc
from titus.api.grpc.gen import titus_job_api_pb2 as pb
from titus.api.grpc.gen import titus_job_api_pb2_grpc as pb_grpc
from titus.api.grpc.gen import titus_loadbalancer_api_pb2 as lb_pb
from titus.api.grpc.gen import titus_loadbalancer_api_pb2_grpc as lb_grpc
from titus.api.grpc.loadbalancers import LoadBalancers
from titus.api.grpc.service import JobManagement
from titus.api.ratelimit import RateLimiter
from titus.settings import Settings

log = logging.getLogger("titus.api.grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["JobManagementService"].full_name
LB_SERVICE_NAME = lb_pb.DESCRIPTOR.services_by_name["LoadBalancerService"].full_name
AS_SERVICE_NAME = as_pb.DESCRIPTOR.services_by_name["AutoScalingService"].full_name
#: Seconds in-flight calls get to finish when the server stops.
STOP_GRACE_SEC = 2.0


def rest_gate(app: FastAPI, settings: Settings) -> CallGate:
    """A gate sharing the REST gate's token table, rate limiter and refusal holds (built
    as the REST application would build its middleware on its first request), or, for an
    application without that gate, one made from the same settings."""
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    stack: Any = app.middleware_stack
    while stack is not None and not isinstance(stack, Gate):
        stack = getattr(stack, "app", None)  # the gate sits inside the request metrics
    if isinstance(stack, Gate):
        return CallGate(stack.auth, stack.limiter, stack.holds)
    auth = TokenAuth.from_file(settings.auth_tokens_file) if settings.auth_tokens_file else None
    return CallGate(auth, RateLimiter(settings.rate_limit_buckets))


def build_server(app: FastAPI, settings: Settings) -> tuple[grpc.aio.Server, int]:
    """The server with its services and its port bound (0 when binding failed)."""
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", settings.max_body_bytes),
        ]
    )
    state = app.state
    gate = rest_gate(app, settings)
    servicer = JobManagement(state.jobs, state.view, state.hub, gate, state.access)
    pb_grpc.add_JobManagementServiceServicer_to_server(servicer, server)
    lb_grpc.add_LoadBalancerServiceServicer_to_server(
        LoadBalancers(state.load_balancers, state.view, servicer), server
    )
    as_grpc.add_AutoScalingServiceServicer_to_server(
        AutoScaling(state.autoscaling, servicer), server
    )
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            LB_SERVICE_NAME,
            AS_SERVICE_NAME,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    try:
        port = (
            server.add_secure_port(address, tls_credentials(settings))
            if settings.api_tls_cert_file
            else server.add_insecure_port(address)
        )
    except RuntimeError as exc:
        log.error("gRPC cannot listen on %s (%s): serving REST only", address, exc)
        port = 0
    state.grpc_health = checks
    return server, port


def tls_credentials(settings: Settings) -> grpc.ServerCredentials:
    """The REST server's certificate and key, for gRPC too."""
    key = Path(settings.api_tls_key_file).read_bytes()
    chain = Path(settings.api_tls_cert_file).read_bytes()
    return grpc.ssl_server_credentials([(key, chain)])


def attach(app: FastAPI, settings: Settings) -> None:
    """Run the gRPC server for as long as the REST application runs."""
    if settings.grpc_port < 0:
        return
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            server, port = build_server(app, settings)
            app.state.grpc_port = port
            if port:
                await server.start()
                checks = app.state.grpc_health
                for name in ("", SERVICE_NAME):
                    await checks.set(name, health_pb2.HealthCheckResponse.SERVING)
                log.info("gRPC API on %s:%d", settings.grpc_host, port)
            try:
                yield state
            finally:
                if port:
                    await server.stop(STOP_GRACE_SEC)

    app.router.lifespan_context = lifespan
