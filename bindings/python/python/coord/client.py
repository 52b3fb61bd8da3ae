"""The blocking client, shaped like kazoo's ``KazooClient``, and its recipes."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import _native
from ._types import ACL, CacheStats, WatchedEvent, ZnodeStat
from .exceptions import (
    ClientClosedError,
    CoordError,
    LockTimeout,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
)

__all__ = ["Client", "TransactionRequest", "Lock", "Election", "DataWatch", "ChildrenWatch",
           "Queue", "LockingQueue", "Barrier", "DoubleBarrier", "Counter", "Semaphore",
           "TwoPhaseCommit", "RwLock", "ReadLock", "WriteLock", "Party", "TreeCache"]

WatchFn = Callable[[WatchedEvent], Any]


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def _bytes(name: str, value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def _opt_number(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    return float(value)


def _callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable, not {type(value).__name__}")
    return value


def _acl(value: Any) -> Optional[List[Tuple[int, str, str]]]:
    if value is None:
        return None
    if isinstance(value, ACL):
        value = [value]
    try:
        return [(int(a.perms), str(a.id.scheme), str(a.id.id)) for a in value]
    except (AttributeError, TypeError):
        raise TypeError("acl must be a list of coord.ACL") from None


def _parent(path: str) -> str:
    parent = path.rsplit("/", 1)[0]
    return parent or "/"


class _Base:
    """What the blocking and asyncio clients share: configuration and argument checks."""

    def __init__(self, servers: Optional[str] = None, timeout: float = 10.0,
                 ca: Optional[str] = None, auth: Optional[Iterable[Tuple[str, Union[str, bytes]]]] = None,
                 read_only: bool = False, session_timeout: float = 10.0,
                 grace_period: Optional[float] = None, cache: bool = False,
                 cert: Optional[str] = None, key: Optional[str] = None):
        servers = servers if servers is not None else os.environ.get("COORD_SERVERS")
        ca = ca if ca is not None else os.environ.get("COORD_CA")
        cert = cert if cert is not None else os.environ.get("COORD_CERT")
        key = key if key is not None else os.environ.get("COORD_KEY")
        if (cert is None) != (key is None):
            raise CoordError("pass both cert= and key= (or COORD_CERT and COORD_KEY), or neither",
                             "BadArguments", -8)
        self.cert = None if cert is None else _str("cert", cert)
        self.key = None if key is None else _str("key", key)
        if servers is None:
            raise CoordError("no servers: pass servers= or set COORD_SERVERS", "BadArguments", -8)
        if ca is None:
            raise CoordError("no CA: pass ca= or set COORD_CA", "BadArguments", -8)
        self.servers = _str("servers", servers)
        self.ca = _str("ca", ca)
        self.timeout = _opt_number("timeout", timeout) or 10.0
        self.session_timeout_requested = _opt_number("session_timeout", session_timeout) or 10.0
        self.grace_period = _opt_number("grace_period", grace_period)
        self.read_only = bool(read_only)
        self.cache = bool(cache)
        self.auth_data = [(s, c.encode() if isinstance(c, str) else _bytes("auth", c))
                          for s, c in (auth or [])]
        self._native: Optional[_native.NativeClient] = None
        self._listeners: List[Callable[[str], Any]] = []

    def _connect_call(self) -> _native.PendingClient:
        return _native.connect(self.servers, self.ca, self.session_timeout_requested,
                               self.timeout, self.read_only, self.grace_period, self.cache,
                               self.cert, self.key)

    @property
    def _n(self) -> _native.NativeClient:
        n = self._native
        if n is None or n.state in ("CLOSED",):
            raise ClientClosedError("the client is not started or was closed", "ApiError", -100)
        return n

    @property
    def connected(self) -> bool:
        """Whether the session is connected now."""
        return self._native is not None and self._native.state == "CONNECTED"

    @property
    def state(self) -> str:
        """The session state: CONNECTING, CONNECTED, DISCONNECTED, EXPIRED or CLOSED."""
        return "CLOSED" if self._native is None else self._native.state

    @property
    def client_id(self) -> Optional[Tuple[int, bytes]]:
        """kazoo's ``(session_id, password)``; the password is not exposed (``b""``)."""
        return None if self._native is None else (self._native.session_id, b"")

    @property
    def session_id(self) -> int:
        """The session id."""
        return self._n.session_id

    @property
    def last_zxid(self) -> int:
        """The highest zxid this client has seen."""
        return self._n.last_zxid

    def cache_stats(self) -> CacheStats:
        """This session's client-cache counts (see ``cache=`` of :class:`Client`): ``hits``
        (reads served from the cache), ``misses`` (cacheable reads that went to the server),
        ``invalidations`` (received: a write to a node this session cached). Counted from
        the session's start; all zero without the cache. No I/O (a plain method in
        :mod:`coord.aio` too)."""
        return CacheStats(*self._n.cache_stats())

    def add_listener(self, listener: Callable[[str], Any]) -> None:
        """Calls ``listener(state)`` (a :class:`coord.SessionState` string: CONNECTED,
        JEOPARDY, SAFE, EXPIRED, CLOSED, AUTH_FAILED, LEADER_FAILED_OVER) on the callback
        thread for every session event. Kept across :meth:`start` calls."""
        _callable("listener", listener)
        self._listeners.append(listener)
        if self._native is not None:
            self._native.add_listener(listener)

    def _create_args(self, path: Any, value: Any, acl: Any, ephemeral: bool, sequence: bool,
                     container: bool = False, ttl: Any = None, lock_delay: Any = None) -> Tuple[Any, ...]:
        return (_str("path", path), _bytes("value", value), _acl(acl), bool(ephemeral),
                bool(sequence), bool(container), _opt_number("ttl", ttl),
                _opt_number("lock_delay", lock_delay))


class Client(_Base):
    """A blocking Coord session, shaped like kazoo's ``KazooClient``.

    ``servers`` (comma-separated ``host:port``) and ``ca`` (the cluster CA's PEM file)
    default to ``COORD_SERVERS`` / ``COORD_CA``; ``timeout`` bounds the connect; ``auth`` is
    a list of ``(scheme, credential)`` added after connecting. Every call releases the GIL
    while it waits and can be interrupted with Ctrl-C. Use as a context manager::

        with coord.Client() as c:
            c.create("/app", b"v1")

    ``cert`` and ``key`` (PEM files; default ``COORD_CERT`` / ``COORD_KEY``) are this
    client's certificate, for servers that ask for one (``[tls] client_auth``): make one
    with ``coordd cert client --ca DIR --name NAME``. Its subject (``CN=NAME``) is then the
    session's ``x509`` identity, for ACLs such as ``ACL(ALL, Id("x509", "CN=NAME"))``.

    ``cache=True`` turns on the client cache (Chubby's): :meth:`exists`, :meth:`get` and
    :meth:`get_children` without a ``watch`` (and not ``linearizable``) are answered from a
    session-local cache, with no round trip, while the lease the leader granted for the
    node lasts (about 0.9 s with the server's default ``cache_lease_ms`` of 1 s; at most a
    third of the session timeout). A miss is a linearizable read that also registers the
    node with the leader for a new lease. A cached read is never staler than a
    ``linearizable=True`` read: the servers apply no write to a node this session caches
    until the session has dropped its entry (the server sends an invalidation and waits
    for the acknowledgement) or the lease has run out, so a write another client saw
    acknowledged is never hidden by the cache. The whole cache is dropped on connection
    loss (JEOPARDY), on a leader fail-over (LEADER_FAILED_OVER) and when the session ends.
    The other reads (with a ``watch``, :meth:`get_acls`, :meth:`get_ephemerals`,
    :meth:`get_all_children_number`) are linearizable on such a session; recipes made
    from the client read through the same handle. Use it for nodes read far more often than written (configuration, membership
    read in a loop); every write to a cached node waits for the cachers' acknowledgements,
    so nodes written often are better read without it. Cached reads need a read-write
    server: with ``read_only=True``, a miss while connected to a read-only server fails
    with :class:`NotReadOnlyCallError`. :meth:`cache_stats` counts hits, misses and
    invalidations.
    """

    def start(self, timeout: Optional[float] = None) -> None:
        """Connects the session (no-op when connected)."""
        if self._native is not None and self._native.state in ("CONNECTED", "DISCONNECTED", "CONNECTING"):
            return
        if timeout is not None:
            self.timeout = float(_opt_number("timeout", timeout) or self.timeout)
        call = self._connect_call()
        call.pending().wait()
        self._native = call.client()
        for listener in self._listeners:
            self._native.add_listener(listener)
        for scheme, cred in self.auth_data:
            self._native.add_auth(scheme, cred).wait()

    def stop(self) -> None:
        """Ends the session (its ephemeral nodes are deleted). Calls after it raise
        :class:`coord.ClientClosedError`."""
        n = self._native
        if n is not None:
            n.close().wait()

    def close(self) -> None:
        """Releases the client (after :meth:`stop`; stops it if it was not)."""
        self.stop()
        self._native = None

    def __enter__(self) -> "Client":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- operations ---------------------------------------------------------------------

    def create(self, path: str, value: bytes = b"", acl: Optional[Sequence[ACL]] = None,
               ephemeral: bool = False, sequence: bool = False, makepath: bool = False,
               include_data: bool = False, container: bool = False,
               ttl: Optional[float] = None, lock_delay: Optional[float] = None) -> Any:
        """Creates a node; returns its path (with the sequence suffix for sequential nodes),
        or ``(path, ZnodeStat)`` with ``include_data``. ``makepath`` creates missing
        parents; ``ttl`` (seconds) makes a TTL node; ``lock_delay`` a Chubby lock node."""
        args = self._create_args(path, value, acl, ephemeral, sequence, container, ttl, lock_delay)
        try:
            created = self._n.create(*args).wait()
        except NoNodeError:
            if not makepath:
                raise
            self.ensure_path(_parent(path), acl)
            created = self._n.create(*args).wait()
        if include_data:
            return created, self.exists(created)
        return created

    def ensure_path(self, path: str, acl: Optional[Sequence[ACL]] = None) -> bool:
        """Creates ``path`` and its missing parents (persistent, empty)."""
        _str("path", path)
        if path == "/":
            return True
        if self.exists(path) is not None:
            return True
        self.ensure_path(_parent(path), acl)
        try:
            self._n.create(path, b"", _acl(acl), False, False).wait()
        except NodeExistsError:
            pass
        return True

    def get(self, path: str, watch: Optional[WatchFn] = None,
            linearizable: bool = False) -> Tuple[bytes, ZnodeStat]:
        """A node's data and :class:`ZnodeStat`. ``watch(event)`` is called once when the
        data changes or the node is deleted; ``linearizable`` reads see every write
        acknowledged before the call (one fence round trip). With ``cache=True`` and no
        ``watch``, served from the client cache while its lease lasts (see :class:`Client`)."""
        return self._n.get(_str("path", path), _callable("watch", watch), bool(linearizable)).wait()

    def exists(self, path: str, watch: Optional[WatchFn] = None,
               linearizable: bool = False) -> Optional[ZnodeStat]:
        """The node's :class:`ZnodeStat`, or None; ``watch`` fires on create/change/delete.
        Cached as :meth:`get` (an absent node is cached too)."""
        return self._n.exists(_str("path", path), _callable("watch", watch), bool(linearizable)).wait()

    def get_children(self, path: str, watch: Optional[WatchFn] = None,
                     include_data: bool = False, linearizable: bool = False) -> Any:
        """The sorted child names, or ``(names, ZnodeStat)`` with ``include_data``;
        ``watch`` fires when a child is added or removed or the node is deleted. Cached as
        :meth:`get`."""
        names, stat = self._n.get_children(_str("path", path), _callable("watch", watch),
                                           bool(linearizable)).wait()
        return (names, stat) if include_data else names

    def set(self, path: str, value: bytes, version: int = -1) -> ZnodeStat:
        """Replaces a node's data if its version is ``version`` (-1: any); the new Stat."""
        return self._n.set(_str("path", path), _bytes("value", value), _int("version", version)).wait()

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> bool:
        """Deletes a node (if its version is ``version``); ``recursive`` deletes its
        descendants first (not atomically, as kazoo)."""
        _str("path", path)
        _int("version", version)
        if recursive:
            try:
                for child in self.get_children(path):
                    self.delete(f"{path.rstrip('/')}/{child}", recursive=True)
            except NoNodeError:
                return True
        try:
            self._n.delete(path, version).wait()
        except NoNodeError:
            if not recursive:
                raise
        except NotEmptyError:
            if not recursive:
                raise
            return self.delete(path, version, recursive)
        return True

    def get_acls(self, path: str) -> Tuple[List[ACL], ZnodeStat]:
        """A node's ACL and Stat."""
        return self._n.get_acls(_str("path", path)).wait()

    def set_acls(self, path: str, acls: Sequence[ACL], version: int = -1) -> ZnodeStat:
        """Replaces a node's ACL if its ACL version is ``version`` (-1: any)."""
        return self._n.set_acls(_str("path", path), _acl(acls) or [], _int("version", version)).wait()

    def add_auth(self, scheme: str, credential: Union[str, bytes]) -> None:
        """Adds an identity (``"digest", "user:password"``); re-sent after reconnects."""
        cred = credential.encode() if isinstance(credential, str) else _bytes("credential", credential)
        self._n.add_auth(_str("scheme", scheme), cred).wait()
        self.auth_data.append((scheme, cred))

    def sync(self, path: str = "/") -> None:
        """Waits until the connected server has applied everything committed before."""
        self._n.sync(_str("path", path)).wait()

    def get_ephemerals(self, prefix: str = "/") -> List[str]:
        """Paths of this session's ephemeral nodes under ``prefix``."""
        return self._n.get_ephemerals(_str("prefix", prefix)).wait()

    def get_all_children_number(self, path: str) -> int:
        """How many descendants ``path`` has."""
        return self._n.get_all_children_number(_str("path", path)).wait()

    def check_sequencer(self, sequencer: bytes) -> bool:
        """Whether a lock's sequencer still names a held lock (linearizable);
        :class:`BadArgumentsError` for bytes that are not a sequencer."""
        return self._n.check_sequencer(_bytes("sequencer", sequencer)).wait()

    def add_watch(self, path: str, callback: WatchFn, recursive: bool = False) -> None:
        """A persistent watch: ``callback(event)`` for every change of ``path`` (and its
        descendants with ``recursive``) until :meth:`remove_watches`."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        self._n.add_watch(_str("path", path), bool(recursive), callback).wait()

    def remove_watches(self, path: str, kind: str = "any") -> None:
        """Removes this session's watches of ``kind`` (data, children, any) on ``path``."""
        self._n.remove_watches(_str("path", path), _str("kind", kind)).wait()

    def transaction(self) -> "TransactionRequest":
        """An atomic multi-op; ``commit()`` it, or use it with ``with``."""
        return TransactionRequest(self)

    def server_status(self, server: str) -> Dict[str, Any]:
        """One server's status (no session needed): id, role, epoch, zxid, leader."""
        s = _native.server_status(self.servers, self.ca, _str("server", server), self.timeout).wait()
        return dict(zip(("id", "role", "epoch", "zxid", "leader"), s))

    # -- recipes ------------------------------------------------------------------------

    def Lock(self, path: str, identifier: Union[str, bytes] = "", lock_delay: float = 1.0) -> "Lock":
        """An exclusive lock at ``path`` (coord_recipes::Lock)."""
        return Lock(self, path, identifier, lock_delay)

    def Election(self, path: str, identifier: Union[str, bytes] = "", lock_delay: float = 1.0) -> "Election":
        """A leader election at ``path`` (coord_recipes::Election)."""
        return Election(self, path, identifier, lock_delay)

    def Queue(self, path: str) -> "Queue":
        """A FIFO (with priorities) queue at ``path`` (coord_recipes::Queue)."""
        return Queue(self, path)

    def LockingQueue(self, path: str) -> "LockingQueue":
        """A queue whose items are taken under a lease (coord_recipes::LockingQueue)."""
        return LockingQueue(self, path)

    def Barrier(self, path: str) -> "Barrier":
        """A barrier at ``path`` (coord_recipes::Barrier)."""
        return Barrier(self, path)

    def DoubleBarrier(self, path: str, num_clients: int) -> "DoubleBarrier":
        """A double barrier for ``num_clients`` (coord_recipes::DoubleBarrier)."""
        return DoubleBarrier(self, path, num_clients)

    def Counter(self, path: str, default: int = 0) -> "Counter":
        """A shared integer counter (coord_recipes::Counter)."""
        return Counter(self, path)

    def Semaphore(self, path: str, identifier: str = "", max_leases: int = 1) -> "Semaphore":
        """A semaphore with ``max_leases`` leases (coord_recipes::Semaphore)."""
        return Semaphore(self, path, max_leases)

    def TwoPhaseCommit(self, path: str) -> "TwoPhaseCommit":
        """Two-phase commit under ``path`` (coord_recipes::Coordinator / Participant)."""
        return TwoPhaseCommit(self, path)

    def RwLock(self, path: str) -> "RwLock":
        """A read-write lock (coord_recipes::RwLock): ``read_lock()`` / ``write_lock()``."""
        return RwLock(self, path)

    def ReadLock(self, path: str, identifier: str = "") -> "ReadLock":
        """The shared side of a read-write lock (coord_recipes::RwLock)."""
        return ReadLock(self, path)

    def WriteLock(self, path: str, identifier: str = "") -> "WriteLock":
        """The exclusive side of a read-write lock (coord_recipes::RwLock)."""
        return WriteLock(self, path)

    def Party(self, path: str, identifier: str = "") -> "Party":
        """Group membership (coord_recipes::Group): ``join``/``leave``, iterate members."""
        return Party(self, path, identifier)

    def TreeCache(self, path: str, recursive: bool = True) -> "TreeCache":
        """A local copy of a subtree kept current (coord_recipes::TreeCache)."""
        return TreeCache(self, path, recursive)

    def DataWatch(self, path: str, func: Optional[Callable[..., Any]] = None) -> Any:
        """kazoo's DataWatch: ``func(data, stat)`` now and after every change."""
        w = DataWatch(self, path)
        return w(func) if func is not None else w

    def ChildrenWatch(self, path: str, func: Optional[Callable[..., Any]] = None) -> Any:
        """kazoo's ChildrenWatch: ``func(children)`` now and after every change."""
        w = ChildrenWatch(self, path)
        return w(func) if func is not None else w


class TransactionRequest:
    """An atomic multi-op (kazoo's ``TransactionRequest``). ``commit()`` returns one result
    per op: the created path, True, a ZnodeStat for ``set_data``, or, when the transaction
    failed, the exception of the failing op and :class:`RolledBackError` for the others."""

    def __init__(self, client: Any):
        self.client = client
        self.operations: List[Tuple[Any, ...]] = []
        self.committed = False
        self.results: Optional[List[Any]] = None

    def create(self, path: str, value: bytes = b"", acl: Optional[Sequence[ACL]] = None,
               ephemeral: bool = False, sequence: bool = False) -> None:
        """Adds a create."""
        self.operations.append(("create", _str("path", path), _bytes("value", value), _acl(acl),
                                bool(ephemeral), bool(sequence)))

    def delete(self, path: str, version: int = -1) -> None:
        """Adds a delete."""
        self.operations.append(("delete", _str("path", path), _int("version", version)))

    def set_data(self, path: str, value: bytes, version: int = -1) -> None:
        """Adds a data replacement."""
        self.operations.append(("set", _str("path", path), _bytes("value", value), _int("version", version)))

    def check(self, path: str, version: int) -> None:
        """Adds a version check."""
        self.operations.append(("check", _str("path", path), _int("version", version)))

    def check_sequencer(self, sequencer: bytes) -> None:
        """Adds a check that ``sequencer`` still names a held lock (StaleSequencer if not)."""
        self.operations.append(("check_sequencer", _bytes("sequencer", sequencer)))

    def _pending(self) -> Any:
        if self.committed:
            raise ValueError("transaction already committed")
        self.committed = True
        return self.client._n.multi(self.operations)

    @staticmethod
    def _results(out: Any) -> List[Any]:
        if isinstance(out, tuple):
            return out[1]
        return out

    def commit(self) -> List[Any]:
        """Applies every op or none; the results (see the class doc)."""
        self.results = self._results(self._pending().wait())
        return self.results

    def __enter__(self) -> "TransactionRequest":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.commit()


def _identifier(identifier: Union[str, bytes]) -> bytes:
    if isinstance(identifier, str):
        return identifier.encode()
    return _bytes("identifier", identifier)


class Lock:
    """A distributed exclusive lock (the Rust ``coord_recipes::Lock``): fair, reentrant
    per handle, with Chubby's lock-delay and a :attr:`sequencer` fencing token."""

    def __init__(self, client: Client, path: str, identifier: Union[str, bytes] = "",
                 lock_delay: float = 1.0):
        self.client = client
        self.path = _str("path", path)
        self.identifier = _identifier(identifier)
        self._lock = client._n.lock(self.path, self.identifier, _opt_number("lock_delay", lock_delay))

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes the lock; False when ``blocking=False`` and it is held elsewhere, or
        :class:`LockTimeout` when ``timeout`` passed."""
        t = 0.0 if not blocking else _opt_number("timeout", timeout)
        got = self._lock.acquire(t).wait()
        if not got and blocking and timeout is not None:
            raise LockTimeout(f"lock {self.path} not acquired within {timeout} s", "OperationTimeout", -7)
        return got

    def release(self) -> bool:
        """Releases one hold."""
        self._lock.release().wait()
        return True

    @property
    def is_acquired(self) -> bool:
        """Whether this handle holds the lock."""
        return self._lock.is_held

    @property
    def status(self) -> str:
        """NOT_HELD, HELD, JEOPARDY (connection lost: stop acting) or LOST."""
        return self._lock.status

    @property
    def sequencer(self) -> Optional[bytes]:
        """The hold's sequencer (for :meth:`Client.check_sequencer`), None when not held."""
        return self._lock.sequencer

    @property
    def generation(self) -> Optional[int]:
        """The hold's generation (grows from each holder to the next)."""
        return self._lock.generation

    def contenders(self) -> List[bytes]:
        """The current holder's identifier (a list of at most one, as kazoo's)."""
        h = self._lock.holder().wait()
        return [] if h is None else [h[0]]

    def __enter__(self) -> "Lock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class Election:
    """Leader election (the Rust ``coord_recipes::Election``), kazoo-shaped: :meth:`run`
    calls ``func`` once elected and resigns when it returns."""

    def __init__(self, client: Client, path: str, identifier: Union[str, bytes] = "",
                 lock_delay: float = 1.0):
        self.client = client
        self.path = _str("path", path)
        self._e = client._n.election(self.path, _identifier(identifier), _opt_number("lock_delay", lock_delay))

    def campaign(self, timeout: Optional[float] = None) -> bool:
        """Waits to become leader (False when ``timeout`` passed first)."""
        return self._e.campaign(_opt_number("timeout", timeout)).wait()

    def resign(self) -> None:
        """Gives up leadership or candidacy."""
        self._e.resign().wait()

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Campaigns, runs ``func(*args, **kwargs)`` as leader, then resigns."""
        _callable("func", func)
        self.campaign()
        try:
            return func(*args, **kwargs)
        finally:
            self.resign()

    def cancel(self) -> None:
        """kazoo's name for :meth:`resign`."""
        self.resign()

    @property
    def is_leader(self) -> bool:
        """Whether this candidate leads."""
        return self._e.is_leader

    @property
    def sequencer(self) -> Optional[bytes]:
        """The leadership's sequencer (fencing token), None when not leader."""
        return self._e.sequencer

    @property
    def term(self) -> Optional[int]:
        """The leadership's term, None when not leader."""
        return self._e.term

    def leader(self) -> Optional[Tuple[bytes, int, int, bytes]]:
        """The current leader ``(identifier, term, session_id, sequencer)`` or None."""
        return self._e.leader().wait()

    def contenders(self) -> List[bytes]:
        """The leader's identifier (a list of at most one)."""
        leader = self.leader()
        return [] if leader is None else [leader[0]]


def _priority(priority: Any) -> Optional[int]:
    if priority is None:
        return None
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 255:
        raise TypeError("priority must be an int in 0..255 (0 is taken first)")
    return priority


class Queue:
    """A distributed queue (the Rust ``coord_recipes::Queue``): items come out in order of
    priority (0 first), then of insertion; each is taken by exactly one consumer."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._q = client._n.queue(self.path)

    def put(self, value: bytes, priority: Optional[int] = None) -> str:
        """Appends an item; its node's path."""
        return self._q.put(_bytes("value", value), _priority(priority)).wait()

    def put_all(self, values: Iterable[bytes], priority: Optional[int] = None) -> None:
        """Appends several items, in order."""
        for v in values:
            self.put(v, priority)

    def get(self, timeout: Optional[float] = 0.0) -> Optional[bytes]:
        """Takes the first item; waits at most ``timeout`` seconds (None: forever; the
        default 0 does not wait, as kazoo's); None when there was none."""
        return self._q.take(_opt_number("timeout", timeout)).wait()

    def __len__(self) -> int:
        return self._q.len().wait()


class LockingQueue:
    """A queue whose items are taken under a lease (the Rust ``coord_recipes::LockingQueue``,
    kazoo's LockingQueue): :meth:`get` claims an item, :meth:`consume` removes it once
    processed, :meth:`release` hands it back; a consumer whose session ends loses its claim
    and the item is taken again."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._q = client._n.locking_queue(self.path)
        self._held: Optional[Tuple[str, bytes, bytes]] = None

    def put(self, value: bytes, priority: Optional[int] = None) -> str:
        """Appends an item; its node's path."""
        return self._q.put(_bytes("value", value), _priority(priority)).wait()

    def get(self, timeout: Optional[float] = None) -> Optional[bytes]:
        """Claims the first unclaimed item (waiting at most ``timeout``; None: forever)."""
        if self._held is not None:
            raise ValueError("an item is already held: consume() or release() it first")
        item = self._q.take(_opt_number("timeout", timeout)).wait()
        if item is None:
            return None
        self._held = item
        return item[1]

    def holds_lock(self) -> bool:
        """Whether an item is claimed by this handle."""
        return self._held is not None

    def consume(self) -> bool:
        """Removes the claimed item (StaleSequencerError when the claim was lost)."""
        if self._held is None:
            return False
        self._q.ack(*self._held).wait()
        self._held = None
        return True

    def release(self) -> bool:
        """Gives the claimed item back unprocessed."""
        if self._held is None:
            return False
        self._q.release(*self._held).wait()
        self._held = None
        return True

    def __len__(self) -> int:
        return self._q.len().wait()


class Barrier:
    """kazoo's Barrier (the Rust ``coord_recipes::Barrier``): :meth:`create` raises it,
    :meth:`remove` lowers it, :meth:`wait` blocks while it stands."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._b = client._n.barrier(self.path)

    def create(self) -> None:
        """Raises the barrier."""
        self._b.create().wait()

    def remove(self) -> bool:
        """Lowers it (waiters go on)."""
        self._b.remove().wait()
        return True

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits until the barrier is gone; False when ``timeout`` passed first."""
        return self._b.wait(_opt_number("timeout", timeout)).wait()


class DoubleBarrier:
    """kazoo's DoubleBarrier (the Rust ``coord_recipes::DoubleBarrier``): :meth:`enter`
    waits until ``num_clients`` have entered, :meth:`leave` until all have left."""

    def __init__(self, client: Client, path: str, num_clients: int):
        self.client = client
        self.path = _str("path", path)
        self.num_clients = _int("num_clients", num_clients)
        self._b = client._n.double_barrier(self.path, self.num_clients)

    def enter(self, timeout: Optional[float] = None) -> bool:
        """Enters; False when ``timeout`` passed before everyone came."""
        return self._b.enter(_opt_number("timeout", timeout)).wait()

    def leave(self, timeout: Optional[float] = None) -> bool:
        """Leaves; False when ``timeout`` passed before everyone left."""
        return self._b.leave(_opt_number("timeout", timeout)).wait()


class Counter:
    """kazoo's Counter (the Rust ``coord_recipes::Counter``, a versioned compare-and-set):
    ``counter += 5``, ``counter.value``."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._c = client._n.counter(self.path)

    @property
    def value(self) -> int:
        """The current value."""
        return self._c.get().wait()

    def add(self, delta: int) -> int:
        """Adds ``delta`` atomically; the new value."""
        return self._c.add(_int("delta", delta)).wait()

    def __iadd__(self, delta: int) -> "Counter":
        self.add(delta)
        return self

    def __isub__(self, delta: int) -> "Counter":
        self.add(-_int("delta", delta))
        return self


class Semaphore:
    """kazoo's Semaphore (the Rust ``coord_recipes::Semaphore``): at most ``max_leases``
    holders at once, fair; each lease has a sequencer for fencing."""

    def __init__(self, client: Client, path: str, max_leases: int = 1):
        self.client = client
        self.path = _str("path", path)
        self.max_leases = _int("max_leases", max_leases)
        self._s = client._n.semaphore(self.path, self.max_leases)
        self._lease: Optional[Tuple[str, bytes]] = None

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes a lease (False when ``blocking=False`` or ``timeout`` and none is free)."""
        if self._lease is not None:
            raise ValueError("this handle already holds a lease")
        t = 0.0 if not blocking else _opt_number("timeout", timeout)
        self._lease = self._s.acquire(t).wait()
        return self._lease is not None

    def release(self) -> bool:
        """Gives the lease back."""
        if self._lease is None:
            return False
        self._s.release(*self._lease).wait()
        self._lease = None
        return True

    @property
    def is_acquired(self) -> bool:
        """Whether this handle holds a lease."""
        return self._lease is not None

    @property
    def sequencer(self) -> Optional[bytes]:
        """The lease's sequencer (mode shared)."""
        return None if self._lease is None else self._lease[1]

    def __enter__(self) -> "Semaphore":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class TwoPhaseCommit:
    """Two-phase commit (the Rust ``coord_recipes`` Coordinator and Participant) under one
    directory. Decisions are the strings ``"commit"`` and ``"abort"``; a decision, once
    written, never changes."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._c = client._n.txn_coordinator(self.path)

    # Coordinator side.
    def begin(self, txn_id: str, participants: Sequence[str]) -> None:
        """Starts transaction ``txn_id`` with these participant names."""
        names = [_str("participants", p) for p in participants]
        self._c.begin(_str("txn_id", txn_id), names).wait()

    def decide(self, txn_id: str, timeout: float) -> str:
        """Waits for the votes (at most ``timeout``) and writes the decision."""
        return self._c.decide(_str("txn_id", txn_id), float(_opt_number("timeout", timeout) or 0.0)).wait()

    def decision(self, txn_id: str) -> Optional[str]:
        """The decision, or None while undecided."""
        return self._c.decision(_str("txn_id", txn_id)).wait()

    # Participant side.
    def participant(self, name: str) -> "Participant":
        """Participant ``name`` of transactions under this directory."""
        return Participant(self.client, self.path, name)


class Participant:
    """One participant of a :class:`TwoPhaseCommit`."""

    def __init__(self, client: Client, path: str, name: str):
        self.name = _str("name", name)
        self._p = client._n.txn_participant(_str("path", path), self.name)

    def wait_begun(self, txn_id: str, timeout: float) -> bool:
        """Waits (at most ``timeout``) for the coordinator to begin ``txn_id``."""
        return self._p.wait_begun(_str("txn_id", txn_id), float(_opt_number("timeout", timeout) or 0.0)).wait()

    def vote(self, txn_id: str, yes: bool) -> None:
        """Votes yes or no."""
        self._p.vote(_str("txn_id", txn_id), bool(yes)).wait()

    def decision(self, txn_id: str, timeout: Optional[float] = None) -> Optional[str]:
        """Waits for the decision (at most ``timeout``; None: forever)."""
        return self._p.decision(_str("txn_id", txn_id), _opt_number("timeout", timeout)).wait()

    def abort_if_undecided(self, txn_id: str) -> str:
        """Writes abort unless decided; the decision that holds."""
        return self._p.abort_if_undecided(_str("txn_id", txn_id)).wait()


class _RwSide:
    _write = False

    def __init__(self, client: Client, path: str, native: Any = None):
        self.client = client
        self.path = _str("path", path)
        self._l = native if native is not None else client._n.rwlock(self.path)
        self._hold: Optional[Tuple[str, bytes]] = None

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes the lock (False when ``blocking=False`` or ``timeout`` and it is not free;
        :class:`LockTimeout` when a ``timeout`` passed)."""
        if self._hold is not None:
            raise ValueError("this handle already holds the lock")
        t = 0.0 if not blocking else _opt_number("timeout", timeout)
        self._hold = self._l.acquire(self._write, t).wait()
        if self._hold is None and blocking and timeout is not None:
            raise LockTimeout(f"lock {self.path} not acquired within {timeout} s", "OperationTimeout", -7)
        return self._hold is not None

    def release(self) -> bool:
        """Releases the hold."""
        if self._hold is None:
            return False
        self._l.release(self._write, *self._hold).wait()
        self._hold = None
        return True

    @property
    def is_acquired(self) -> bool:
        """Whether this handle holds the lock."""
        return self._hold is not None

    @property
    def sequencer(self) -> Optional[bytes]:
        """The hold's sequencer."""
        return None if self._hold is None else self._hold[1]

    def __enter__(self) -> Any:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class ReadLock(_RwSide):
    """kazoo's ReadLock: shared with other readers, waits for earlier writers only."""


class WriteLock(_RwSide):
    """kazoo's WriteLock: exclusive against readers and writers."""

    _write = True


class RwLock:
    """A read-write lock (the Rust ``coord_recipes::RwLock``): :meth:`read_lock` and
    :meth:`write_lock` make handles on it (each a context manager)."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._l = client._n.rwlock(self.path)

    def read_lock(self) -> ReadLock:
        """A new shared-side handle."""
        return ReadLock(self.client, self.path, self._l)

    def write_lock(self) -> WriteLock:
        """A new exclusive-side handle."""
        return WriteLock(self.client, self.path, self._l)


class Party:
    """kazoo's Party (the Rust ``coord_recipes::Group``): members are ephemeral, so one
    whose session ends leaves by itself. ``list(party)`` / ``len(party)`` give the members'
    identifiers."""

    def __init__(self, client: Client, path: str, identifier: str = ""):
        import uuid

        self.client = client
        self.path = _str("path", path)
        self.identifier = _str("identifier", identifier)
        self._name = uuid.uuid4().hex
        self._g = client._n.group(self.path)
        self.participating = False

    def join(self) -> None:
        """Joins with ``identifier`` as the member's data."""
        self._g.join(self._name, self.identifier.encode()).wait()
        self.participating = True

    def leave(self) -> bool:
        """Leaves."""
        self._g.leave(self._name).wait()
        self.participating = False
        return True

    def __iter__(self) -> Any:
        return iter([v.decode() for v in self._g.members().wait().values()])

    def __len__(self) -> int:
        return len(self._g.members().wait())


class TreeCache:
    """kazoo's TreeCache (the Rust ``coord_recipes::TreeCache``): :meth:`start` loads the
    subtree (or one node without ``recursive``), then keeps it current from a persistent
    watch; listeners get ``(event, path)`` with event NODE_ADDED, NODE_UPDATED,
    NODE_REMOVED, or ERROR (the cache stopped: make a new one)."""

    def __init__(self, client: Client, path: str, recursive: bool = True):
        self.client = client
        self.path = _str("path", path)
        self.recursive = bool(recursive)
        self._listeners: List[Callable[[str, str], Any]] = []
        self._cache: Any = None

    def listen(self, listener: Callable[[str, str], Any]) -> None:
        """Adds ``listener(event, path)`` (called on the callback thread)."""
        _callable("listener", listener)
        self._listeners.append(listener)

    def _on_event(self, event: str, path: str) -> None:
        for listener in list(self._listeners):
            listener(event, path)

    def start(self) -> None:
        """Loads the cache and starts following changes."""
        cache, pending = self.client._n.tree_cache(self.path, self.recursive, self._on_event)
        pending.wait()
        self._cache = cache

    def get_data(self, path: str) -> Optional[Tuple[bytes, ZnodeStat]]:
        """The cached ``(data, ZnodeStat)`` of ``path``, or None."""
        if self._cache is None:
            raise ValueError("the cache is not started")
        return self._cache.get(_str("path", path))

    def get_children(self, path: str) -> Optional[List[str]]:
        """The cached children names of ``path`` (None if it is not cached)."""
        if self._cache is None:
            raise ValueError("the cache is not started")
        if self._cache.get(path) is None:
            return None
        prefix = path.rstrip("/") + "/"
        return sorted({p[len(prefix):].split("/")[0] for p in self._cache.paths()
                       if p.startswith(prefix)})

    def close(self) -> None:
        """Stops following changes."""
        if self._cache is not None:
            self._cache.close()


class _Rewatch:
    """Re-reads and re-arms a one-shot watch on every event; calls the user function with
    the new state on the callback thread. Stops when the function returns False."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self.func: Optional[Callable[..., Any]] = None
        self._stopped = False
        self._lock = threading.Lock()

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        _callable("func", func)
        self.func = func
        self._fire(None)
        return func

    def _on_event(self, event: WatchedEvent) -> None:
        if not self._stopped:
            self._fire(event)

    def _fire(self, event: Optional[WatchedEvent]) -> None:
        raise NotImplementedError


class DataWatch(_Rewatch):
    """kazoo's DataWatch: ``func(data, stat)`` (``None, None`` while the node is missing),
    at once and after every change; return False from it to stop."""

    def _fire(self, event: Optional[WatchedEvent]) -> None:
        with self._lock:
            while True:
                try:
                    data, stat = self.client.get(self.path, watch=self._on_event)
                    break
                except NoNodeError:
                    # Watch for the create instead; if it came in between, read again.
                    if self.client.exists(self.path, watch=self._on_event) is None:
                        data, stat = None, None
                        break
            assert self.func is not None  # set by __call__ before the first _fire
            if self.func(data, stat) is False:
                self._stopped = True


class ChildrenWatch(_Rewatch):
    """kazoo's ChildrenWatch: ``func(children)`` at once and after every change (the node
    must exist); return False from it to stop."""

    def _fire(self, event: Optional[WatchedEvent]) -> None:
        with self._lock:
            try:
                children = self.client.get_children(self.path, watch=self._on_event)
            except NoNodeError:
                self._stopped = True
                return
            assert self.func is not None  # set by __call__ before the first _fire
            if self.func(children) is False:
                self._stopped = True


_ = RolledBackError  # re-exported for transaction users
