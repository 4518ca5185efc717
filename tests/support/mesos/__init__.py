"""A test double of the Apache Mesos master and agent v1 HTTP APIs (see master.py), its pytest
fixture (fixture.py), a raw HTTP scheduler client (client.py) and a pymesos executor for tests
(sample_executor.py)."""

from tests.support.mesos.master import AgentSpec, Config, MesosMasterDouble

__all__ = ["AgentSpec", "Config", "MesosMasterDouble"]
