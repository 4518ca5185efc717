"""The API over TLS: with a certificate and key configured, `titus api` serves HTTPS and TLS
gRPC only; a client that checks against the CA reaches it (httpx, the CLI, a gRPC
channel), plain HTTP and an unchecked certificate do not, and half a configuration stops
the start with the setting's name. Started as an operator would."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.platform import TITUS, free_port, spawn, stop_process
from tests.support.poll import wait_until


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (it is its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "titus-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "api.crt", directory / "api.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def env_for(tmp_path: Path, **more: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TITUS_")}
    return {**clean, "TITUS_DATA_DIR": str(tmp_path / "data"), **more}


@pytest.fixture
def tls_api(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    cert, key = self_signed(tmp_path)
    port, grpc_port = free_port(), free_port()
    env = env_for(
        tmp_path,
        TITUS_API_TLS_CERT_FILE=str(cert),
        TITUS_API_TLS_KEY_FILE=str(key),
        TITUS_GRPC_PORT=str(grpc_port),
    )
    proc = spawn(["api", "--coord", "local", "--port", str(port)], env, tmp_path / "api.log")
    context = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/health", verify=context, timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    try:
        wait_until("the API serving HTTPS", up, timeout=60)
        yield url, grpc_port, cert
    finally:
        stop_process(proc)


def test_the_api_serves_tls_to_clients_that_check_it_and_nothing_else(
    tls_api: tuple[str, int, Path], tmp_path: Path
) -> None:
    url, grpc_port, cert = tls_api
    checked = ssl.create_default_context(cafile=str(cert))
    assert httpx.get(f"{url}/api/v3/jobs", verify=checked).status_code == 200
    with pytest.raises(httpx.ConnectError):  # the system's trust store does not know it
        httpx.get(f"{url}/api/v3/jobs")
    with pytest.raises(httpx.HTTPError):  # no plain HTTP beside it
        httpx.get(url.replace("https://", "http://") + "/api/v3/jobs")

    cli = subprocess.run(
        [TITUS, "job", "list", "--url", url, "--ca-file", str(cert)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_for(tmp_path),
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    refused = subprocess.run(
        [TITUS, "job", "list", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_for(tmp_path),
        check=False,
    )
    assert refused.returncode != 0 and "certificate" in refused.stderr.lower()

    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{grpc_port}", credentials) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_half_a_tls_configuration_stops_the_start_by_name(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    proc = subprocess.run(
        [TITUS, "api", "--coord", "local"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_for(tmp_path, TITUS_API_TLS_CERT_FILE=str(cert)),
        check=False,
    )
    assert proc.returncode == 1
    assert "TITUS_API_TLS_KEY_FILE" in proc.stderr
