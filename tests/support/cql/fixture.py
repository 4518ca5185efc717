"""pytest fixtures for the CQL test server.

Use from a test module or conftest:

    from tests.support.cql.fixture import cql_server  # noqa: F401

`cql_server` yields a started `CqlServer` (host, port, contact_point, and the fault handles
inject / drop_connections / forget_prepared / advance_time / rows / requests) on a free
loopback port, and stops it afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cql.server import CqlServer


@pytest.fixture
def cql_server() -> Iterator[CqlServer]:
    server = CqlServer().start()
    try:
        yield server
    finally:
        server.stop()
