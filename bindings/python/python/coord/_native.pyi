"""Type stubs of the Rust extension (internal: use the classes in ``coord`` and
``coord.aio``). Every call returns a :class:`Pending`; its value's type is in the comment."""

from typing import Any, Callable, List, Optional, Tuple

from ._types import ZnodeStat

AclArg = Optional[List[Tuple[int, str, str]]]
Hold = Tuple[str, bytes]  # (node path, sequencer) of a lease or read-write hold
Taken = Tuple[str, bytes, bytes]  # (item name, data, claim) of a LockingQueue item

class Pending:
    def wait(self) -> Any: ...
    def add_done_callback(self, callback: Callable[[bool, Any], None]) -> None: ...
    def cancel(self) -> bool: ...

class PendingClient:
    def pending(self) -> Pending: ...
    def client(self) -> NativeClient: ...

class PendingStatus:
    def wait(self) -> Tuple[int, str, int, int, Optional[int]]: ...
    def pending(self) -> Pending: ...
    def status(self) -> Tuple[int, str, int, int, Optional[int]]: ...

class NativeLock:
    status: str
    is_held: bool
    sequencer: Optional[bytes]
    generation: Optional[int]
    def acquire(self, timeout: Optional[float] = None) -> Pending: ...  # bool
    def release(self) -> Pending: ...  # None
    def holder(self) -> Pending: ...  # Optional[(data, session_id, czxid, sequencer)]

class NativeElection:
    status: str
    is_leader: bool
    sequencer: Optional[bytes]
    term: Optional[int]
    def campaign(self, timeout: Optional[float] = None) -> Pending: ...  # bool
    def resign(self) -> Pending: ...  # None
    def leader(self) -> Pending: ...  # Optional[(value, term, session_id, sequencer)]

class NativeQueue:
    def put(self, data: bytes, priority: Optional[int] = None) -> Pending: ...  # str
    def len(self) -> Pending: ...  # int
    def take(self, timeout: Optional[float] = None) -> Pending: ...  # Optional[bytes]

class NativeLockingQueue:
    def put(self, data: bytes, priority: Optional[int] = None) -> Pending: ...  # str
    def len(self) -> Pending: ...  # int
    def take(self, timeout: Optional[float] = None) -> Pending: ...  # Optional[Taken]
    def ack(self, name: str, data: bytes, claim: bytes) -> Pending: ...  # None
    def release(self, name: str, data: bytes, claim: bytes) -> Pending: ...  # None

class NativeBarrier:
    def create(self) -> Pending: ...  # None
    def remove(self) -> Pending: ...  # None
    def wait(self, timeout: Optional[float] = None) -> Pending: ...  # bool

class NativeDoubleBarrier:
    def enter(self, timeout: Optional[float] = None) -> Pending: ...  # bool
    def leave(self, timeout: Optional[float] = None) -> Pending: ...  # bool

class NativeCounter:
    def get(self) -> Pending: ...  # int
    def add(self, delta: int) -> Pending: ...  # int

class NativeSemaphore:
    def acquire(self, timeout: Optional[float] = None) -> Pending: ...  # Optional[Hold]
    def release(self, path: str, sequencer: bytes) -> Pending: ...  # None

class NativeCoordinator:
    def begin(self, id: str, participants: List[str]) -> Pending: ...  # None
    def decide(self, id: str, timeout: float) -> Pending: ...  # "commit" | "abort"
    def decision(self, id: str) -> Pending: ...  # Optional[str]

class NativeParticipant:
    def wait_begun(self, id: str, timeout: float) -> Pending: ...  # bool
    def vote(self, id: str, yes: bool) -> Pending: ...  # None
    def decision(self, id: str, timeout: Optional[float] = None) -> Pending: ...  # Optional[str]
    def abort_if_undecided(self, id: str) -> Pending: ...  # str

class NativeRwLock:
    def acquire(self, write: bool, timeout: Optional[float] = None) -> Pending: ...  # Optional[Hold]
    def release(self, write: bool, path: str, sequencer: bytes) -> Pending: ...  # None

class NativeGroup:
    def join(self, name: str, data: bytes) -> Pending: ...  # None
    def leave(self, name: str) -> Pending: ...  # None
    def members(self) -> Pending: ...  # Dict[str, bytes]

class NativeTreeCache:
    def get(self, path: str) -> Optional[Tuple[bytes, ZnodeStat]]: ...
    def paths(self) -> List[str]: ...
    def close(self) -> None: ...

class NativeClient:
    session_id: int
    session_timeout: float
    state: str
    last_zxid: int
    cached: bool  # plain reads go through the client cache (connect(cache=True))
    def cache_stats(self) -> Tuple[int, int, int]: ...  # (hits, misses, invalidations), no I/O
    def create(self, path: str, value: bytes, acl: AclArg, ephemeral: bool, sequence: bool,
               container: bool = False, ttl: Optional[float] = None,
               lock_delay: Optional[float] = None) -> Pending: ...  # str
    def delete(self, path: str, version: int) -> Pending: ...  # None
    def exists(self, path: str, watch: Optional[Callable[..., Any]] = None,
               linearizable: bool = False) -> Pending: ...  # Optional[ZnodeStat]
    def get(self, path: str, watch: Optional[Callable[..., Any]] = None,
            linearizable: bool = False) -> Pending: ...  # (bytes, ZnodeStat)
    def set(self, path: str, value: bytes, version: int) -> Pending: ...  # ZnodeStat
    def get_children(self, path: str, watch: Optional[Callable[..., Any]] = None,
                     linearizable: bool = False) -> Pending: ...  # (List[str], ZnodeStat)
    def get_acls(self, path: str) -> Pending: ...  # (List[ACL], ZnodeStat)
    def set_acls(self, path: str, acl: List[Tuple[int, str, str]], version: int) -> Pending: ...
    def add_auth(self, scheme: str, credential: bytes) -> Pending: ...  # None
    def sync(self, path: str) -> Pending: ...  # None
    def get_ephemerals(self, prefix: str) -> Pending: ...  # List[str]
    def get_all_children_number(self, path: str) -> Pending: ...  # int
    def check_sequencer(self, sequencer: bytes) -> Pending: ...  # bool
    def multi(self, ops: List[Tuple[Any, ...]]) -> Pending: ...  # results or (exc, results)
    def add_watch(self, path: str, recursive: bool, callback: Callable[..., Any]) -> Pending: ...
    def remove_watches(self, path: str, kind: str) -> Pending: ...  # None
    def add_listener(self, callback: Callable[[str], Any]) -> None: ...
    def close(self) -> Pending: ...  # None
    def lock(self, path: str, data: bytes, lock_delay: Optional[float]) -> NativeLock: ...
    def election(self, path: str, value: bytes, lock_delay: Optional[float]) -> NativeElection: ...
    def queue(self, path: str) -> NativeQueue: ...
    def locking_queue(self, path: str) -> NativeLockingQueue: ...
    def barrier(self, path: str) -> NativeBarrier: ...
    def double_barrier(self, path: str, count: int) -> NativeDoubleBarrier: ...
    def counter(self, path: str) -> NativeCounter: ...
    def semaphore(self, path: str, leases: int) -> NativeSemaphore: ...
    def txn_coordinator(self, dir: str) -> NativeCoordinator: ...
    def txn_participant(self, dir: str, name: str) -> NativeParticipant: ...
    def rwlock(self, path: str) -> NativeRwLock: ...
    def group(self, path: str) -> NativeGroup: ...
    def tree_cache(self, path: str, recursive: bool,
                   callback: Optional[Callable[[str, str], Any]]) -> Tuple[NativeTreeCache, Pending]: ...

def connect(servers: str, ca: str, session_timeout: float, connect_timeout: float,
            read_only: bool, grace_period: Optional[float] = None,
            cache: bool = False, cert: Optional[str] = None,
            key: Optional[str] = None) -> PendingClient: ...
def decode_sequencer(data: bytes) -> Tuple[str, str, int, int]: ...
def digest_id(user: str, password: str) -> str: ...
def server_status(servers: str, ca: str, server: str, timeout: float) -> PendingStatus: ...
def set_log_level(level: int) -> None: ...
def _shutdown() -> None: ...

