"""Value types: :class:`ZnodeStat`, :class:`ACL`, :class:`Id`, :class:`WatchedEvent`,
:class:`CacheStats` and the state / event-type constants, with kazoo's names."""

from __future__ import annotations

from typing import NamedTuple


class ZnodeStat(NamedTuple):
    """A node's Stat, with ZooKeeper's (and kazoo's) field names. Times are ms since the epoch."""

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int
    dataLength: int
    numChildren: int
    pzxid: int

    @property
    def acl_version(self) -> int:
        """kazoo's alias of ``aversion``."""
        return self.aversion

    @property
    def children_version(self) -> int:
        """kazoo's alias of ``cversion``."""
        return self.cversion

    @property
    def created(self) -> float:
        """Creation time in seconds since the epoch."""
        return self.ctime / 1000.0

    @property
    def last_modified(self) -> float:
        """Last modification time in seconds since the epoch."""
        return self.mtime / 1000.0

    @property
    def data_length(self) -> int:
        """kazoo's alias of ``dataLength``."""
        return self.dataLength

    @property
    def children_count(self) -> int:
        """kazoo's alias of ``numChildren``."""
        return self.numChildren

    @property
    def owner_session_id(self) -> int | None:
        """The owning session of an ephemeral node, else None."""
        return self.ephemeralOwner or None

    @property
    def creation_transaction_id(self) -> int:
        """kazoo's alias of ``czxid``."""
        return self.czxid

    @property
    def last_modified_transaction_id(self) -> int:
        """kazoo's alias of ``mzxid``."""
        return self.mzxid


class CacheStats(NamedTuple):
    """The counts of a session's client cache (``Client(cache=True)``), from
    :meth:`coord.Client.cache_stats`; all zero for a session without the cache."""

    hits: int
    """Reads served from the cache, with no round trip."""
    misses: int
    """Cacheable reads that went to the server (and were cached if nothing changed the node
    meanwhile)."""
    invalidations: int
    """Invalidations received: a write to nodes this session cached was held by the
    servers until the session dropped them."""


class Id(NamedTuple):
    """Who an ACL entry is for: a scheme (``world``, ``digest``, ``ip``, ``auth``, ``x509``)
    and an id in it."""

    scheme: str
    id: str


class Permissions:
    """ACL permission bits (as ZooKeeper's)."""

    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


class ACL(NamedTuple):
    """One ACL entry: permission bits and the :class:`Id` they are granted to."""

    perms: int
    id: Id

    @property
    def acl_list(self) -> list[str]:
        """The permission names, as kazoo gives them."""
        names = ["READ", "WRITE", "CREATE", "DELETE", "ADMIN"]
        if self.perms == Permissions.ALL:
            return ["ALL"]
        return [n for i, n in enumerate(names) if self.perms & (1 << i)]


def _make_acl(perms: int, scheme: str, id: str) -> ACL:
    return ACL(perms, Id(scheme, id))


OPEN_ACL_UNSAFE = [ACL(Permissions.ALL, Id("world", "anyone"))]
"""Everyone may do everything."""
READ_ACL_UNSAFE = [ACL(Permissions.READ, Id("world", "anyone"))]
"""Everyone may read."""
CREATOR_ALL_ACL = [ACL(Permissions.ALL, Id("auth", ""))]
"""Everything for the identities the creating session authenticated as."""


def make_acl(scheme: str, credential: str, read: bool = False, write: bool = False,
             create: bool = False, delete: bool = False, admin: bool = False,
             all: bool = False) -> ACL:
    """An ACL entry, as kazoo's ``make_acl``."""
    if all:
        perms = Permissions.ALL
    else:
        perms = ((Permissions.READ if read else 0) | (Permissions.WRITE if write else 0)
                 | (Permissions.CREATE if create else 0) | (Permissions.DELETE if delete else 0)
                 | (Permissions.ADMIN if admin else 0))
    return ACL(perms, Id(scheme, credential))


def make_digest_acl(username: str, password: str, **perms: bool) -> ACL:
    """A ``digest`` ACL entry for ``username:password`` (the hash computed as ZooKeeper does)."""
    from . import _native

    return make_acl("digest", _native.digest_id(username, password), **perms)


class EventType:
    """Watch event types, as kazoo names them."""

    CREATED = "CREATED"
    DELETED = "DELETED"
    CHANGED = "CHANGED"
    CHILD = "CHILD"
    NONE = "NONE"
    REMOVED = "REMOVED"


_EVENT_TYPES = {
    "NodeCreated": EventType.CREATED,
    "NodeDeleted": EventType.DELETED,
    "NodeDataChanged": EventType.CHANGED,
    "NodeChildrenChanged": EventType.CHILD,
    "DataWatchRemoved": EventType.REMOVED,
    "ChildWatchRemoved": EventType.REMOVED,
    "PersistentWatchRemoved": EventType.REMOVED,
}


class SessionState:
    """Session states as Chubby names them (the strings a listener receives). kazoo's
    SUSPENDED is JEOPARDY here, LOST is EXPIRED."""

    CONNECTED = "CONNECTED"
    JEOPARDY = "JEOPARDY"
    SAFE = "SAFE"
    EXPIRED = "EXPIRED"
    CLOSED = "CLOSED"
    AUTH_FAILED = "AUTH_FAILED"
    LEADER_FAILED_OVER = "LEADER_FAILED_OVER"
    SUSPENDED = JEOPARDY
    LOST = EXPIRED


class WatchedEvent(NamedTuple):
    """A watch event: ``type`` (an :class:`EventType`), ``state`` (``"CONNECTED"``), ``path``,
    and the ``zxid`` of the change."""

    type: str
    state: str
    path: str
    zxid: int = 0
