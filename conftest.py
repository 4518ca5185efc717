"""The suite's one conftest: every fixture the tests share comes from a plugin module under
tests/support, registered here, so a test names the fixture it needs as an argument and
imports nothing to get it (and a session-scoped fixture is one instance for the whole run,
not one per module that imported it). Which directory holds which kind of test, and what
each needs, is in tests/README.md.
"""

pytest_plugins = [
    "tests.support.docker_engine",  # docker_engine, agent_factory, private_engine
    "tests.support.moto_server",  # moto_server, aws_env
    "tests.support.zookeeper",  # zookeeper, zk_root, zk_coordinator, zk_proxy
    "tests.support.cql.fixture",  # cql_server
    "tests.support.mesos.fixture",  # mesos_master, mesos_master_factory, mesos_master_process
    "tests.support.platform",  # platform (the all-in-one `titus local`)
    "tests.support.cluster",  # cluster (API, two masters, three agents)
    "tests.support.net_hosts",  # net_subnet (agent hosts in network namespaces)
]
