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
from typing import Any, AsyncIterator, List, Optional, Sequence, Tuple, Union

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

__all__ = ["Client", "Lock", "Election", "Queue", "TransactionRequest", "EventStream"]


def _resolve(fut: "asyncio.Future[Any]", ok: bool, value: Any) -> None:
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


async def _await(pending: _native.Pending) -> Any:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    pending.add_done_callback(lambda ok, value: loop.call_soon_threadsafe(_resolve, fut, ok, value))
    return await fut


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
    :class:`EventStream`; ``watch=`` callbacks work too (called on the callback thread)."""

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
                     container: bool = False, ttl: Optional[float] = None,
                     lock_delay: Optional[float] = None) -> str:
        """Creates a node; its path."""
        args = self._create_args(path, value, acl, ephemeral, sequence, container, ttl, lock_delay)
        try:
            return await _await(self._n.create(*args))
        except NoNodeError:
            if not makepath:
                raise
            await self.ensure_path(_parent(path), acl)
            return await _await(self._n.create(*args))

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
        """A node's data and Stat."""
        return await _await(self._n.get(_str("path", path), _callable("watch", watch), bool(linearizable)))

    async def get_w(self, path: str, linearizable: bool = False) -> Tuple[bytes, ZnodeStat, EventStream]:
        """Like :meth:`get`, with a one-shot watch as an :class:`EventStream`."""
        s = EventStream(asyncio.get_running_loop(), True)
        data, stat = await self.get(path, s, linearizable)
        return data, stat, s

    async def exists(self, path: str, watch: Any = None, linearizable: bool = False) -> Optional[ZnodeStat]:
        """The node's Stat or None."""
        return await _await(self._n.exists(_str("path", path), _callable("watch", watch), bool(linearizable)))

    async def exists_w(self, path: str) -> Tuple[Optional[ZnodeStat], EventStream]:
        """Like :meth:`exists`, with a one-shot watch as an :class:`EventStream`."""
        s = EventStream(asyncio.get_running_loop(), True)
        return await self.exists(path, s), s

    async def get_children(self, path: str, watch: Any = None, include_data: bool = False,
                           linearizable: bool = False) -> Any:
        """The sorted child names (with the Stat when ``include_data``)."""
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
        except (NoNodeError, NotEmptyError):
            if not recursive:
                raise
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

    def Lock(self, path: str, identifier: Union[str, bytes] = "", lock_delay: float = 1.0) -> "Lock":
        """An exclusive lock (``async with client.Lock(path)``)."""
        return Lock(self, path, identifier, lock_delay)

    def Queue(self, path: str) -> "Queue":
        """A distributed queue."""
        return Queue(self, path)

    def Election(self, path: str, identifier: Union[str, bytes] = "", lock_delay: float = 1.0) -> "Election":
        """A leader election."""
        return Election(self, path, identifier, lock_delay)


class Queue:
    """The asyncio form of :class:`coord.Queue`."""

    def __init__(self, client: Client, path: str):
        self.client = client
        self.path = _str("path", path)
        self._q = client._n.queue(self.path)

    async def put(self, value: bytes, priority: Optional[int] = None) -> str:
        """Appends an item; its node's path."""
        return await _await(self._q.put(_bytes("value", value), _priority(priority)))

    async def get(self, timeout: Optional[float] = 0.0) -> Optional[bytes]:
        """Takes the first item, waiting at most ``timeout`` (None: forever)."""
        return await _await(self._q.take(_opt_number("timeout", timeout)))

    async def len(self) -> int:
        """Items waiting."""
        return await _await(self._q.len())


class TransactionRequest(_SyncTransaction):
    """The asyncio transaction: ``await commit()``, or ``async with``."""

    async def commit(self) -> List[Any]:  # type: ignore[override]
        """Applies every op or none; one result per op."""
        self.results = self._results(await _await(self._pending()))
        return self.results

    async def __aenter__(self) -> "TransactionRequest":
        return self

    async def __aexit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            await self.commit()


class Lock:
    """The asyncio form of :class:`coord.Lock`."""

    def __init__(self, client: Client, path: str, identifier: Union[str, bytes] = "",
                 lock_delay: float = 1.0):
        self.client = client
        self.path = _str("path", path)
        self._lock = client._n.lock(self.path, _identifier(identifier), _opt_number("lock_delay", lock_delay))

    async def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes the lock (see :meth:`coord.Lock.acquire`)."""
        t = 0.0 if not blocking else _opt_number("timeout", timeout)
        got = await _await(self._lock.acquire(t))
        if not got and blocking and timeout is not None:
            raise LockTimeout(f"lock {self.path} not acquired within {timeout} s", "OperationTimeout", -7)
        return got

    async def release(self) -> None:
        """Releases one hold."""
        await _await(self._lock.release())

    @property
    def is_acquired(self) -> bool:
        """Whether this handle holds the lock."""
        return self._lock.is_held

    @property
    def sequencer(self) -> Optional[bytes]:
        """The hold's sequencer."""
        return self._lock.sequencer

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

    async def campaign(self, timeout: Optional[float] = None) -> bool:
        """Waits to become leader."""
        return await _await(self._e.campaign(_opt_number("timeout", timeout)))

    async def resign(self) -> None:
        """Gives up leadership or candidacy."""
        await _await(self._e.resign())

    @property
    def is_leader(self) -> bool:
        """Whether this candidate leads."""
        return self._e.is_leader

    async def leader(self) -> Optional[Tuple[bytes, int, int, bytes]]:
        """The current leader ``(identifier, term, session_id, sequencer)`` or None."""
        return await _await(self._e.leader())


