"""``coord.aio``: the client and recipes as coroutines on the running asyncio loop.

Each call runs as a Rust future on the library's tokio runtime; when it finishes, the
result reaches an asyncio Future through ``loop.call_soon_threadsafe`` (no thread per call).
Watches are async iterators::

    async with coord.aio.Client() as c:
        await c.create("/app", b"v1")
        data, stat, watch = await c.get_w("/app")
        async for event in watch:   # one event for a one-shot watch
            ...
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import (Any, AsyncIterator, Awaitable, Callable, Dict, Iterable, List, Optional,
                    Sequence, Tuple, Union)

from . import _native
from ._types import ACL, WatchedEvent, ZnodeStat
from .client import (
    TransactionRequest as _SyncTransaction,
    _acl,
    _Base,
    _bytes,
    _callable,
    _identifier,
    _int,
    _opt_number,
    _parent,
    _priority,
    _str,
)
from .exceptions import LockTimeout, NodeExistsError, NoNodeError, NotEmptyError

__all__ = ["Client", "TransactionRequest", "EventStream", "Lock", "Election", "Queue",
           "LockingQueue", "Barrier", "DoubleBarrier", "Counter", "Semaphore", "RwLock",
           "ReadLock", "WriteLock", "Party", "TreeCache", "TwoPhaseCommit", "Participant"]

log = logging.getLogger("coord")

# What to do with a result that came after its awaiting task was cancelled (the loop runs
# it): e.g. release a lock the abandoned acquire took.
Undo = Callable[[Any], None]


def _resolve(fut: "asyncio.Future[Any]", ok: bool, value: Any, undo: Optional[Undo]) -> None:
    if fut.cancelled():
        # None / False: the call took nothing (no lock, no item); b"" is an item.
        if ok and undo is not None and value is not None and value is not False:
            try:
                undo(value)
            except Exception:
                log.exception("coord: undoing an abandoned call failed")
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


async def _await(pending: _native.Pending, undo: Optional[Undo] = None) -> Any:
    """The result of a native call, awaited on the running loop. Cancelling the awaiting
    task stops the call's Rust future (its clean-up runs: a waiting lock acquire leaves no
    queue node); if the result had come already, ``undo(result)`` gives back what it took."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def done(ok: bool, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(_resolve, fut, ok, value, undo)
        except RuntimeError:
            # The loop was closed before the call finished: nobody is waiting.
            if ok and undo is not None and value is not None and value is not False:
                log.warning("coord: a call finished after its event loop closed; "
                            "what it took is kept until the session ends")

    pending.add_done_callback(done)
    try:
        return await fut
    except asyncio.CancelledError:
        pending.cancel()
        raise


def _forget(pending: _native.Pending) -> None:
    """Lets a clean-up call (started from an undo) finish on its own, logging a failure."""
    pending.add_done_callback(
        lambda ok, value: None if ok else log.warning("coord: clean-up failed: %s", value))


class EventStream:
    """Watch events as an async iterator (``async for event in stream``). A one-shot watch
    yields one event; a persistent one yields until removed or the session ends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, one_shot: bool):
        self._loop = loop
        self._queue: "asyncio.Queue[Optional[Any]]" = asyncio.Queue()
        self._one_shot = one_shot
        self._done = False
        # The callback thread calls this object; hand each event to the loop.
        self._on_end = self._end

    def __call__(self, event: WatchedEvent) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        if self._one_shot:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)

    def _end(self, error: Optional[BaseException]) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, error)

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> WatchedEvent:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    async def next(self, timeout: Optional[float] = None) -> WatchedEvent:
        """The next event, waiting at most ``timeout`` seconds."""
        return await asyncio.wait_for(self.__anext__(), timeout)


class Client(_Base):
    """The asyncio client: the same arguments and operations as :class:`coord.Client`, as
    coroutines. ``get_w`` / ``exists_w`` / ``get_children_w`` / ``add_watch`` return an
    :class:`EventStream`; ``watch=`` callbacks work too (called on the callback thread).

    ``cache=True`` turns on the client cache exactly as for :class:`coord.Client`: ``get``,
    ``exists`` and ``get_children`` without a watch are served from the session's cache
    while the node's lease lasts, never staler than a ``linearizable=True`` read; the
    cache is dropped on connection loss and on a leader fail-over. ``cache_stats()`` (a
    plain method, no I/O) gives its hits, misses and invalidations."""

    async def start(self) -> None:
        """Connects the session."""
        if self._native is not None and self._native.state != "CLOSED":
            return
        call = self._connect_call()
        await _await(call.pending())
        self._native = call.client()
        for listener in self._listeners:
            self._native.add_listener(listener)
        for scheme, cred in self.auth_data:
            await _await(self._native.add_auth(scheme, cred))

    async def stop(self) -> None:
        """Ends the session."""
        if self._native is not None:
            await _await(self._native.close())

    async def close(self) -> None:
        """Stops and releases the client."""
        await self.stop()
        self._native = None

    async def __aenter__(self) -> "Client":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def create(self, path: str, value: bytes = b"", acl: Optional[Sequence[ACL]] = None,
                     ephemeral: bool = False, sequence: bool = False, makepath: bool = False,
                     include_data: bool = False, container: bool = False,
                     ttl: Optional[float] = None, lock_delay: Optional[float] = None) -> Any:
        """Creates a node; its path (with the sequence suffix for sequential nodes), or
        ``(path, ZnodeStat)`` with ``include_data`` (see :meth:`coord.Client.create`)."""
        args = self._create_args(path, value, acl, ephemeral, sequence, container, ttl, lock_delay)
        try:
            created = await _await(self._n.create(*args))
        except NoNodeError:
            if not makepath:
                raise
            await self.ensure_path(_parent(path), acl)
            created = await _await(self._n.create(*args))
        if include_data:
            return created, await self.exists(created)
        return created

    async def ensure_path(self, path: str, acl: Optional[Sequence[ACL]] = None) -> bool:
        """Creates ``path`` and its missing parents."""
        _str("path", path)
        if path == "/" or await self.exists(path) is not None:
            return True
        await self.ensure_path(_parent(path), acl)
        try:
            await _await(self._n.create(path, b"", _acl(acl), False, False))
        except NodeExistsError:
            pass
        return True

    async def get(self, path: str, watch: Any = None, linearizable: bool = False) -> Tuple[bytes, ZnodeStat]:
        """A node's data and Stat (from the client cache with ``cache=True`` and no watch)."""
        return await _await(self._n.get(_str("path", path), _callable("watch", watch), bool(linearizable)))

    async def get_w(self, path: str, linearizable: bool = False) -> Tuple[bytes, ZnodeStat, EventStream]:
        """Like :meth:`get`, with a one-shot watch as an :class:`EventStream`."""
        s = EventStream(asyncio.get_running_loop(), True)
        data, stat = await self.get(path, s, linearizable)
        return data, stat, s

    async def exists(self, path: str, watch: Any = None, linearizable: bool = False) -> Optional[ZnodeStat]:
        """The node's Stat or None (cached as :meth:`get`)."""
        return await _await(self._n.exists(_str("path", path), _callable("watch", watch), bool(linearizable)))

    async def exists_w(self, path: str) -> Tuple[Optional[ZnodeStat], EventStream]:
        """Like :meth:`exists`, with a one-shot watch as an :class:`EventStream`."""
        s = EventStream(asyncio.get_running_loop(), True)
        return await self.exists(path, s), s

    async def get_children(self, path: str, watch: Any = None, include_data: bool = False,
                           linearizable: bool = False) -> Any:
        """The sorted child names (with the Stat when ``include_data``; cached as :meth:`get`)."""
        names, stat = await _await(self._n.get_children(_str("path", path), _callable("watch", watch),
                                                        bool(linearizable)))
        return (names, stat) if include_data else names

    async def get_children_w(self, path: str) -> Tuple[List[str], EventStream]:
        """Like :meth:`get_children`, with a one-shot watch as an :class:`EventStream`."""
        s = EventStream(asyncio.get_running_loop(), True)
        return await self.get_children(path, s), s

    async def set(self, path: str, value: bytes, version: int = -1) -> ZnodeStat:
        """Replaces a node's data."""
        return await _await(self._n.set(_str("path", path), _bytes("value", value), _int("version", version)))

    async def delete(self, path: str, version: int = -1, recursive: bool = False) -> bool:
        """Deletes a node (and its descendants with ``recursive``)."""
        _str("path", path)
        _int("version", version)
        if recursive:
            try:
                for child in await self.get_children(path):
                    await self.delete(f"{path.rstrip('/')}/{child}", recursive=True)
            except NoNodeError:
                return True
        try:
            await _await(self._n.delete(path, version))
        except NoNodeError:
            if not recursive:
                raise
        except NotEmptyError:
            if not recursive:
                raise
            # A child was created meanwhile: delete again.
            return await self.delete(path, version, recursive)
        return True

    async def get_acls(self, path: str) -> Tuple[List[ACL], ZnodeStat]:
        """A node's ACL and Stat."""
        return await _await(self._n.get_acls(_str("path", path)))

    async def set_acls(self, path: str, acls: Sequence[ACL], version: int = -1) -> ZnodeStat:
        """Replaces a node's ACL."""
        return await _await(self._n.set_acls(_str("path", path), _acl(acls) or [], _int("version", version)))

    async def add_auth(self, scheme: str, credential: Union[str, bytes]) -> None:
        """Adds an identity to the session."""
        cred = credential.encode() if isinstance(credential, str) else _bytes("credential", credential)
        await _await(self._n.add_auth(_str("scheme", scheme), cred))
        self.auth_data.append((scheme, cred))

    async def sync(self, path: str = "/") -> None:
        """Catches the connected server up with the leader."""
        await _await(self._n.sync(_str("path", path)))

    async def check_sequencer(self, sequencer: bytes) -> bool:
        """Whether the sequencer still names a held lock."""
        return await _await(self._n.check_sequencer(_bytes("sequencer", sequencer)))

    async def get_ephemerals(self, prefix: str = "/") -> List[str]:
        """Paths of this session's ephemeral nodes under ``prefix``."""
        return await _await(self._n.get_ephemerals(_str("prefix", prefix)))

    async def get_all_children_number(self, path: str) -> int:
        """How many descendants ``path`` has."""
        return await _await(self._n.get_all_children_number(_str("path", path)))

    async def server_status(self, server: str) -> Dict[str, Any]:
        """One server's status (no session needed): id, role, epoch, zxid, leader."""
        call = _native.server_status(self.servers, self.ca, _str("server", server), self.timeout)
        await _await(call.pending())
        return dict(zip(("id", "role", "epoch", "zxid", "leader"), call.status()))

    async def add_watch(self, path: str, recursive: bool = False) -> EventStream:
        """A persistent watch as an :class:`EventStream`."""
        s = EventStream(asyncio.get_running_loop(), False)
        await _await(self._n.add_watch(_str("path", path), bool(recursive), s))
        return s

    async def remove_watches(self, path: str, kind: str = "any") -> None:
        """Removes this session's watches of ``kind`` on ``path``."""
        await _await(self._n.remove_watches(_str("path", path), _str("kind", kind)))

    def transaction(self) -> "TransactionRequest":
        """An atomic multi-op: ``await t.commit()`` or ``async with client.transaction() as t``."""
        return TransactionRequest(self)

    # -- recipes: the blocking client's, as coroutines (same names and arguments) --------

    def Lock(self, path: str, identifier: Union[str, bytes] = "", lock_delay: float = 1.0) -> "Lock":
        """An exclusive lock (``async with client.Lock(path)``)."""
        return Lock(self, path, identifier, lock_delay)

    def Election(self, path: str, identifier: Union[str, bytes] = "", lock_delay: float = 1.0) -> "Election":
        """A leader election."""
        return Election(self, path, identifier, lock_delay)

    def Queue(self, path: str) -> "Queue":
        """A FIFO (with priorities) queue."""
        return Queue(self, path)

    def LockingQueue(self, path: str) -> "LockingQueue":
        """A queue whose items are taken under a claim."""
        return LockingQueue(self, path)

    def Barrier(self, path: str) -> "Barrier":
        """A barrier."""
        return Barrier(self, path)

    def DoubleBarrier(self, path: str, num_clients: int) -> "DoubleBarrier":
        """A double barrier for ``num_clients``."""
        return DoubleBarrier(self, path, num_clients)

    def Counter(self, path: str, default: int = 0) -> "Counter":
        """A shared integer counter."""
        return Counter(self, path)

    def Semaphore(self, path: str, identifier: str = "", max_leases: int = 1) -> "Semaphore":
        """A semaphore with ``max_leases`` leases (``async with``)."""
        return Semaphore(self, path, max_leases)

    def RwLock(self, path: str) -> "RwLock":
        """A read-write lock: ``read_lock()`` / ``write_lock()`` handles."""
        return RwLock(self, path)

    def ReadLock(self, path: str, identifier: str = "") -> "ReadLock":
        """The shared side of a read-write lock (``async with``)."""
        return ReadLock(self, path)

    def WriteLock(self, path: str, identifier: str = "") -> "WriteLock":
        """The exclusive side of a read-write lock (``async with``)."""
        return WriteLock(self, path)

    def Party(self, path: str, identifier: str = "") -> "Party":
        """Group membership with ephemeral members."""
        return Party(self, path, identifier)

    def TreeCache(self, path: str, recursive: bool = True) -> "TreeCache":
        """A local copy of a subtree kept current."""
        return TreeCache(self, path, recursive)

    def TwoPhaseCommit(self, path: str) -> "TwoPhaseCommit":
        """Two-phase commit under ``path``."""
        return TwoPhaseCommit(self, path)


class TransactionRequest(_SyncTransaction):
    """The asyncio transaction: ``await commit()``, or ``async with`` (committed when the
    block ends without an exception)."""

    async def commit(self) -> List[Any]:  # type: ignore[override]
        """Applies every op or none; one result per op."""
        self.results = self._results(await _await(self._pending()))
        return self.results

    async def __aenter__(self) -> "TransactionRequest":
        return self

    async def __aexit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            await self.commit()


# -- recipes: each the asyncio form of the blocking class of the same name in coord.client,
# over the same Rust recipe handle. A cancelled wait (acquire, get, campaign ...) stops the
# Rust future, whose clean-up leaves nothing behind; a hold it had taken just before the
# cancel is given back.


class Lock:
    """The asyncio form of :class:`coord.Lock` (fair, reentrant per handle, lock-delay,
    :attr:`sequencer`): ``async with client.Lock(path, "me") as lock``."""

    def __init__(self, client: Client, path: str, identifier: Union[str, bytes] = "",
                 lock_delay: float = 1.0):
        self.client = client
        self.path = _str("path", path)
        self.identifier = _identifier(identifier)
        self._lock = client._n.lock(self.path, self.identifier, _opt_number("lock_delay", lock_delay))

    def _undo(self, _: Any) -> None:
        _forget(self._lock.release())

    async def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes the lock; False when ``blocking=False`` and it is held elsewhere,
        :class:`LockTimeout` when ``timeout`` passed."""
        t = 0.0 if not blocking else _opt_number("timeout", timeout)
        got = await _await(self._lock.acquire(t), self._undo)
        if not got and blocking and timeout is not None:
            raise LockTimeout(f"lock {self.path} not acquired within {timeout} s", "OperationTimeout", -7)
        return got

    async def release(self) -> bool:
        """Releases one hold."""
        await _await(self._lock.release())
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
        """The hold's sequencer, None when not held."""
        return self._lock.sequencer

    @property
    def generation(self) -> Optional[int]:
        """The hold's generation (grows from each holder to the next)."""
        return self._lock.generation

    async def contenders(self) -> List[bytes]:
        """The current holder's identifier (a list of at most one)."""
        h = await _await(self._lock.holder())
        return [] if h is None else [h[0]]

    async def __aenter__(self) -> "Lock":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.release()


class Election:
    """The asyncio form of :class:`coord.Election`."""

    def __init__(self, client: Client, path: str, identifier: Union[str, bytes] = "",
                 lock_delay: float = 1.0):
        self.client = client
        self.path = _str("path", path)
        self._e = client._n.election(self.path, _identifier(identifier), _opt_number("lock_delay", lock_delay))

    def _undo(self, _: Any) -> None:
        _forget(self._e.resign())

    async def campaign(self, timeout: Optional[float] = None) -> bool:
        """Waits to become leader (False when ``timeout`` passed first)."""
        return await _await(self._e.campaign(_opt_number("timeout", timeout)), self._undo)

    async def resign(self) -> None:
        """Gives up leadership or candidacy."""
        await _await(self._e.resign())

    async def cancel(self) -> None:
        """kazoo's name for :meth:`resign`."""
        await self.resign()

    async def run(self, func: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Campaigns, awaits ``func(*args, **kwargs)`` as leader, then resigns."""
        _callable("func", func)
        await self.campaign()
        try:
            return await func(*args, **kwargs)
        finally:
            await self.resign()

    @property
    def is_leader(self) -> bool:
        """Whether this candidate leads."""
        return self._e.is_leader

    @property
    def status(self) -> str:
        """NOT_HELD, HELD, JEOPARDY or LOST (the leadership's lock status)."""
        return self._e.status

    @property
    def sequencer(self) -> Optional[bytes]:
        """The leadership's sequencer, None when not leader."""
        return self._e.sequencer

    @property
    def term(self) -> Optional[int]:
        """The leadership's term, None when not leader."""
        return self._e.term

    async def leader(self) -> Optional[Tuple[bytes, int, int, bytes]]:
        """The current leader ``(identifier, term, session_id, sequencer)`` or None."""
        return await _await(self._e.leader())

    async def contenders(self) -> List[bytes]:
        """The leader's identifier (a list of at most one)."""
        leader = await self.leader()
        return [] if leader is None else [leader[0]]


class Queue:
    """The asyncio form of :class:`coord.Queue`: items in order of priority (0 first), then
    of insertion; each taken by exactly one consumer."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._q = client._n.queue(self.path)

    def _undo(self, value: bytes) -> None:
        # The item was taken for a cancelled get: put it back first in line.
        _forget(self._q.put(value, 0))

    async def put(self, value: bytes, priority: Optional[int] = None) -> str:
        """Appends an item; its node's path."""
        return await _await(self._q.put(_bytes("value", value), _priority(priority)))

    async def put_all(self, values: Iterable[bytes], priority: Optional[int] = None) -> None:
        """Appends several items, in order."""
        for v in values:
            await self.put(v, priority)

    async def get(self, timeout: Optional[float] = 0.0) -> Optional[bytes]:
        """Takes the first item, waiting at most ``timeout`` (None: forever; 0, the
        default, does not wait); None when there was none."""
        return await _await(self._q.take(_opt_number("timeout", timeout)), self._undo)

    async def len(self) -> int:
        """Items waiting."""
        return await _await(self._q.len())


class LockingQueue:
    """The asyncio form of :class:`coord.LockingQueue`: :meth:`get` claims an item,
    :meth:`consume` removes it, :meth:`release` hands it back; a consumer whose session
    ends loses its claim."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._q = client._n.locking_queue(self.path)
        self._held: Optional[Tuple[str, bytes, bytes]] = None

    def _undo(self, item: Tuple[str, bytes, bytes]) -> None:
        _forget(self._q.release(*item))

    async def put(self, value: bytes, priority: Optional[int] = None) -> str:
        """Appends an item; its node's path."""
        return await _await(self._q.put(_bytes("value", value), _priority(priority)))

    async def put_all(self, values: Iterable[bytes], priority: Optional[int] = None) -> None:
        """Appends several items, in order."""
        for v in values:
            await self.put(v, priority)

    async def get(self, timeout: Optional[float] = None) -> Optional[bytes]:
        """Claims the first unclaimed item (waiting at most ``timeout``; None: forever)."""
        if self._held is not None:
            raise ValueError("an item is already held: consume() or release() it first")
        item = await _await(self._q.take(_opt_number("timeout", timeout)), self._undo)
        if item is None:
            return None
        self._held = item
        return item[1]

    def holds_lock(self) -> bool:
        """Whether an item is claimed by this handle."""
        return self._held is not None

    async def consume(self) -> bool:
        """Removes the claimed item (StaleSequencerError when the claim was lost)."""
        if self._held is None:
            return False
        await _await(self._q.ack(*self._held))
        self._held = None
        return True

    async def release(self) -> bool:
        """Gives the claimed item back unprocessed."""
        if self._held is None:
            return False
        await _await(self._q.release(*self._held))
        self._held = None
        return True

    async def len(self) -> int:
        """Items waiting or claimed."""
        return await _await(self._q.len())


class Barrier:
    """The asyncio form of :class:`coord.Barrier`."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._b = client._n.barrier(self.path)

    async def create(self) -> None:
        """Raises the barrier."""
        await _await(self._b.create())

    async def remove(self) -> bool:
        """Lowers it (waiters go on)."""
        await _await(self._b.remove())
        return True

    async def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits until the barrier is gone; False when ``timeout`` passed first."""
        return await _await(self._b.wait(_opt_number("timeout", timeout)))


class DoubleBarrier:
    """The asyncio form of :class:`coord.DoubleBarrier`; ``async with`` enters and leaves
    (waiting as long as it takes)."""

    def __init__(self, client: Client, path: str, num_clients: int):
        self.client = client
        self.path = _str("path", path)
        self.num_clients = _int("num_clients", num_clients)
        self._b = client._n.double_barrier(self.path, self.num_clients)

    async def enter(self, timeout: Optional[float] = None) -> bool:
        """Enters; False when ``timeout`` passed before everyone came."""
        return await _await(self._b.enter(_opt_number("timeout", timeout)))

    async def leave(self, timeout: Optional[float] = None) -> bool:
        """Leaves; False when ``timeout`` passed before everyone left."""
        return await _await(self._b.leave(_opt_number("timeout", timeout)))

    async def __aenter__(self) -> "DoubleBarrier":
        await self.enter()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.leave()


class Counter:
    """The asyncio form of :class:`coord.Counter` (a versioned compare-and-set):
    ``await counter.add(5)``, ``await counter.get()``."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._c = client._n.counter(self.path)

    async def get(self) -> int:
        """The current value."""
        return await _await(self._c.get())

    async def add(self, delta: int) -> int:
        """Adds ``delta`` atomically; the new value."""
        return await _await(self._c.add(_int("delta", delta)))


class Semaphore:
    """The asyncio form of :class:`coord.Semaphore`: at most ``max_leases`` holders at once;
    ``async with client.Semaphore(path, max_leases=2) as sem``."""

    def __init__(self, client: Client, path: str, max_leases: int = 1):
        self.client = client
        self.path = _str("path", path)
        self.max_leases = _int("max_leases", max_leases)
        self._s = client._n.semaphore(self.path, self.max_leases)
        self._lease: Optional[Tuple[str, bytes]] = None

    def _undo(self, lease: Tuple[str, bytes]) -> None:
        _forget(self._s.release(*lease))

    async def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes a lease (False when ``blocking=False`` or ``timeout`` and none is free)."""
        if self._lease is not None:
            raise ValueError("this handle already holds a lease")
        t = 0.0 if not blocking else _opt_number("timeout", timeout)
        self._lease = await _await(self._s.acquire(t), self._undo)
        return self._lease is not None

    async def release(self) -> bool:
        """Gives the lease back."""
        if self._lease is None:
            return False
        await _await(self._s.release(*self._lease))
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

    async def __aenter__(self) -> "Semaphore":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.release()


class _RwSide:
    _write = False

    def __init__(self, client: Client, path: str, native: Any = None):
        self.client = client
        self.path = _str("path", path)
        self._l = native if native is not None else client._n.rwlock(self.path)
        self._hold: Optional[Tuple[str, bytes]] = None

    def _undo(self, hold: Tuple[str, bytes]) -> None:
        _forget(self._l.release(self._write, *hold))

    async def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes the lock (False when ``blocking=False`` and it is not free;
        :class:`LockTimeout` when a ``timeout`` passed)."""
        if self._hold is not None:
            raise ValueError("this handle already holds the lock")
        t = 0.0 if not blocking else _opt_number("timeout", timeout)
        self._hold = await _await(self._l.acquire(self._write, t), self._undo)
        if self._hold is None and blocking and timeout is not None:
            raise LockTimeout(f"lock {self.path} not acquired within {timeout} s", "OperationTimeout", -7)
        return self._hold is not None

    async def release(self) -> bool:
        """Releases the hold."""
        if self._hold is None:
            return False
        await _await(self._l.release(self._write, *self._hold))
        self._hold = None
        return True

    @property
    def is_acquired(self) -> bool:
        """Whether this handle holds the lock."""
        return self._hold is not None

    @property
    def sequencer(self) -> Optional[bytes]:
        """The hold's sequencer (mode shared for a reader, exclusive for a writer)."""
        return None if self._hold is None else self._hold[1]

    async def __aenter__(self) -> Any:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.release()


class ReadLock(_RwSide):
    """The asyncio form of :class:`coord.ReadLock`: shared with other readers, waits for
    earlier writers only."""


class WriteLock(_RwSide):
    """The asyncio form of :class:`coord.WriteLock`: exclusive against readers and writers."""

    _write = True


class RwLock:
    """A read-write lock (the Rust ``coord_recipes::RwLock``): :meth:`read_lock` and
    :meth:`write_lock` make handles, each usable with ``async with``."""

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
    """The asyncio form of :class:`coord.Party` (the Rust ``coord_recipes::Group``):
    ephemeral members; ``await party.members()`` or ``async for identifier in party``."""

    def __init__(self, client: Client, path: str, identifier: str = ""):
        self.client = client
        self.path = _str("path", path)
        self.identifier = _str("identifier", identifier)
        self._name = uuid.uuid4().hex
        self._g = client._n.group(self.path)
        self.participating = False

    async def join(self) -> None:
        """Joins with ``identifier`` as the member's data."""
        await _await(self._g.join(self._name, self.identifier.encode()))
        self.participating = True

    async def leave(self) -> bool:
        """Leaves."""
        await _await(self._g.leave(self._name))
        self.participating = False
        return True

    async def members(self) -> List[str]:
        """The members' identifiers."""
        found: Dict[str, bytes] = await _await(self._g.members())
        return [v.decode() for v in found.values()]

    async def len(self) -> int:
        """How many members."""
        return len(await _await(self._g.members()))

    async def __aiter__(self) -> AsyncIterator[str]:
        for m in await self.members():
            yield m

    async def __aenter__(self) -> "Party":
        await self.join()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.leave()


class TreeCache:
    """The asyncio form of :class:`coord.TreeCache`: ``await cache.start()`` loads the
    subtree (one node without ``recursive``) and follows it; reads of the copy
    (:meth:`get_data`, :meth:`get_children`) are plain calls. Changes come as
    ``(event, path)`` pairs (NODE_ADDED, NODE_UPDATED, NODE_REMOVED; ERROR when the cache
    stopped) to :meth:`listen` callbacks, run on the loop, and from ``async for`` over
    :meth:`events`. ``async with`` starts and closes it."""

    def __init__(self, client: Client, path: str, recursive: bool = True):
        self.client = client
        self.path = _str("path", path)
        self.recursive = bool(recursive)
        self._listeners: List[Callable[[str, str], Any]] = []
        self._streams: List["asyncio.Queue[Tuple[str, str]]"] = []
        self._cache: Any = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def listen(self, listener: Callable[[str, str], Any]) -> None:
        """Adds ``listener(event, path)``, called on the loop."""
        _callable("listener", listener)
        self._listeners.append(listener)

    async def events(self) -> AsyncIterator[Tuple[str, str]]:
        """The changes from now on, as ``(event, path)``; ends after ERROR or :meth:`close`."""
        q: "asyncio.Queue[Tuple[str, str]]" = asyncio.Queue()
        self._streams.append(q)
        try:
            while True:
                event, path = await q.get()
                if event == "CLOSED":
                    return
                yield event, path
                if event == "ERROR":
                    return
        finally:
            self._streams.remove(q)

    def _on_loop(self, event: str, path: str) -> None:
        for q in list(self._streams):
            q.put_nowait((event, path))
        if event == "CLOSED":
            return
        for listener in list(self._listeners):
            try:
                listener(event, path)
            except Exception:
                log.exception("exception in coord TreeCache listener %r", listener)

    def _on_event(self, event: str, path: str) -> None:
        # On the callback thread: hand over to the loop.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_loop, event, path)

    async def start(self) -> None:
        """Loads the cache and starts following changes."""
        self._loop = asyncio.get_running_loop()
        cache, pending = self.client._n.tree_cache(self.path, self.recursive, self._on_event)
        try:
            await _await(pending)
        except BaseException:
            # Cancelled or failed: stop the follower task if the load got that far.
            cache.close()
            raise
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
        if self._cache.get(_str("path", path)) is None:
            return None
        prefix = path.rstrip("/") + "/"
        return sorted({p[len(prefix):].split("/")[0] for p in self._cache.paths()
                       if p.startswith(prefix)})

    def close(self) -> None:
        """Stops following changes (ends the :meth:`events` iterators)."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None
            self._on_loop("CLOSED", self.path)

    async def __aenter__(self) -> "TreeCache":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class TwoPhaseCommit:
    """The asyncio form of :class:`coord.TwoPhaseCommit` (decisions "commit" / "abort")."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._c = client._n.txn_coordinator(self.path)

    async def begin(self, txn_id: str, participants: Sequence[str]) -> None:
        """Starts transaction ``txn_id`` with these participant names."""
        names = [_str("participants", p) for p in participants]
        await _await(self._c.begin(_str("txn_id", txn_id), names))

    async def decide(self, txn_id: str, timeout: float) -> str:
        """Waits for the votes (at most ``timeout``) and writes the decision."""
        return await _await(self._c.decide(_str("txn_id", txn_id),
                                           float(_opt_number("timeout", timeout) or 0.0)))

    async def decision(self, txn_id: str) -> Optional[str]:
        """The decision, or None while undecided."""
        return await _await(self._c.decision(_str("txn_id", txn_id)))

    def participant(self, name: str) -> "Participant":
        """Participant ``name`` of transactions under this directory."""
        return Participant(self.client, self.path, name)


class Participant:
    """One participant of a :class:`TwoPhaseCommit`."""

    def __init__(self, client: Client, path: str, name: str):
        self.name = _str("name", name)
        self._p = client._n.txn_participant(_str("path", path), self.name)

    async def wait_begun(self, txn_id: str, timeout: float) -> bool:
        """Waits (at most ``timeout``) for the coordinator to begin ``txn_id``."""
        return await _await(self._p.wait_begun(_str("txn_id", txn_id),
                                               float(_opt_number("timeout", timeout) or 0.0)))

    async def vote(self, txn_id: str, yes: bool) -> None:
        """Votes yes or no."""
        await _await(self._p.vote(_str("txn_id", txn_id), bool(yes)))

    async def decision(self, txn_id: str, timeout: Optional[float] = None) -> Optional[str]:
        """Waits for the decision (at most ``timeout``; None: forever)."""
        return await _await(self._p.decision(_str("txn_id", txn_id), _opt_number("timeout", timeout)))

    async def abort_if_undecided(self, txn_id: str) -> str:
        """Writes abort unless decided; the decision that holds."""
        return await _await(self._p.abort_if_undecided(_str("txn_id", txn_id)))
