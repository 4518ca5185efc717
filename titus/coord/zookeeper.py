"""Coordination on ZooKeeper (kazoo): when api, masters and agents are separate processes.

Layout under the root (default `/titus`):

    leader/election/<uuid>-n_<seq>   ephemeral sequential: one per candidate, lowest leads
    leader/epoch                     the last leadership epoch, raised by each new leader
    leader/address                   ephemeral JSON {"id", "address", "epoch"} of the leader
    agents/<agent id>                ephemeral JSON of the agent's AgentInfo
    wake                             its version is bumped by `wake()`; masters watch it

Why it is shaped this way:

- Each candidate watches only its predecessor, so a leader's exit wakes one waiter, not
  all of them (no herd), and the successor is told within milliseconds of the node going.
- The epoch is a counter raised with a versioned (compare-and-set) write inside the same
  transaction that checks the winner's election node still exists and publishes its address.
  So each leader gets a number greater than every earlier leader's, and no one who has
  already lost its node can take one. The store refuses writes from older epochs; that,
  not ZooKeeper, is what stops a deposed leader that has not noticed yet (fencing).
- The session decides: SUSPENDED (connection gone, session maybe alive) clears
  `Leadership.active`, so the leader stops launching and killing until it knows more;
  CONNECTED on the same session sets it again; LOST (session expired, ephemeral nodes gone,
  a successor may already lead) sets `Leadership.lost`. A leader that stays cut off for a
  whole session timeout treats itself as lost without waiting to hear it from the server,
  since by then the server has expired it and someone else may lead.
- Election nodes carry a uuid in their name. If a create's reply is lost with the
  connection, the retry finds the node it already made instead of making a second one,
  which would otherwise sit ahead of it in the queue and block it forever.
- Agent nodes are ephemeral, so an agent whose process or host dies disappears once its
  session expires; after a session loss the coordinator re-creates the agents it published.
- With credentials (`auth`, `user:password`), the session authenticates by digest and every
  node the platform makes carries an ACL that grants everything to that identity and
  nothing to anyone else, so a process on the network without them can neither read the
  registry nor forge a leader, an epoch or an agent. Nodes made earlier without an ACL
  are closed at start (zk_acl.py).
- Agents need not hold those credentials. A host given its own (titus/model/identity.py)
  authenticates as `agent.<id>` and as the agents' role: the role may list the registry,
  add to it and read it, nothing else; its own node grants writes to `agent.<id>` alone.
  So no host can remove, rewrite or read-modify another's registration, nor touch the
  election, the epoch or the wake node. A registration carries its agent's signature, and
  masters that hold the cluster secret ignore (and count) one that does not verify: a
  node made under another host's name is not believed.

At some 600 lines this module is one class on purpose: election, epoch, agent registry and
wake-ups share one session, one lock and one session listener, and splitting them would
spread that shared state across modules.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.protocol.states import KazooState, ZnodeStat
from kazoo.recipe.watchers import ChildrenWatch, DataWatch
from kazoo.retry import KazooRetry
from kazoo.security import OPEN_ACL_UNSAFE
from prometheus_client import Counter

from titus.coord.base import AgentInfo, Leadership
from titus.coord.zk_acl import (
    agent_node_acl,
    agents_parent_acl,
    close_open_nodes,
    digest_acl,
    role_auth,
)
from titus.model.identity import (
    AgentCredentials,
    agent_secret,
    registration_signed_by,
    sign_registration,
)

log = logging.getLogger(__name__)

# Failover is what operators watch here: how often sessions wobble and leaders change.
SESSION_EVENTS = Counter(
    "titus_coord_session_events",
    "ZooKeeper session state changes seen by this process",
    ["state"],
)
LEADERSHIPS = Counter("titus_coord_leaderships", "Times this process was elected leader")
LEADERSHIPS_LOST = Counter(
    "titus_coord_leaderships_lost", "Times this process lost or gave up leadership"
)

REGISTRATIONS_REFUSED = Counter(
    "titus_coord_agent_registrations_refused",
    "Agent registrations not believed: not signed by the agent they name, named for "
    "another node, or a node held by another identity",
    ["reason"],
)

_SEQ_MARK = "-n_"
#: The key of an agent node's JSON that holds the agent's signature of the rest.
SIGNATURE_KEY = "signature"


class ZooKeeperLeadership(Leadership):
    """A Leadership that remembers which election node and session it belongs to."""

    def __init__(self, epoch: int, node: str, session_id: int, candidate_id: str):
        super().__init__(epoch)
        self.node = node
        self.session_id = session_id
        self.candidate_id = candidate_id


class ZooKeeperCoordinator:
    """The Coordinator protocol on a ZooKeeper ensemble.

    `hosts` is a kazoo connect string (`host:port[,host:port...]`); `root` is the znode all
    of the platform's nodes live under, so several platforms (or tests) can share one
    ensemble. `session_timeout` (seconds) is how long ZooKeeper keeps a silent session:
    the failover time after a leader dies without resigning.
    """

    def __init__(
        self,
        hosts: str = "127.0.0.1:2181",
        root: str = "/titus",
        session_timeout: float = 10.0,
        *,
        connect_timeout: float = 15.0,
        auth: str = "",
        cluster_secret: bytes | None = None,
        agent_credentials: AgentCredentials | None = None,
    ):
        self.hosts = hosts
        self.root = "/" + root.strip("/") if root.strip("/") else ""
        self.session_timeout = session_timeout
        self._election_path = f"{self.root}/leader/election"
        self._epoch_path = f"{self.root}/leader/epoch"
        self._address_path = f"{self.root}/leader/address"
        self._agents_path = f"{self.root}/agents"
        self._wake_path = f"{self.root}/wake"

        # Guards the fields below; never held across a call to the server (see agents()).
        self._lock = threading.RLock()
        self._watch_lock = threading.Lock()
        self._closed = False
        self._leadership: ZooKeeperLeadership | None = None
        self._own_agents: dict[str, AgentInfo] = {}
        self._agent_cache: dict[str, AgentInfo] = {}
        #: One token per agent node with a live data watch (see `_watch_agent_nodes`).
        self._agent_watches: dict[str, object] = {}
        self._children_watch: ChildrenWatch | None = None
        self._suspend_timer: threading.Timer | None = None
        # leaderships given up while cut off: their nodes go when the connection returns
        self._given_up: list[ZooKeeperLeadership] = []
        self._woken = threading.Event()
        self._wake_lock = threading.Lock()
        self._wake_in_flight = False  # a wake write is on its way (see wake())
        self._wake_again = False  # and another was asked for meanwhile
        # The wake watch's first call reads the node as it is; only later calls are wakes.
        self._wake_watched = False

        # Reconnect quickly and forever (the session may still be alive; only the server
        # decides when it is not); commands retry transient errors a bounded number of
        # times with exponential backoff and jitter, then surface the error.
        self._credentials = agent_credentials
        self._cluster_secret = cluster_secret
        if agent_credentials is not None:
            # an agent host: its own identity and the agents' role, never the platform's
            auth_data = agent_credentials.zk_auth()
            self._acl = []
            self._agent_node_acl = agent_node_acl(agent_credentials)
        else:
            auth_data = [("digest", auth)] if auth else []
            if cluster_secret:
                # the platform reads the agents' nodes as their role does
                auth_data.append(("digest", role_auth(cluster_secret)))
            self._acl = digest_acl(auth)
            self._agent_node_acl = self._acl
        self._agents_acl = agents_parent_acl(self._acl, cluster_secret)
        self._client = KazooClient(
            hosts=hosts,
            timeout=session_timeout,
            auth_data=auth_data or None,
            default_acl=self._acl or None,
            connection_retry=KazooRetry(
                max_tries=-1, delay=0.05, backoff=2, max_delay=1.0, max_jitter=0.2
            ),
            command_retry=KazooRetry(
                max_tries=8, delay=0.05, backoff=2, max_delay=2.0, max_jitter=0.2
            ),
        )
        self._session_id = 0
        self._client.start(timeout=connect_timeout)
        self._session_id = self._session()
        self._client.add_listener(self._on_state)
        try:
            if agent_credentials is not None:
                self._check_registry(connect_timeout)
            else:
                self._prepare_nodes()
        except (NoAuthError, PermissionError) as e:
            self._client.stop()
            self._client.close()
            if isinstance(e, PermissionError):
                raise
            raise PermissionError(
                f"coordination root {self.root or '/'} is not open to these credentials "
                "(coord_auth)"
            ) from None
        if agent_credentials is None:
            # Every platform process watches the wake node: the watch costs one notification
            # per wake, and a master that has not called wait_wake yet must still see wakes
            # sent meanwhile. Agents are never woken, and may not read it.
            DataWatch(self._client, self._wake_path, self._on_wake)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ZooKeeperCoordinator:
        """Build from `zk://host:port[,host:port]/root[?session_timeout=seconds]`."""
        parsed = urlparse(url)
        if parsed.scheme not in ("zk", "zookeeper"):
            raise ValueError(f"coordination url must start with zk://, got {url!r}")
        if not parsed.netloc:
            raise ValueError(f"coordination url names no ZooKeeper host: {url!r}")
        query = parse_qs(parsed.query)
        if "session_timeout" in query and "session_timeout" not in kwargs:
            kwargs["session_timeout"] = float(query["session_timeout"][-1])
        root = parsed.path if parsed.path not in ("", "/") else "/titus"
        return cls(hosts=parsed.netloc, root=root, **kwargs)

    # ---- plumbing -----------------------------------------------------------------------
    def _retry(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        return self._client.retry(func, *args, **kwargs)

    def _session(self) -> int:
        """The session this coordinator holds: the live one, or, while the connection is
        down (SUSPENDED), the one it last had, which the server may still keep (a cut
        connection, a restarted server reloading its sessions); 0 once it expired (LOST).

        Reading "no connection" as "another session" would make a waiting candidate give
        up its place and queue again behind the node it left: a node of a live session that
        nobody watches, ahead of everyone, so no one would ever lead again."""
        client_id = self._client.client_id
        return int(client_id[0]) if client_id else self._session_id

    def _ensure_node(self, path: str, value: bytes) -> None:
        with contextlib.suppress(NodeExistsError):
            self._retry(self._client.create, path, value, makepath=True)

    def _prepare_nodes(self) -> None:
        parent = self.root.rpartition("/")[0]
        if parent:
            # ancestors of the root may be shared with other tenants of the ensemble: they
            # are made open whatever this process's credentials
            self._retry(self._client.ensure_path, parent, acl=OPEN_ACL_UNSAFE)
        self._retry(self._client.ensure_path, self._election_path)
        self._retry(self._client.ensure_path, self._agents_path, acl=self._agents_acl or None)
        self._ensure_node(self._epoch_path, b"0")
        self._ensure_node(self._wake_path, b"")
        if self._acl:
            self._close_open_nodes()

    def _close_open_nodes(self) -> None:
        paths = [self._election_path, self._epoch_path, self._wake_path]
        paths += [f"{self.root}/leader"] + ([self.root] if self.root else [])
        changed = close_open_nodes(self._client, paths, self._acl)
        changed += close_open_nodes(self._client, [self._agents_path], self._agents_acl)
        for path in changed:
            log.info("coordination: closed %s to callers without credentials", path)

    def _check_registry(self, wait_sec: float) -> None:
        """An agent host may not make the platform's nodes: the registry must be there, or
        appear within `wait_sec` (a host booting with the platform's first process)."""
        appeared = threading.Event()
        if self._retry(self._client.exists, self._agents_path, _setter(appeared)) is not None:
            return
        log.info("coordination: waiting for the agent registry %s", self._agents_path)
        if not appeared.wait(wait_sec):
            raise PermissionError(
                f"no agent registry at {self._agents_path}: start the platform (a master or "
                "the API) on this coordination root first"
            )

    def _owned(self, stat: ZnodeStat | None) -> bool:
        return stat is not None and stat.ephemeralOwner == self._session()

    # ---- session events -----------------------------------------------------------------
    def _on_state(self, state: str) -> None:
        """Runs on kazoo's connection thread: never block here, spawn work instead."""
        SESSION_EVENTS.labels(state=str(state)).inc()
        with self._lock:
            leadership = self._leadership
            if state == KazooState.SUSPENDED:
                if leadership is not None:
                    leadership.active.clear()
                    self._start_suspend_timer(leadership)
            elif state == KazooState.LOST:
                self._session_id = 0  # expired: the next one is another
                self._cancel_suspend_timer()
                if leadership is not None:
                    self._lose(leadership)
            elif state == KazooState.CONNECTED:
                self._cancel_suspend_timer()
                session = self._session()
                renewed = session != self._session_id
                self._session_id = session
                if leadership is not None:
                    if leadership.session_id != session:
                        self._lose(leadership)
                    else:
                        leadership.active.set()
                given_up, self._given_up = self._given_up, []
                for old in given_up:
                    if old.session_id == session:
                        # declared lost by the timer, but the session lived: free the
                        # place in the queue so the others are not held up
                        self._client.handler.spawn(self._abandon, old)
                if renewed and self._own_agents and not self._closed:
                    self._client.handler.spawn(self._republish_agents)

    def _start_suspend_timer(self, leadership: ZooKeeperLeadership) -> None:
        self._cancel_suspend_timer()
        timer = threading.Timer(self.session_timeout, self._suspended_too_long, (leadership,))
        timer.daemon = True
        self._suspend_timer = timer
        timer.start()

    def _cancel_suspend_timer(self) -> None:
        if self._suspend_timer is not None:
            self._suspend_timer.cancel()
            self._suspend_timer = None

    def _suspended_too_long(self, leadership: ZooKeeperLeadership) -> None:
        with self._lock:
            if self._client.state == KazooState.SUSPENDED and not leadership.lost.is_set():
                log.warning(
                    "coordination: cut off from ZooKeeper for a whole session timeout "
                    "(%.1fs); leadership of epoch %d is lost",
                    self.session_timeout,
                    leadership.epoch,
                )
                self._lose(leadership)
                if leadership not in self._given_up:
                    self._given_up.append(leadership)

    def _lose(self, leadership: ZooKeeperLeadership) -> None:
        leadership.active.clear()
        if not leadership.lost.is_set():
            log.warning("coordination: leadership of epoch %d lost", leadership.epoch)
            LEADERSHIPS_LOST.inc()
        leadership.lost.set()
        if self._leadership is leadership:
            self._leadership = None

    def _on_own_node(
        self, leadership: ZooKeeperLeadership, data: Any, stat: Any, event: Any = None
    ) -> bool:
        """DataWatch on the leader's election node: deleted means no longer leader."""
        if leadership.lost.is_set():
            return False
        if stat is None:
            with self._lock:
                self._lose(leadership)
            return False
        return True

    # ---- leader election ----------------------------------------------------------------
    def campaign(self, candidate_id: str, address: str, stop: threading.Event) -> Leadership | None:
        """Queue up as a candidate and block until this one leads or `stop` is set."""
        prefix = f"{uuid.uuid4().hex}{_SEQ_MARK}"
        payload = json.dumps({"id": candidate_id, "address": address}).encode()
        node: str | None = None
        node_session = 0
        try:
            while not stop.is_set() and not self._closed:
                try:
                    if node is None or node_session != self._session():
                        # first round, or the session that held our node has expired
                        node = self._create_election_node(prefix, payload)
                        node_session = self._owner(node)
                    leadership = self._try_lead(node, node_session, candidate_id, address, stop)
                    if leadership is not None:
                        node = None  # ours to keep now; resign() deletes it
                        return leadership
                    if not stop.is_set():
                        # our node went (session expired, or deleted by an operator):
                        # queue up again at the back
                        if node_session == self._session():
                            self._delete_quietly(node)
                        node = None
                except (ConnectionLoss, SessionExpiredError, ConnectionClosedError) as exc:
                    log.info("coordination: election interrupted (%s); retrying", exc)
                    stop.wait(0.1)
            return None
        finally:
            if node is not None:
                self._delete_quietly(node)

    def _create_election_node(self, prefix: str, payload: bytes) -> str:
        base = f"{self._election_path}/{prefix}"
        try:
            return str(self._client.create(base, payload, ephemeral=True, sequence=True))
        except ConnectionLoss:
            # The create may have happened with only its reply lost: find it by our uuid.
            def find() -> str:
                for child in self._client.get_children(self._election_path):
                    if child.startswith(prefix):
                        return f"{self._election_path}/{child}"
                return str(self._client.create(base, payload, ephemeral=True, sequence=True))

            return str(self._retry(find))

    def _owner(self, node: str) -> int:
        """The session `node` belongs to (0 once it is gone), read from the node itself.

        Not the session read before the create: while a new session is being made after
        one expired there is none, and the create waits and runs in the new one. A node
        taken for another session's than its own would be left behind, of a live session
        nobody watches, ahead of everyone in the queue: no one would ever lead again."""
        stat = self._retry(self._client.exists, node)
        return int(stat.ephemeralOwner) if stat is not None else 0

    @staticmethod
    def _sequence(child: str) -> int:
        return int(child.rsplit(_SEQ_MARK, 1)[-1])

    def _try_lead(
        self,
        node: str,
        node_session: int,
        candidate_id: str,
        address: str,
        stop: threading.Event,
    ) -> ZooKeeperLeadership | None:
        """Wait until `node` is the lowest in the queue, then take the epoch and publish."""
        name = node.rsplit("/", 1)[-1]
        while not stop.is_set() and not self._closed and node_session == self._session():
            # only nodes made by this protocol count: a stray node must not stop elections
            children = sorted(
                (
                    c
                    for c in self._retry(self._client.get_children, self._election_path)
                    if c.rsplit(_SEQ_MARK, 1)[-1].isdigit()
                ),
                key=self._sequence,
            )
            if name not in children:
                return None  # our node is gone (session expired): the caller re-creates it
            index = children.index(name)
            if index == 0:
                return self._take_office(node, node_session, candidate_id, address)
            predecessor = f"{self._election_path}/{children[index - 1]}"
            gone = threading.Event()
            if self._retry(self._client.exists, predecessor, watch=_setter(gone)):
                # Woken by the predecessor's exit; the stop flag and session changes are
                # looked at a few times a second, which costs nothing on the server.
                while not gone.wait(0.1):
                    if stop.is_set() or self._closed or node_session != self._session():
                        return None
        return None

    def _take_office(
        self, node: str, node_session: int, candidate_id: str, address: str
    ) -> ZooKeeperLeadership | None:
        while True:
            data, stat = self._retry(self._client.get, self._epoch_path)
            epoch = int(data.decode() or "0") + 1
            published = json.dumps({"id": candidate_id, "address": address, "epoch": epoch})
            tx = self._client.transaction()
            tx.check(node, -1)  # still our place at the head of the queue
            tx.set_data(self._epoch_path, str(epoch).encode(), version=stat.version)
            tx.create(self._address_path, published.encode(), ephemeral=True)
            results = self._retry(tx.commit)
            failure = next((r for r in results if isinstance(r, Exception)), None)
            if failure is None:
                break
            if isinstance(results[0], NoNodeError):
                return None  # our node went with its session
            if isinstance(results[2], NodeExistsError) and not isinstance(
                results[1], BadVersionError
            ):
                # a predecessor's address outlived its election node (it resigned and its
                # delete was lost, or it is ours from a commit whose reply was lost)
                self._delete_quietly(self._address_path)
            # BadVersionError: another leader raised the epoch meanwhile; read it again
        leadership = ZooKeeperLeadership(epoch, node, node_session, candidate_id)
        with self._lock:
            self._leadership = leadership
            if self._client.state != KazooState.CONNECTED:
                leadership.active.clear()
        DataWatch(
            self._client,
            node,
            lambda data, stat, event=None: self._on_own_node(leadership, data, stat),
        )
        LEADERSHIPS.inc()
        log.info("coordination: %s leads with epoch %d", candidate_id, epoch)
        return leadership

    def resign(self, leadership: Leadership) -> None:
        """Give up leadership: the next candidate in the queue takes over at once."""
        with self._lock:
            if not isinstance(leadership, ZooKeeperLeadership):
                leadership.active.clear()
                leadership.lost.set()
                return
            self._lose(leadership)
            if self._client.state != KazooState.CONNECTED:
                # Nothing to delete without a connection: if the session expires its nodes
                # go with it, and if it lives the reconnect deletes them. A master stepping
                # down is not held up by retries against an unreachable server.
                if leadership.session_id == self._session_id and leadership not in self._given_up:
                    self._given_up.append(leadership)
                return
        self._abandon(leadership)

    def _abandon(self, leadership: ZooKeeperLeadership) -> None:
        """Delete the address (if still ours) and then the election node of a leadership."""
        if self._closed:
            return
        try:
            data, stat = self._retry(self._client.get, self._address_path)
            if self._owned(stat) and json.loads(data).get("epoch") == leadership.epoch:
                self._retry(self._client.delete, self._address_path, version=stat.version)
        except (NoNodeError, BadVersionError):
            pass
        except Exception as exc:  # the session's end removes it anyway
            log.warning("coordination: could not delete the leader address: %s", exc)
        self._delete_quietly(leadership.node)

    def _delete_quietly(self, path: str) -> None:
        if self._closed:
            return
        try:
            self._retry(self._client.delete, path)
        except NoNodeError:
            pass
        except Exception as exc:  # ephemeral: goes with the session at the latest
            log.warning("coordination: could not delete %s: %s", path, exc)

    def leader_address(self) -> str | None:
        try:
            data, _ = self._retry(self._client.get, self._address_path)
        except NoNodeError:
            return None
        try:
            return str(json.loads(data)["address"])
        except (ValueError, KeyError, TypeError):
            log.warning("coordination: unreadable leader address %r", data)
            return None

    def leader_epoch(self) -> int:
        """The newest epoch any leader took (0 before the first election)."""
        data, _ = self._retry(self._client.get, self._epoch_path)
        return int(data.decode() or "0")

    # ---- agent registry -----------------------------------------------------------------
    def register_agent(self, info: AgentInfo) -> None:
        with self._lock:
            self._own_agents[info.id] = info
        self._publish_agent(info)

    def _publish_agent(self, info: AgentInfo) -> None:
        path = f"{self._agents_path}/{node_name(info.id)}"
        value = self._registration(info)
        acl = self._agent_node_acl or None

        def publish() -> None:
            try:
                self._client.create(path, value, acl=acl, ephemeral=True)
                return
            except NodeExistsError:
                pass
            stat = self._client.exists(path)
            if stat is None:
                raise ConnectionLoss("agent node vanished; create again")  # retried
            if stat.ephemeralOwner == self._session():
                self._client.set(path, value, version=stat.version)
                return
            # left by an earlier process of the same agent whose session has not expired
            # yet: the live process takes its place. That session may expire, or another
            # process of the agent take the place, between the look and the change: the
            # node is then not as seen, and the whole publish is tried again.
            try:
                self._client.delete(path, version=stat.version)
                self._client.create(path, value, acl=acl, ephemeral=True)
            except (NoNodeError, BadVersionError, NodeExistsError):
                raise ConnectionLoss("agent node changed meanwhile; publish again") from None
            except NoAuthError:
                # an agent host may remove no registration, not even its own old one: it
                # writes its own into it and makes it anew once the old session expires
                self._take_over_later(info, path, value)

        self._retry(publish)

    def _take_over_later(self, info: AgentInfo, path: str, value: bytes) -> None:
        try:
            self._client.set(path, value)
        except NoAuthError:
            REGISTRATIONS_REFUSED.labels(reason="held").inc()
            raise PermissionError(
                f"the registration of agent {info.id} is held by another identity: "
                "a host with other credentials registered under this agent id"
            ) from None

        def on_change(event: Any) -> None:
            with self._lock:
                mine = self._own_agents.get(info.id) is not None and not self._closed
            if mine:
                self._client.handler.spawn(self._republish_one, info.id)

        if self._client.exists(path, watch=on_change) is None:
            raise ConnectionLoss("agent node went meanwhile; create again")  # retried

    def _republish_one(self, agent_id: str) -> None:
        with self._lock:
            info = self._own_agents.get(agent_id)
        if info is None:
            return
        try:
            self._publish_agent(info)
        except Exception as exc:
            log.warning("coordination: could not republish agent %s: %s", agent_id, exc)

    def _registration(self, info: AgentInfo) -> bytes:
        """The node's content: the agent's info, signed by the agent when there is a key
        to sign with (its own, or the one derived from the cluster secret)."""
        doc = info.to_json()
        secret = self._agent_secret(info.id)
        if secret is not None:
            doc[SIGNATURE_KEY] = sign_registration(secret, info.to_json())
        return json.dumps(doc).encode()

    def _agent_secret(self, agent_id: str) -> bytes | None:
        if self._credentials is not None:
            return self._credentials.secret if self._credentials.agent_id == agent_id else None
        return agent_secret(self._cluster_secret, agent_id) if self._cluster_secret else None

    def _republish_agents(self) -> None:
        with self._lock:
            infos = list(self._own_agents.values())
        for info in infos:
            try:
                self._publish_agent(info)
            except Exception as exc:
                log.warning("coordination: could not republish agent %s: %s", info.id, exc)

    def unregister_agent(self, agent_id: str) -> None:
        with self._lock:
            self._own_agents.pop(agent_id, None)
        path = f"{self._agents_path}/{node_name(agent_id)}"
        try:
            stat = self._retry(self._client.exists, path)
            if self._owned(stat):
                self._retry(self._client.delete, path)
        except NoNodeError:
            pass
        except NoAuthError:
            pass  # an agent host may not remove it: it goes when this session ends

    def agents(self) -> list[AgentInfo]:
        """The live agents, from a view that watches keep current (no server round trip)."""
        # The watch is made outside `_lock`: making it waits on the server, and the session
        # listener (on kazoo's connection thread) takes `_lock`, so holding it here could
        # deadlock the connection.
        with self._watch_lock:
            if self._children_watch is None:
                self._children_watch = ChildrenWatch(
                    self._client, self._agents_path, self._on_agent_children
                )
        with self._lock:
            return sorted(self._agent_cache.values(), key=lambda a: a.id)

    def _on_agent_children(self, children: list[str]) -> bool:
        """The children watch: the registry's list of names is the authority on which
        agents exist; each listed name gets one data watch."""
        with self._lock:
            if self._closed:
                return False
            current = set(children)
            for name in list(self._agent_watches):
                if name not in current:
                    del self._agent_watches[name]
                    self._agent_cache.pop(name, None)
        self._watch_agent_nodes(children)
        return True

    def _watch_agent_nodes(self, names: list[str]) -> None:
        """Start a data watch on each of `names` that has none. Each watch carries a token
        put in `_agent_watches` before the watch first reads: a watch whose token is no
        longer there was retired or replaced, and stops at its next event."""
        with self._lock:
            if self._closed:
                return
            tokens = {name: object() for name in names if name not in self._agent_watches}
            self._agent_watches.update(tokens)
        for name, token in tokens.items():
            DataWatch(
                self._client,
                f"{self._agents_path}/{name}",
                lambda data, stat, event=None, _name=name, _token=token: self._on_agent_data(
                    _name, _token, data, stat
                ),
            )

    def _on_agent_data(
        self, name: str, token: object, data: bytes | None, stat: ZnodeStat | None
    ) -> bool:
        with self._lock:
            if self._closed or self._agent_watches.get(name) is not token:
                return False
            gone = stat is None or data is None
            if gone:
                self._agent_cache.pop(name, None)
                del self._agent_watches[name]
            else:
                try:
                    info = self._verified_agent(name, json.loads(data or b""))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    log.warning("coordination: ignoring agent node %s: %s", name, exc)
                    self._agent_cache.pop(name, None)
                else:
                    self._agent_cache[name] = info
        if gone:
            # An agent that restarts deletes its old node and makes a new one at once: the
            # children watch may have listed the new node while this watch still stood for
            # the name, and will not fire again. Look at the list once more.
            self._client.handler.spawn(self._relist_agents)
            return False
        return True

    def _relist_agents(self) -> None:
        """Watch every agent node listed now. Only adds: a listing read here may be older
        than the one the children watch acted on, so it never retires a name."""
        try:
            children = self._client.get_children(self._agents_path)
        except Exception as exc:  # noqa: BLE001 - closed or disconnected: the watch catches up
            log.warning("coordination: could not list the agents again: %s", exc)
            return
        self._watch_agent_nodes(children)

    def _verified_agent(self, name: str, doc: dict[str, Any]) -> AgentInfo:
        """The AgentInfo of node `name`; with the cluster secret, only if the agent it
        names signed it (a host cannot register under another's name)."""
        signature = doc.pop(SIGNATURE_KEY, None)
        info = AgentInfo.from_json(doc)
        if info.id != name:
            REGISTRATIONS_REFUSED.labels(reason="name").inc()
            raise ValueError(f"it names agent {info.id!r}")
        if self._credentials is None and self._cluster_secret:
            secret = agent_secret(self._cluster_secret, info.id)
            if not isinstance(signature, str) or not registration_signed_by(
                secret, info.to_json(), signature
            ):
                REGISTRATIONS_REFUSED.labels(reason="signature").inc()
                raise ValueError("it is not signed by the agent it names")
        return info

    # ---- wake-ups -----------------------------------------------------------------------
    def wake(self) -> None:
        """Bump the wake node's version; every watching master is told at once.

        Never waits for the server: the API calls this on its event loop after each
        create. The write is sent asynchronously; wakes asked while one is in flight are
        folded into one more sent after it (a master woken once looks at everything
        marked dirty), so a burst of creates costs a write or two, not one each. A write
        that fails is logged; the master's loop interval picks the work up regardless."""
        with self._wake_lock:
            if self._wake_in_flight:
                self._wake_again = True
                return
            self._wake_in_flight = True
        self._send_wake()

    def _send_wake(self) -> None:
        try:
            self._client.set_async(self._wake_path, b"").rawlink(self._wake_sent)
        except Exception as exc:  # noqa: BLE001 - closed or not connected: the loop catches up
            log.warning("coordination: wake not sent: %s", exc)
            with self._wake_lock:
                self._wake_in_flight = self._wake_again = False

    def _wake_sent(self, result: Any) -> None:
        try:
            result.get_nowait()
        except Exception as exc:  # noqa: BLE001 - see wake()
            log.warning("coordination: wake not sent: %s", exc)
        with self._wake_lock:
            again, self._wake_again = self._wake_again, False
            self._wake_in_flight = again
        if again:
            self._send_wake()

    def _on_wake(
        self, data: bytes | None, stat: ZnodeStat | None, event: Any = None
    ) -> bool | None:
        if self._closed:
            return False
        if stat is None:
            return None
        with self._lock:
            first, self._wake_watched = not self._wake_watched, True
        if not first:
            self._woken.set()
        return None

    def wait_wake(self, timeout: float) -> bool:
        woken = self._woken.wait(timeout)
        self._woken.clear()
        return woken

    # ---- life cycle ---------------------------------------------------------------------
    @property
    def client(self) -> KazooClient:
        """The kazoo client, for operators' tools and tests."""
        return self._client

    def close(self) -> None:
        """End the session: ZooKeeper drops this process's election node, address and agents
        at once, so the next leader does not wait for a session timeout."""
        with self._lock:
            if self._closed:
                return
            self._cancel_suspend_timer()
            if self._leadership is not None:
                self._lose(self._leadership)
            self._closed = True
        try:
            self._client.stop()
        finally:
            self._client.close()


def node_name(agent_id: str) -> str:
    """Agent ids become one path segment; a slash would make a nested (missing) path."""
    if not agent_id or agent_id in (".", "..") or "/" in agent_id:
        raise ValueError(f"agent id {agent_id!r} cannot be a ZooKeeper node name")
    return agent_id


def _setter(event: threading.Event) -> Any:
    """A one-shot watch callback that sets `event`."""
    return lambda _watched_event: event.set()
