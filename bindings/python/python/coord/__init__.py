"""``coord``: the Python client of Coord, a replicated coordination service.

A blocking client shaped like kazoo's ``KazooClient`` (:class:`Client`), its asyncio twin
(:mod:`coord.aio`), and the Rust recipes (:class:`Lock`, :class:`Election`), all over the
Rust client ``coord-client`` (QUIC + TLS). Exceptions live in :mod:`coord.exceptions`.
"""

from __future__ import annotations

import atexit as _atexit
import logging as _logging
from typing import Any, Dict

from . import _native, exceptions
from ._types import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    CacheStats,
    EventType,
    Id,
    Permissions,
    SessionState,
    WatchedEvent,
    ZnodeStat,
    make_acl,
    make_digest_acl,
)
from .client import (
    Barrier,
    Counter,
    DoubleBarrier,
    Party,
    ReadLock,
    RwLock,
    Semaphore,
    TreeCache,
    WriteLock,
    TwoPhaseCommit,
    ChildrenWatch,
    Client,
    DataWatch,
    Election,
    Lock,
    LockingQueue,
    Queue,
    TransactionRequest,
)
from .exceptions import *  # noqa: F401,F403

__version__ = "0.1.0"


def decode_sequencer(sequencer: bytes) -> Dict[str, Any]:
    """The fields of a sequencer: path, mode (exclusive/shared), czxid, session_id;
    :class:`BadArgumentsError` for bytes that are not one."""
    path, mode, czxid, session_id = _native.decode_sequencer(sequencer)
    return {"path": path, "mode": mode, "czxid": czxid, "session_id": session_id}


def refresh_log_level() -> None:
    """Forwards the library's Rust log records down to the ``coord`` logger's effective
    level (call after changing it; done once at import)."""
    _native.set_log_level(_logging.getLogger("coord").getEffectiveLevel())


refresh_log_level()

# Library threads must be out of Python before the interpreter finalizes (a thread taking
# the GIL after that is ended by CPython mid-call).
_atexit.register(_native._shutdown)

__all__ = [
    "ACL", "CREATOR_ALL_ACL", "OPEN_ACL_UNSAFE", "READ_ACL_UNSAFE", "CacheStats", "EventType", "Id",
    "Permissions", "SessionState", "WatchedEvent", "ZnodeStat", "make_acl", "make_digest_acl",
    "ChildrenWatch", "Client", "DataWatch", "Election", "Lock", "LockingQueue", "Queue",
    "TransactionRequest", "Barrier", "Counter", "DoubleBarrier", "Semaphore",
    "TwoPhaseCommit", "RwLock", "ReadLock", "WriteLock", "Party", "TreeCache",
    "decode_sequencer", "refresh_log_level", "exceptions",
]
__all__ += exceptions.__all__
