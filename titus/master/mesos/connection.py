"""Connection supervision: the pymesos scheduler driver's lifecycle for one leadership.

- The framework id lives in the store, so a new leader subscribes with the same id (Mesos
  failover) and keeps the tasks; `failover_timeout` (default a week) is how long Mesos
  waits. The connection counts as up only once the id is stored, so a successor reading
  the store always fails over to this framework instead of registering a second one.
- A lost connection (master down, ERROR, heartbeats missing, a dead pymesos I/O thread) is
  retried with backoff and jitter; while it lasts no task is declared lost: only Mesos's
  own words (updates, FAILURE of an agent) lose tasks.
- Never fighting a successor: when another scheduler subscribes with this framework id
  (ERROR "framework failed over"), or the store says a newer leader exists, this one stops
  for good instead of reconnecting, which would make the two take turns.
- Stepping down disconnects without tearing the framework down (stop(failover=True);
  TEARDOWN would kill every task), so its tasks keep running for the next leader.

pymesos runs calls on the caller's thread and raises on any non-2xx answer; an exception in
its I/O thread is re-raised in the main thread through SIGINT. Every call therefore goes
through one worker thread that catches and logs, every callback is guarded (scheduler.py),
and this module neutralises that SIGINT relay (see `_guard_pymesos`) so that a Mesos
hiccup can never stop the master process: the supervisor thread restarts a dead pymesos
driver instead.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from titus.master.mesos.accepts import Accept, AcceptSender, Session
from titus.master.mesos.config import MesosConfig, master_uri
from titus.master.mesos.scheduler import ClusterEvents, SchedulerAdapter, SchedulerDriver
from titus.master.mesos.translate import framework_info
from titus.store.base import JobStore, StaleEpoch

log = logging.getLogger("titus.master.mesos")

#: Store meta key holding the framework id, so every leader subscribes as the same framework.
FRAMEWORK_ID_META = "mesos.framework_id"
#: First wait before connecting again; doubled on every restart up to restart_backoff_max.
RESTART_BACKOFF_MIN = 0.5
#: How often the supervisor looks at the connection and runs the periodic work.
SUPERVISE_INTERVAL = 0.2


def _guard_pymesos() -> None:
    """pymesos installs a SIGINT handler at import and, when its I/O thread dies, calls
    `interrupt_main()` so the main thread re-raises the error. In the master that would stop
    the whole process (or, with the CLI's own SIGINT handler, stop it quietly). Put the
    previous handler back and make the relay a no-op: the driver's supervisor notices a dead
    I/O thread itself and restarts it."""
    import pymesos.process as pp

    class _NoRelay:
        @staticmethod
        def interrupt_main(*_args: Any) -> None:
            log.warning("pymesos I/O thread ended with an error; its supervisor restarts it")

    pp.thread = _NoRelay()
    with contextlib.suppress(ValueError, TypeError):  # not the main thread: nothing to undo
        if signal.getsignal(signal.SIGINT) is pp._handle_sigint:
            previous = pp._prev_handler
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


_guard_pymesos()

from pymesos import MesosSchedulerDriver  # noqa: E402  (after the guard, on purpose)


def _io_alive(driver: SchedulerDriver) -> bool:
    """Whether a pymesos driver's I/O thread still runs. pymesos keeps it private, as
    `_io_thread` (absent before start); an exception there ends it without a callback."""
    thread = getattr(driver, "_io_thread", None)
    return thread is None or thread.is_alive()


@dataclass(frozen=True)
class Call:
    """One call to Mesos, run on the calls worker with the current pymesos driver, or an
    ACCEPT, sent by the AcceptSender (several at once, see accepts.py)."""

    #: What it is, for logs.
    what: str
    run: Callable[[SchedulerDriver], None] | None = None
    #: Called when the call raised (it did not reach Mesos); not when it was never sent
    #: for want of a connection.
    on_failure: Callable[[], None] | None = None
    accept: Accept | None = None


def _session(driver: SchedulerDriver) -> Session | None:
    """Where pymesos's driver is subscribed, for calls sent beside it; None if it is not."""
    master, stream_id, framework_id = driver.master, driver.stream_id, driver.framework_id
    if not master or not stream_id or not framework_id:
        return None
    return Session(str(master), str(stream_id), str(framework_id))


class ConnectionListener(Protocol):
    """What the rest of the driver does when the connection changes. Called under the
    driver's lock."""

    def on_subscribing(self) -> None:
        """SUBSCRIBED came; the framework id is about to be stored."""
        ...

    def on_connected(self) -> None:
        """Subscribed and the framework id stored: calls reach Mesos from now on."""
        ...

    def on_connection_lost(self) -> None:
        """The connection went away (or is being replaced): held offers are void."""
        ...

    def on_tick(self, now: float) -> None:
        """Periodic work, while connected (not under the lock)."""
        ...


class Connection:
    """The pymesos driver of the current generation, the calls worker and the supervisor.

    A *generation* is one pymesos driver instance: every restart starts a new one, and
    callbacks and calls of an older generation are dropped."""

    def __init__(
        self,
        store: JobStore,
        config: MesosConfig,
        lock: threading.RLock,
        listener: ConnectionListener,
        cluster: ClusterEvents,
        factory: Callable[..., SchedulerDriver] | None = None,
    ):
        self.store = store
        self.config = config
        self.master = master_uri(config.url)
        self._lock = lock
        self._listener = listener
        self._cluster = cluster
        self._factory: Callable[..., SchedulerDriver] = factory or MesosSchedulerDriver
        self._gen = 0
        self._driver: SchedulerDriver | None = None
        self._epoch: int | None = None
        self._running = False
        self._failed_over = False
        self._connected = False
        self._framework_id: str | None = None
        self._last_event = time.monotonic()
        self._calls: queue.Queue[tuple[int, Call] | None] = queue.Queue()
        self._accepts: AcceptSender | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._restart_at: float | None = None
        self._restart_backoff = RESTART_BACKOFF_MIN

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def framework_id(self) -> str | None:
        return self._framework_id

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self, epoch: int) -> None:
        """Subscribe as the stored framework (or a new one), fenced by `epoch`."""
        with self._lock:
            self._epoch = epoch
            self._running = True
            self._failed_over = False
        self._stop = threading.Event()
        self._calls = queue.Queue()
        self._accepts = AcceptSender()
        self._threads = [
            threading.Thread(target=self._call_loop, name="mesos-calls", daemon=True),
            threading.Thread(target=self._supervise, name="mesos-supervisor", daemon=True),
        ]
        self._connect()
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Disconnect without tearing the framework down, and stop the threads."""
        with self._lock:
            self._running = False
            self._gen += 1
            driver, self._driver = self._driver, None
            self._connected = False
        self._stop.set()
        self._calls.put(None)
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.stop(failover=True)
            with contextlib.suppress(Exception):
                driver.join()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5)
        self._threads = []
        if self._accepts is not None:
            self._accepts.close()
            self._accepts = None

    def _connect(self) -> None:
        """Start a pymesos driver subscribing with the stored framework id, if any."""
        framework_id = self.store.get_meta(FRAMEWORK_ID_META) or None
        with self._lock:
            if not self._running or self._failed_over:
                return
            self._gen += 1
            self._framework_id = framework_id
            self._connected = False
            self._last_event = time.monotonic()
            driver = self._factory(
                SchedulerAdapter(self._gen, self, self._cluster),
                framework_info(self.config, framework_id, socket.gethostname()),
                self.master,
                use_addict=False,
                implicit_acknowledgements=False,
                failover=True,
            )
            self._driver = driver
        log.info(
            "subscribing to Mesos at %s as %s",
            self.master,
            f"framework {framework_id}" if framework_id else "a new framework",
        )
        driver.start()

    def _restart(self, why: str) -> None:
        """Drop the current pymesos driver (without teardown) and connect anew, later."""
        with self._lock:
            if not self._running or self._failed_over:
                return
            driver, self._driver = self._driver, None
            self._gen += 1
            self._connected = False
            self._listener.on_connection_lost()
            delay = self._restart_backoff * random.uniform(0.5, 1.0)
            self._restart_backoff = min(self._restart_backoff * 2, self.config.restart_backoff_max)
            self._restart_at = time.monotonic() + delay
        log.warning("Mesos connection restarted in %.1fs: %s", delay, why)
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.stop(failover=True)

    def _give_up(self, driver: SchedulerDriver | None = None) -> None:
        """A successor owns the framework now: stop for good, without teardown."""
        with self._lock:
            self._failed_over = True
            self._connected = False
            self._listener.on_connection_lost()
            driver = driver or self._driver
            self._gen += 1
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.stop(failover=True)

    # ---- the calls worker ---------------------------------------------------------------
    def submit(self, call: Call) -> None:
        """Queue a call for the current generation (dropped if it is replaced first)."""
        self._calls.put((self._gen, call))

    def _call_loop(self) -> None:
        """Runs every call to Mesos in order, off the leader's thread: a slow or refusing
        master never stalls placement, and pymesos's exceptions stop here. Launches and
        kills that do not reach Mesos are not lost for it: the tasks are reconciled (or
        killed again) once subscribed again. ACCEPTs go to the AcceptSender, several at
        once; any other call waits until those in flight were answered."""
        accepts = self._accepts
        assert accepts is not None
        while True:
            item = self._calls.get()
            if item is None or self._stop.is_set():
                return
            gen, call = item
            with self._lock:
                driver = self._driver if gen == self._gen else None
                connected = self._connected
            if driver is None or not connected:
                continue
            if call.accept is not None:
                session = _session(driver)
                if session is not None:  # else not subscribed: dropped, as pymesos does
                    accepts.send(session, call.accept, call.what, call.on_failure)
                continue
            accepts.drain()
            if call.run is None:
                continue
            try:
                call.run(driver)
            except Exception as exc:
                log.warning("Mesos call %s failed: %s", call.what, exc)
                if call.on_failure is not None:
                    call.on_failure()

    # ---- session events (pymesos's thread, through SchedulerAdapter) --------------------
    def admits(self, generation: int) -> bool:
        if self._gen != generation:
            return False
        self._last_event = time.monotonic()
        return True

    def subscribed(self, framework_id: str) -> None:
        with self._lock:
            if framework_id:
                self._framework_id = framework_id
            framework_id = self._framework_id or ""
            self._restart_backoff = RESTART_BACKOFF_MIN
            self._listener.on_subscribing()
            epoch = self._epoch
        log.info("subscribed to Mesos as framework %s", framework_id)
        if framework_id and self.store.get_meta(FRAMEWORK_ID_META) != framework_id:
            try:
                self.store.set_meta(FRAMEWORK_ID_META, framework_id, epoch=epoch)
            except StaleEpoch:
                log.warning("a newer leader exists: leaving the framework to it")
                self._give_up()
                return
        with self._lock:
            self._connected = True
            self._listener.on_connected()

    def disconnected(self) -> None:
        with self._lock:
            self._connected = False
            self._listener.on_connection_lost()
        log.warning("Mesos connection lost; pymesos reconnects (no task is lost for it)")

    def error(self, driver: SchedulerDriver, message: str) -> None:
        log.error("Mesos ERROR event: %s", message)
        text = message.lower()
        if "failed over" in text:
            # another scheduler subscribed with this framework id: it is the leader now.
            # pymesos would reconnect by itself and the two would take turns: stop for good.
            self._give_up(driver)
            return
        if "removed" in text or "torn down" in text:
            # the framework is gone (failover timeout passed, or an operator removed it):
            # its id is dead, and so are its tasks; subscribe afresh
            with contextlib.suppress(StaleEpoch):
                self.store.set_meta(FRAMEWORK_ID_META, "", epoch=self._epoch)
        self._restart(f"ERROR {message}")

    # ---- the supervisor -----------------------------------------------------------------
    def _supervise(self) -> None:
        while not self._stop.wait(SUPERVISE_INTERVAL):
            try:
                self._supervise_once()
            except Exception:
                log.exception("Mesos supervisor pass failed")

    def _supervise_once(self) -> None:
        now = time.monotonic()
        with self._lock:
            driver = self._driver
            restart_at = self._restart_at
            connected = self._connected
            failed_over = self._failed_over
        if failed_over:
            return
        if driver is None:
            if restart_at is not None and now >= restart_at:
                self._restart_at = None
                self._connect()
            return
        if not _io_alive(driver):
            self._restart("the pymesos I/O thread ended")
            return
        if connected and now - self._last_event > self.config.heartbeat_timeout:
            self._restart(f"no event from Mesos for {now - self._last_event:.0f}s")
            return
        if connected:
            self._listener.on_tick(now)
