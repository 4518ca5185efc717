"""In-process coordination for the all-in-one platform: one process, no ZooKeeper."""

from __future__ import annotations

import threading

from titus.coord.base import AgentInfo, Leadership


class LocalCoordinator:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._epoch = 0
        self._leader: tuple[str, str, Leadership] | None = None
        self._agents: dict[str, AgentInfo] = {}
        self._wake = threading.Event()

    def campaign(self, candidate_id: str, address: str, stop: threading.Event) -> Leadership | None:
        with self._lock:
            while self._leader is not None and not stop.is_set():
                self._lock.wait(0.2)
            if stop.is_set():
                return None
            self._epoch += 1
            leadership = Leadership(self._epoch)
            self._leader = (candidate_id, address, leadership)
            return leadership

    def resign(self, leadership: Leadership) -> None:
        with self._lock:
            leadership.lost.set()
            if self._leader is not None and self._leader[2] is leadership:
                self._leader = None
                self._lock.notify_all()

    def leader_address(self) -> str | None:
        with self._lock:
            return self._leader[1] if self._leader else None

    def register_agent(self, info: AgentInfo) -> None:
        with self._lock:
            self._agents[info.id] = info
        self.wake()

    def unregister_agent(self, agent_id: str) -> None:
        with self._lock:
            self._agents.pop(agent_id, None)
        self.wake()

    def agents(self) -> list[AgentInfo]:
        with self._lock:
            return list(self._agents.values())

    def wake(self) -> None:
        self._wake.set()

    def wait_wake(self, timeout: float) -> bool:
        woken = self._wake.wait(timeout)
        self._wake.clear()
        return woken

    def close(self) -> None:
        with self._lock:
            if self._leader is not None:
                self._leader[2].lost.set()
                self._leader = None
