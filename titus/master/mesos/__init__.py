"""The Mesos cluster driver: the leader as a Mesos framework (`titus master --cluster
mesos://host:5050` or `mesos+zk://zk1:2181/mesos`), speaking the Mesos v1 scheduler API
through pymesos. See driver.py for how its parts fit together.
"""

from __future__ import annotations

from titus.master.mesos.config import (
    EXECUTOR_MODULE,
    MesosConfig,
    default_executor_command,
    master_uri,
)
from titus.master.mesos.connection import FRAMEWORK_ID_META
from titus.master.mesos.driver import MesosDriver
from titus.master.mesos.offers import OfferCycle
from titus.master.mesos.translate import TERMINAL_STATES, status_to_report

__all__ = [
    "EXECUTOR_MODULE",
    "FRAMEWORK_ID_META",
    "TERMINAL_STATES",
    "MesosConfig",
    "MesosDriver",
    "OfferCycle",
    "default_executor_command",
    "master_uri",
    "status_to_report",
]
