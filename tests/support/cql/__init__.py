"""A CQL native protocol v4 server for tests: speaks to cassandra-driver and cqlsh on
loopback, keeps tables in memory, and refuses what Cassandra refuses, so the Cassandra
backend's statements are checked against Cassandra's rules without a Cassandra server.

Start it with the `cql_server` fixture (tests/support/cql/fixture.py) or `CqlServer`.
"""

from tests.support.cql.server import CqlServer, Fault, Hold

__all__ = ["CqlServer", "Fault", "Hold"]
