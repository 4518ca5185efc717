"""pymesos's two interfaces: the driver this framework calls, and the Scheduler it calls back.

pymesos calls methods of a Scheduler object by their names. This adapter is that object
for one pymesos driver instance (one *generation* of the connection): it turns each
callback into a typed call on the connection (session events) or on the cluster side of
the driver (offers, updates, agents), and does nothing else. Every callback is guarded:
an exception must not reach pymesos, whose I/O thread would die of it. Callbacks of an
older generation (a driver being replaced) are ignored.

`SchedulerDriver` names what this framework calls on pymesos's MesosSchedulerDriver, so the
calls are type-checked although pymesos has no type hints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from titus.master.mesos.translate import id_value

log = logging.getLogger("titus.master.mesos")


class SchedulerDriver(Protocol):
    """The part of pymesos's MesosSchedulerDriver this framework uses (pymesos's names)."""

    #: The master's host:port once known.
    @property
    def master(self) -> str | None: ...

    #: The subscription's stream id; None while not subscribed.
    @property
    def stream_id(self) -> str | None: ...

    @property
    def framework_id(self) -> str | None: ...

    def start(self) -> None: ...

    def stop(self, failover: bool = False) -> None: ...

    def join(self) -> None: ...

    def launchTasks(  # noqa: N802
        self, offer_ids: list[dict[str, str]], tasks: list[dict[str, Any]], filters: Any = None
    ) -> None: ...

    def declineOffer(self, offer_ids: list[dict[str, str]], filters: Any = None) -> None: ...  # noqa: N802

    def reviveOffers(self) -> None: ...  # noqa: N802

    def suppressOffers(self) -> None: ...  # noqa: N802

    def killTask(self, task_id: dict[str, str]) -> None: ...  # noqa: N802

    def acknowledgeStatusUpdate(self, status: dict[str, Any]) -> None: ...  # noqa: N802

    def reconcileTasks(self, tasks: list[dict[str, Any]]) -> None: ...  # noqa: N802


class SessionEvents(Protocol):
    """What the connection supervisor hears of its session with the Mesos master."""

    def admits(self, generation: int) -> bool:
        """The generation is the current one (and an event of it just came)."""
        ...

    def subscribed(self, framework_id: str) -> None:
        """SUBSCRIBED; the id is empty on a re-registration (it is the one sent)."""
        ...

    def disconnected(self) -> None: ...

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """An ERROR event from `driver` (the pymesos driver of this generation)."""
        ...


class ClusterEvents(Protocol):
    """What the framework hears of its agents and tasks."""

    def on_offers(self, offers: list[dict[str, Any]]) -> None: ...

    def on_rescind(self, offer_id: str) -> None: ...

    def on_status(self, status: dict[str, Any]) -> None: ...

    def on_agent_lost(self, agent_id: str) -> None: ...

    def on_executor_lost(self, executor_id: str, agent_id: str, status: Any) -> None: ...


class SchedulerAdapter:
    """pymesos's Scheduler for one generation of the connection."""

    def __init__(self, generation: int, session: SessionEvents, cluster: ClusterEvents):
        self.generation = generation
        self.session = session
        self.cluster = cluster

    def _deliver(self, what: str, call: Callable[[], None]) -> None:
        """Run one typed call if this generation is current; `what` names it in logs."""
        if not self.session.admits(self.generation):
            return
        try:
            call()
        except Exception:
            log.exception("mesos callback %s failed", what)

    # ---- the session --------------------------------------------------------------------
    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self._deliver("subscribed", lambda: self.session.subscribed(id_value(framework_id)))

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self._deliver("subscribed", lambda: self.session.subscribed(""))

    def disconnected(self, driver: Any) -> None:
        self._deliver("disconnected", self.session.disconnected)

    def error(self, driver: Any, message: str) -> None:
        self._deliver("error", lambda: self.session.error(driver, str(message)))

    def processHeartBeat(self, driver: Any) -> None:  # noqa: N802
        self.session.admits(self.generation)

    # ---- agents and tasks ---------------------------------------------------------------
    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:  # noqa: N802
        self._deliver("offers", lambda: self.cluster.on_offers(list(offers)))

    def offerRescinded(self, driver: Any, offer_id: Any) -> None:  # noqa: N802
        self._deliver("rescind", lambda: self.cluster.on_rescind(id_value(offer_id)))

    def statusUpdate(self, driver: Any, status: Any) -> None:  # noqa: N802
        self._deliver("update", lambda: self.cluster.on_status(dict(status)))

    def slaveLost(self, driver: Any, agent_id: Any) -> None:  # noqa: N802
        self._deliver("agent_lost", lambda: self.cluster.on_agent_lost(id_value(agent_id)))

    def executorLost(self, driver: Any, executor_id: Any, agent_id: Any, status: Any) -> None:  # noqa: N802
        self._deliver(
            "executor_lost",
            lambda: self.cluster.on_executor_lost(
                id_value(executor_id), id_value(agent_id), status
            ),
        )

    # ---- what this framework does not use ----------------------------------------------
    def inverseOffers(self, driver: Any, offers: list[Any]) -> None:  # noqa: N802
        pass

    def inverseOfferRescinded(self, driver: Any, offer_id: Any) -> None:  # noqa: N802
        pass

    def operationStatusUpdate(self, driver: Any, status: Any) -> None:  # noqa: N802
        pass

    def frameworkMessage(self, driver: Any, *args: Any) -> None:  # noqa: N802
        pass
