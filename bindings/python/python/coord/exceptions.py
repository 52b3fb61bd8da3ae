"""The exceptions of ``coord``: one class per server error code, all under :class:`CoordError`.

Names follow kazoo (``NoNodeError``, ``NodeExistsError`` ...), so code written for kazoo's
``kazoo.exceptions`` reads the same.
"""

from __future__ import annotations

import builtins
from typing import Dict, Type

__all__ = [
    "CoordError", "ClientClosedError", "SystemErrorException", "RolledBackError",
    "DataInconsistencyError", "ConnectionLossError", "MarshallingError", "UnimplementedError",
    "OperationTimeoutError", "BadArgumentsError", "UnknownSessionError", "APIError",
    "NoNodeError", "NoAuthError", "BadVersionError", "NoChildrenForEphemeralsError",
    "NodeExistsError", "NotEmptyError", "SessionExpiredError", "InvalidCallbackError",
    "InvalidACLError", "AuthFailedError", "SessionMovedError", "NotReadOnlyCallError",
    "NoWatcherError", "RequestTimeoutError", "ThrottledError", "InvalidPathError",
    "TooLargeError", "VersionMismatchError", "NotServingError", "LockDelayError",
    "StaleSequencerError", "DiskFullError", "TimeoutError", "LockTimeout",
]


class CoordError(Exception):
    """A failed Coord call. ``code`` is the server's error name (``"NoNode"``), ``zk_code``
    ZooKeeper's number for it, ``message`` one human line."""

    code: str = "SystemError"
    zk_code: int = -1

    def __init__(self, message: str = "", code: str | None = None, zk_code: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if zk_code is not None:
            self.zk_code = zk_code


class ClientClosedError(CoordError):
    """The client was closed (or never started): make a new one."""


def _cls(name: str, code: str, doc: str, *bases: type) -> type:
    cls = type(name, (CoordError,) + bases, {"__doc__": doc, "code": code})
    globals()[name] = cls
    return cls


_BY_CODE: Dict[str, Type[CoordError]] = {}
for _name, _code, _doc in [
    ("SystemErrorException", "SystemError", "An unexpected server-side failure."),
    ("RolledBackError", "RuntimeInconsistency", "Not applied: another op of the transaction failed."),
    ("DataInconsistencyError", "DataInconsistency", "Replicas disagree (a bug)."),
    ("ConnectionLossError", "ConnectionLoss", "The connection dropped before the reply: the call may or may not have been applied."),
    ("MarshallingError", "MarshallingError", "A frame could not be encoded or decoded."),
    ("UnimplementedError", "Unimplemented", "The operation is not implemented."),
    ("OperationTimeoutError", "OperationTimeout", "The operation timed out."),
    ("BadArgumentsError", "BadArguments", "Invalid arguments (e.g. bytes that are not a sequencer)."),
    ("UnknownSessionError", "UnknownSession", "The session id is unknown."),
    ("APIError", "ApiError", "API misuse."),
    ("NoNodeError", "NoNode", "The node does not exist."),
    ("NoAuthError", "NoAuth", "Not authorized by the node's ACL."),
    ("BadVersionError", "BadVersion", "The expected version does not match."),
    ("NoChildrenForEphemeralsError", "NoChildrenForEphemerals", "Ephemeral nodes may not have children."),
    ("NodeExistsError", "NodeExists", "The node already exists."),
    ("NotEmptyError", "NotEmpty", "The node has children."),
    ("SessionExpiredError", "SessionExpired", "The session expired: its ephemeral nodes are gone; make a new client."),
    ("InvalidCallbackError", "InvalidCallback", "Invalid callback."),
    ("InvalidACLError", "InvalidAcl", "Invalid ACL."),
    ("AuthFailedError", "AuthFailed", "Authentication failed."),
    ("SessionMovedError", "SessionMoved", "The session moved to another server."),
    ("NotReadOnlyCallError", "NotReadOnly", "A write was sent to a read-only server."),
    ("NoWatcherError", "NoWatcher", "No watch matched remove_watches."),
    ("RequestTimeoutError", "RequestTimeout", "The request timed out."),
    ("ThrottledError", "Throttled", "The server is throttling this client."),
    ("InvalidPathError", "InvalidPath", "The path is malformed."),
    ("TooLargeError", "TooLarge", "A value or request is over a configured limit."),
    ("VersionMismatchError", "VersionMismatch", "The protocol version is not supported."),
    ("NotServingError", "NotServing", "The server is not serving (no quorum, shutting down)."),
    ("LockDelayError", "LockDelay", "A lock node's path is held back by its lock-delay."),
    ("StaleSequencerError", "StaleSequencer", "The sequencer no longer names a held lock."),
    ("DiskFullError", "DiskFull", "The server's disk is nearly full: writes are refused until space is freed; reads go on."),
]:
    _BY_CODE[_code] = _cls(_name, _code, _doc)


class TimeoutError(CoordError, builtins.TimeoutError):  # noqa: A001 (kazoo's name)
    """A call or wait did not finish in time (also a ``builtins.TimeoutError``)."""

    code = "OperationTimeout"


class LockTimeout(TimeoutError):
    """A lock, election or other recipe was not obtained within its timeout."""


_BY_CODE["OperationTimeout"] = TimeoutError
# In a failed transaction the ops before the failing one report "Ok": they were rolled back.
_BY_CODE["Ok"] = _BY_CODE["RuntimeInconsistency"]


def _from_code(code: str, zk_code: int, message: str) -> CoordError:
    """The exception instance for a native error (called from the Rust extension)."""
    cls = _BY_CODE.get(code, CoordError)
    return cls(message, code, zk_code)
